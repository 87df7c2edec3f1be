import Logging
import NIOCore

/// What a handler knows about the call it serves.
public struct RPCContext: Sendable {
    public var method: String
    public var headers: [String: String]
    /// Unix millis by which the caller stops waiting, from the `deadline-ms` header (a budget in ms).
    public var deadlineBudgetMs: Int64?
    /// Size of the encoded request body.
    public var requestBytes: Int = 0
    /// The envelope id of the call.
    public var id: UInt64 = 0
    /// Who is calling, set by the access middleware from the bearer token (nil: no token needed).
    public var principal: Principal?
    let baseLogger: Logger

    public init(method: String, headers: [String: String], logger: Logger, deadlineBudgetMs: Int64? = nil, id: UInt64 = 0) {
        self.method = method
        self.headers = headers
        self.baseLogger = logger
        self.deadlineBudgetMs = deadlineBudgetMs
        self.id = id
    }

    /// The server's logger with this call's method and id (built when asked for: most calls never log).
    public var logger: Logger {
        var logger = baseLogger
        logger[metadataKey: "rpc.method"] = "\(method)"
        logger[metadataKey: "rpc.id"] = "\(id)"
        return logger
    }
}

/// Methods by name. Each handler takes the request body bytes and returns the reply body bytes;
/// `register` wraps typed handlers so decoding errors become INVALID_ARGUMENT in one place.
///
/// Two kinds of handler: `register` takes an async function, run as a task; `registerOnLoop`
/// takes one that runs on the connection's event loop and returns a future, for hot paths that
/// must not pay for a task and two thread hops per call. It must not block.
public struct RPCRouter: Sendable {
    public typealias RawHandler = @Sendable ([UInt8], RPCContext) async throws -> [UInt8]
    public typealias LoopHandler = @Sendable ([UInt8], RPCContext, EventLoop) -> EventLoopFuture<[UInt8]>

    public enum Handler: Sendable {
        case async(RawHandler)
        case loop(LoopHandler)
    }

    private(set) var handlers: [String: Handler] = [:]
    /// Per-method request size limits, checked before the body is decoded: (bytes, field named).
    private(set) var limits: [String: (bytes: Int, field: String)] = [:]

    /// Requests of `method` larger than `maxBytes` are refused with INVALID_ARGUMENT naming
    /// `field`, before their body is decoded (decoding a huge body costs the event loop).
    public mutating func limit<Request, Reply>(_ method: RPCMethod<Request, Reply>, maxBytes: Int, field: String) {
        limits[method.name] = (maxBytes, field)
    }

    /// The refusal for a request body over its method's limit, if any.
    public func oversized(_ method: String, bytes: Int) -> RPCError? {
        guard let limit = limits[method], bytes > limit.bytes else { return nil }
        return RPCError.invalidArgument([FieldViolation(field: limit.field, description: "is \(bytes) bytes encoded; the limit is \(limit.bytes)")])
    }

    public init() {}

    public mutating func register<Request: WireMessage, Reply: WireMessage>(
        _ method: RPCMethod<Request, Reply>,
        _ handler: @escaping @Sendable (Request, RPCContext) async throws -> Reply
    ) {
        handlers[method.name] = .async { body, context in
            var context = context
            context.requestBytes = body.count
            return try await handler(try Self.decode(body), context).wireBytes()
        }
    }

    /// A handler that decodes its request itself (a batch whose items are decoded one by one, so
    /// one undecodable item refuses only itself).
    public mutating func registerRaw<Request: WireMessage, Reply: WireMessage>(
        _ method: RPCMethod<Request, Reply>,
        _ handler: @escaping @Sendable (_ body: [UInt8], RPCContext) async throws -> Reply
    ) {
        handlers[method.name] = .async { body, context in
            var context = context
            context.requestBytes = body.count
            return try await handler(body, context).wireBytes()
        }
    }

    /// A handler that runs on the event loop: it must not block, and returns its reply as a future.
    public mutating func registerOnLoop<Request: WireMessage, Reply: WireMessage>(
        _ method: RPCMethod<Request, Reply>,
        _ handler: @escaping @Sendable (Request, RPCContext, EventLoop) -> EventLoopFuture<Reply>
    ) {
        handlers[method.name] = .loop { body, context, loop in
            var context = context
            context.requestBytes = body.count
            let request: Request
            do {
                request = try Self.decode(body)
            } catch {
                return loop.makeFailedFuture(error)
            }
            return handler(request, context, loop).map { $0.wireBytes() }
        }
    }

    private static func decode<Request: WireMessage>(_ body: [UInt8]) throws(RPCError) -> Request {
        do throws(WireError) {
            return try Request(wire: body)
        } catch {
            throw RPCError.invalidBody(error, message: "\(Request.self)")
        }
    }

    public mutating func merge(_ other: RPCRouter) {
        handlers.merge(other.handlers) { _, new in new }
        limits.merge(other.limits) { _, new in new }
    }

    public func handler(for method: String) -> Handler? { handlers[method] }
    public var methods: [String] { handlers.keys.sorted() }
}
