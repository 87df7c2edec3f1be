import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ServiceLifecycle

public struct RPCServerConfiguration: Sendable {
    public var host: String
    public var port: Int
    public var maxFrameBytes: Int = Framing.defaultMaxFrameBytes
    /// Requests a connection may have running at once; past it the server stops reading from
    /// that connection until one finishes (backpressure, nothing is dropped).
    public var maxInFlightPerConnection: Int = 64
    public var maxConnections: Int = 4096
    /// A connection with no traffic either way for this long is closed.
    public var idleTimeout: TimeAmount = .seconds(300)

    public init(host: String = "127.0.0.1", port: Int) {
        self.host = host
        self.port = port
    }
}

/// Sees every call's method and headers before its handler, on the event loop (it must not
/// block); a returned error is the reply.
public typealias RPCAuthenticator = @Sendable (_ method: String, _ headers: [String: String]) -> RPCError?

/// The binary-protocol listener: length-prefixed Envelopes, pipelined requests answered as they
/// finish (out of order), and a bad connection never touching the others. Each connection's
/// frames are decoded and dispatched on its event loop (`RPCConnectionHandler`); async handlers
/// run as tasks in the connection's task group, so cancelling the server cancels them.
public final class RPCServer: Service, Sendable {
    public let configuration: RPCServerConfiguration
    private let router: RPCRouter
    private let middleware: [any RPCMiddleware]
    private let logger: Logger
    private let group: EventLoopGroup
    private let listening = Latch<SocketAddress>()
    private let connectionCount = NIOLockedValueBox(0)

    public init(
        configuration: RPCServerConfiguration, router: RPCRouter, logger: Logger,
        authenticate: RPCAuthenticator? = nil, middleware: [any RPCMiddleware] = [],
        group: EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        self.configuration = configuration
        self.router = router
        // Outermost first: every call is logged (refusals too), then authenticated, then held to
        // the caller's deadline; the service's own middleware (metrics, …) wraps the handler.
        self.middleware = [LoggingMiddleware()] + (authenticate.map { [AuthenticationMiddleware($0)] } ?? [])
            + [DeadlineMiddleware()] + middleware
        self.logger = logger
        self.group = group
    }

    /// The address bound, once listening (useful with port 0).
    public func localAddress() async throws -> SocketAddress {
        try await listening.wait()
    }

    public func run() async throws {
        let configuration = self.configuration
        let router = self.router
        let middleware = self.middleware
        let logger = self.logger
        let connectionCount = self.connectionCount
        let serverChannel: NIOAsyncChannel<RPCConnection, Never>
        do {
            serverChannel = try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 256)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .bind(host: configuration.host, port: configuration.port) { channel in
                    // Options are set here, not as child channel options: a child option or
                    // initializer that fails is reported on the server channel and would end the
                    // whole listener. Whatever goes wrong with one connection closes it only.
                    channel.eventLoop.makeCompletedFuture {
                        do {
                            // TCP level (IPPROTO_TCP). NIO's socket-level spelling of this option is
                            // SOL_SOCKET option 1, SO_DEBUG, which needs CAP_NET_ADMIN: refused to
                            // ordinary users.
                            try channel.syncOptions?.setOption(.tcpOption(.tcp_nodelay), value: 1)
                        } catch {
                            logger.debug("TCP_NODELAY not set", metadata: ["error": "\(error)"])
                        }
                        do {
                            return try Self.setUp(
                                channel, configuration: configuration, router: router, middleware: middleware,
                                connectionCount: connectionCount, logger: logger)
                        } catch {
                            logger.warning("connection setup failed; that connection is closed", metadata: ["error": "\(error)"])
                            channel.close(promise: nil)
                            let (jobs, sink) = AsyncStream.makeStream(of: RPCConnectionHandler.Job.self)
                            sink.finish()
                            return RPCConnection(channel: channel, jobs: jobs) {}
                        }
                    }
                }
        } catch {
            listening.resolve(.failure(error))
            throw error
        }
        if let address = serverChannel.channel.localAddress { listening.resolve(.success(address)) }
        logger.info("listening", metadata: ["rpc.address": "\(serverChannel.channel.localAddress.map { "\($0)" } ?? "?")"])

        try await withThrowingDiscardingTaskGroup { connections in
            try await serverChannel.executeThenClose { inbound in
                for try await connection in inbound.cancelOnGracefulShutdown() {
                    connections.addTask { await Self.serve(connection) }
                }
            }
        }
    }

    /// The pipeline of one accepted connection (called on its event loop).
    private static func setUp(
        _ channel: Channel, configuration: RPCServerConfiguration, router: RPCRouter, middleware: [any RPCMiddleware],
        connectionCount: NIOLockedValueBox<Int>, logger: Logger
    ) throws -> RPCConnection {
        let admitted = connectionCount.withLockedValue { count in
            guard count < configuration.maxConnections else { return false }
            count += 1
            return true
        }
        if admitted {
            channel.closeFuture.whenComplete { _ in connectionCount.withLockedValue { $0 -= 1 } }
        }
        var connectionLogger = logger
        connectionLogger[metadataKey: "rpc.peer"] = "\(channel.remoteAddress.map { "\($0)" } ?? "?")"
        let (jobs, sink) = AsyncStream.makeStream(of: RPCConnectionHandler.Job.self)
        let handler = RPCConnectionHandler(
            router: router, middleware: middleware, maxInFlight: configuration.maxInFlightPerConnection,
            refusal: admitted ? nil : "too many connections (limit \(configuration.maxConnections))",
            jobs: sink, logger: connectionLogger)
        let pipeline = channel.pipeline.syncOperations
        try pipeline.addHandler(IdleStateHandler(allTimeout: configuration.idleTimeout))
        try pipeline.addHandler(IdleConnectionCloser())
        try pipeline.addHandler(FlushCoalescer())
        try pipeline.addHandler(MessageToByteHandler(FrameEncoder()))
        try pipeline.addHandler(ByteToMessageHandler(FrameDecoder(maxFrameBytes: configuration.maxFrameBytes)))
        try pipeline.addHandler(handler)
        let quiesce = NIOLoopBound(handler, eventLoop: channel.eventLoop)
        return RPCConnection(channel: channel, jobs: jobs) {
            channel.eventLoop.execute { quiesce.value.quiesce() }
        }
    }

    /// Runs the connection's async handlers until it closes. On graceful shutdown the connection
    /// stops reading, answers the calls already read, then closes; on cancellation it closes at once.
    private static func serve(_ connection: RPCConnection) async {
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await withDiscardingTaskGroup { group in
                    for await job in connection.jobs {
                        group.addTask { await job() }
                    }
                }
            } onGracefulShutdown: {
                connection.quiesce()
            }
        } onCancel: {
            connection.channel.close(promise: nil)
        }
    }
}

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
    private let jobs: AsyncStream<Job>.Continuation
    private let logger: Logger
    private var state: RPCConnectionStateMachine
    private var context: ChannelHandlerContext?

    init(
        router: RPCRouter, middleware: [any RPCMiddleware], maxInFlight: Int, refusal: String?,
        jobs: AsyncStream<Job>.Continuation, logger: Logger
    ) {
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
        if let error = error as? FrameError {
            logger.info("closing connection after a bad frame", metadata: ["rpc.error": "\(error)"])
            apply(state.refuse(error.status), context: context)
        } else {
            logger.debug("connection failed", metadata: ["rpc.error": "\(error)"])
            state.closed()
            context.close(promise: nil)
        }
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

/// Closes a connection when IdleStateHandler reports it idle.
final class IdleConnectionCloser: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }
}
