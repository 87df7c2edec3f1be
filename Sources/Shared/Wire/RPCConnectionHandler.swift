import Logging
import NIOCore

/// An accepted connection: its channel, the async handler calls it hands over, and how to
/// ask it to finish up.
struct RPCConnection: Sendable {
    let channel: Channel
    let jobs: AsyncStream<RPCConnectionHandler.Job>
    let quiesce: @Sendable () -> Void
}

/// One connection's calls, on its event loop: decodes envelopes and carries out what
/// `RPCConnectionStateMachine` decides (start, hold reads, refuse, close); each call goes through
/// the middleware chain to its handler (on the loop, or as a job for the connection's task group)
/// and its reply is written when it completes, in whatever order calls finish.
final class RPCConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    typealias Job = @Sendable () async -> Void

    private let router: RPCRouter
    private let chain: RPCMiddlewareChain
    private let refusal: String?
    private let budget: InboundBudget?
    private let peer: String
    private let jobs: AsyncStream<Job>.Continuation
    private let logger: Logger
    private var state: RPCConnectionStateMachine
    private var context: ChannelHandlerContext?

    init(
        router: RPCRouter, middleware: [any RPCMiddleware], maxInFlight: Int, refusal: String?,
        budget: InboundBudget? = nil, peer: String = "?",
        jobs: AsyncStream<Job>.Continuation, logger: Logger
    ) {
        self.budget = budget
        self.peer = peer
        self.router = router
        self.chain = RPCMiddlewareChain(middleware: middleware)
        self.state = RPCConnectionStateMachine(maxInFlight: maxInFlight)
        self.refusal = refusal
        self.jobs = jobs
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { refuseIfOverLimit(context: context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        jobs.finish()
    }

    func channelActive(context: ChannelHandlerContext) {
        refuseIfOverLimit(context: context)
        context.fireChannelActive()
    }

    private func refuseIfOverLimit(context: ChannelHandlerContext) {
        guard let refusal else { return }
        apply(state.refuse(RPCStatus(code: .resourceExhausted, message: refusal)), context: context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        state.closed()
        jobs.finish()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !state.closing else { return }
        let frame = unwrapInboundIn(data)
        do {
            apply(state.received(try Envelope(frame: frame)), context: context)
        } catch {
            // The frame boundary may be lost: answer once, then close this connection only.
            logger.info("closing connection after a malformed envelope", metadata: ["rpc.error": "\(error)"])
            apply(state.refuse(RPCStatus(code: .invalidArgument, message: "malformed envelope: \(error)")), context: context)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if case .incomplete = error as? FrameError, state.readHeld {
            // We stopped reading (backpressure), not the peer: its frame is not late. The decoder
            // starts the clock again when it next reads.
            return
        }
        if let error = error as? FrameError {
            if case .overBudget = error {
                if budget?.firstRefusal(of: peer) ?? true {
                    logger.warning("large frames refused: the inbound budget is in use (logged once per address)", metadata: ["rpc.error": "\(error)"])
                }
            } else {
                logger.info("closing connection after a bad frame", metadata: ["rpc.error": "\(error)"])
            }
            let reason = switch error {
            case .empty: "frame_empty"
            case .tooLarge: "frame_too_large"
            case .incomplete: "frame_deadline"
            case .overBudget: "inbound_budget"
            }
            KlaxonMetrics.refused(reason)
            apply(state.refuse(error.status), context: context)
        } else {
            logger.debug("connection failed", metadata: ["rpc.error": "\(error)"])
            state.closed()
            context.close(promise: nil)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        apply(state.writabilityChanged(context.channel.isWritable), context: context)
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        if state.readRequested() { context.read() }
    }

    /// Graceful shutdown: stop reading, answer the calls already read, close.
    func quiesce() {
        guard let context else { return }
        apply(state.quiesce(), context: context)
    }

    private func apply(_ actions: RPCConnectionStateMachine.Actions, context: ChannelHandlerContext) {
        if let status = actions.reject {
            context.writeAndFlush(wrapOutboundOut(Envelope(id: 0, status: status).frameBuffer(allocator: context.channel.allocator)), promise: nil)
        }
        for request in actions.start { start(request, context: context) }
        if actions.read { context.read() }
        if actions.close { context.close(promise: nil) }
    }

    private func start(_ request: Envelope, context: ChannelHandlerContext) {
        let loop = context.eventLoop
        let reply: EventLoopFuture<[UInt8]>
        if request.method.isEmpty {
            reply = loop.makeFailedFuture(RPCError(.invalidArgument, "request has no method"))
        } else if let tooLarge = router.oversized(request.method, bytes: request.body.count) {
            logger.info("request refused: over its method's size limit", metadata: ["rpc.method": "\(request.method)", "rpc.bytes": "\(request.body.count)"])
            KlaxonMetrics.refused("request_size")
            reply = loop.makeFailedFuture(tooLarge)
        } else if let handler = router.handler(for: request.method) {
            let call = RPCCall(
                context: RPCContext(
                    method: request.method, headers: request.headers, logger: logger,
                    deadlineBudgetMs: request.headers["deadline-ms"].flatMap { Int64($0) }, id: request.id),
                body: request.body, eventLoop: loop)
            let jobs = self.jobs
            reply = chain.run(call) { call in
                switch handler {
                case let .loop(handler):
                    return handler(call.body, call.context, call.eventLoop)
                case let .async(handler):
                    let promise = call.eventLoop.makePromise(of: [UInt8].self)
                    let job: Job = {
                        do {
                            promise.succeed(try await handler(call.body, call.context))
                        } catch {
                            promise.fail(error)
                        }
                    }
                    if case .terminated = jobs.yield(job) {
                        promise.fail(RPCError(.unavailable, "server is shutting down"))
                    }
                    return promise.futureResult
                }
            }
        } else {
            reply = loop.makeFailedFuture(RPCError(.unimplemented, "unknown method \(request.method)"))
        }
        let id = request.id
        let method = request.method
        reply.hop(to: loop).assumeIsolated().whenComplete { result in
            self.finish(id: id, method: method, result)
        }
    }

    private func finish(id: UInt64, method: String, _ result: Result<[UInt8], Error>) {
        let actions = state.finished()
        guard let context else { return }
        let envelope: Envelope
        switch result {
        case let .success(body): envelope = Envelope(id: id, body: body, status: .ok)
        case let .failure(error): envelope = Envelope(id: id, status: status(for: error, id: id, method: method))
        }
        if context.channel.isActive {
            context.writeAndFlush(wrapOutboundOut(envelope.frameBuffer(allocator: context.channel.allocator)), promise: nil)
        }
        apply(actions, context: context)
    }

    /// Every failure becomes a status; unexpected ones are logged and answered INTERNAL.
    private func status(for error: Error, id: UInt64, method: String) -> RPCStatus {
        switch error {
        case let error as RPCError:
            return error.status
        case let error as RPCStatusConvertible:
            if error.rpcError.code == .internalError || error.rpcError.code == .unavailable {
                logger.error("handler failed", metadata: ["rpc.method": "\(method)", "rpc.id": "\(id)", "rpc.error": "\(error)"])
            }
            return error.rpcError.status
        case is CancellationError:
            return RPCStatus(code: .unavailable, message: "server is shutting down")
        default:
            logger.error("handler failed", metadata: ["rpc.method": "\(method)", "rpc.id": "\(id)", "rpc.error": "\(error)"])
            return RPCStatus(code: .internalError, message: "internal error")
        }
    }
}
