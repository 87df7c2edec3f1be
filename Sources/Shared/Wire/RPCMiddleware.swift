import Logging
import NIOCore

/// One call on its way to its handler, as middleware sees it.
public struct RPCCall: Sendable {
    public var context: RPCContext
    public var body: [UInt8]
    public var eventLoop: EventLoop
}

/// A step every call goes through before (and after) its handler: authentication, the caller's
/// deadline, logging, metrics. Runs on the connection's event loop and must not block; `next`
/// runs the rest of the chain and the handler. Return a failed future to refuse the call.
public protocol RPCMiddleware: Sendable {
    func handle(_ call: RPCCall, next: @escaping @Sendable (RPCCall) -> EventLoopFuture<[UInt8]>) -> EventLoopFuture<[UInt8]>
}

/// The chain, first middleware outermost.
struct RPCMiddlewareChain: Sendable {
    let middleware: [any RPCMiddleware]

    func run(_ call: RPCCall, handler: @escaping @Sendable (RPCCall) -> EventLoopFuture<[UInt8]>) -> EventLoopFuture<[UInt8]> {
        var next = handler
        for step in middleware.reversed() {
            let inner = next
            next = { step.handle($0, next: inner) }
        }
        return next(call)
    }
}

/// Refuses calls the authenticator refuses (the error it returns is the answer).
public struct AuthenticationMiddleware: RPCMiddleware {
    let authenticate: RPCAuthenticator

    public init(_ authenticate: @escaping RPCAuthenticator) {
        self.authenticate = authenticate
    }

    public func handle(_ call: RPCCall, next: @escaping @Sendable (RPCCall) -> EventLoopFuture<[UInt8]>) -> EventLoopFuture<[UInt8]> {
        if let refusal = authenticate(call.context.method, call.context.headers) { return call.eventLoop.makeFailedFuture(refusal) }
        return next(call)
    }
}

/// The caller's `deadline-ms` budget: a call whose caller stops waiting is answered
/// DEADLINE_EXCEEDED at that moment (a budget of 0 or less, at once, without running it), so
/// its in-flight slot is given back rather than held for an answer nobody reads. The handler's
/// own work is not undone: writes stay atomic per transaction, as the caller was told.
public struct DeadlineMiddleware: RPCMiddleware {
    public init() {}

    public func handle(_ call: RPCCall, next: @escaping @Sendable (RPCCall) -> EventLoopFuture<[UInt8]>) -> EventLoopFuture<[UInt8]> {
        guard let budget = call.context.deadlineBudgetMs else { return next(call) }
        let method = call.context.method
        guard budget > 0 else {
            return call.eventLoop.makeFailedFuture(RPCError(.deadlineExceeded, "\(method): the caller's deadline had passed"))
        }
        let promise = call.eventLoop.makePromise(of: [UInt8].self)
        let timer = call.eventLoop.scheduleTask(in: .milliseconds(budget)) {
            promise.fail(RPCError(.deadlineExceeded, "\(method) did not finish within the caller's \(budget) ms"))
        }
        next(call).hop(to: call.eventLoop).whenComplete { result in
            timer.cancel()
            promise.completeWith(result)
        }
        return promise.futureResult
    }
}

/// Logs each call at debug level with its method, envelope id, request id (`x-request-id`
/// header, when the caller sends one), outcome and duration.
public struct LoggingMiddleware: RPCMiddleware {
    public init() {}

    public func handle(_ call: RPCCall, next: @escaping @Sendable (RPCCall) -> EventLoopFuture<[UInt8]>) -> EventLoopFuture<[UInt8]> {
        // Checked on the server's logger first: most calls never log, and building the call's
        // logger (its metadata) on the hot path costs.
        guard call.context.baseLogger.logLevel <= .debug else { return next(call) }
        var logger = call.context.logger
        if let requestID = call.context.headers["x-request-id"] { logger[metadataKey: "request.id"] = "\(requestID)" }
        let started = NIODeadline.now()  // monotonic, for the duration only; not a domain instant
        let result = next(call)
        let callLogger = logger
        result.whenComplete { outcome in
            let micros = (NIODeadline.now() - started).nanoseconds / 1000
            let status: String
            switch outcome {
            case .success: status = "OK"
            case let .failure(error as RPCError): status = "\(error.code)"
            case .failure: status = "error"
            }
            callLogger.debug("call", metadata: ["rpc.status": "\(status)", "rpc.duration_us": "\(micros)"])
        }
        return result
    }
}
