import Logging

/// What a handler knows about the call it serves.
public struct RPCContext: Sendable {
    public var method: String
    public var headers: [String: String]
    public var logger: Logger
    /// Unix millis by which the caller stops waiting, from the `deadline-ms` header (a budget in ms).
    public var deadlineBudgetMs: Int64?
    /// Size of the encoded request body.
    public var requestBytes: Int = 0
}

/// Methods by name. Each handler takes the request body bytes and returns the reply body bytes;
/// `register` wraps typed handlers so decoding errors become INVALID_ARGUMENT in one place.
public struct RPCRouter: Sendable {
    public typealias RawHandler = @Sendable ([UInt8], RPCContext) async throws -> [UInt8]
    private(set) var handlers: [String: RawHandler] = [:]

    public init() {}

    public mutating func register<Request: WireMessage, Reply: WireMessage>(
        _ method: String, _ request: Request.Type = Request.self,
        _ handler: @escaping @Sendable (Request, RPCContext) async throws -> Reply
    ) {
        handlers[method] = { body, context in
            var context = context
            context.requestBytes = body.count
            let decoded: Request
            do throws(WireError) {
                decoded = try Request(wire: body)
            } catch {
                throw RPCError.invalidBody(error, message: "\(Request.self)")
            }
            return try await handler(decoded, context).wireBytes()
        }
    }

    public mutating func merge(_ other: RPCRouter) {
        handlers.merge(other.handlers) { _, new in new }
    }

    public func handler(for method: String) -> RawHandler? { handlers[method] }
    public var methods: [String] { handlers.keys.sorted() }
}
