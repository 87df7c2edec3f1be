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
    /// Connections one peer address may hold at once, so one client cannot take them all.
    public var maxConnectionsPerPeer: Int = 512
    /// A frame begun must be complete within this, or its connection is closed (slow senders).
    public var frameDeadline: TimeAmount = .seconds(10)
    /// A connection with no traffic either way for this long is closed.
    public var idleTimeout: TimeAmount = .seconds(300)
    /// TLS before the first frame (nil: plain TCP); a handshake must complete within `frameDeadline`.
    public var tls: ServerTLS?
    /// Large frames being received, shared by every listener of the process alike.
    public var inboundBudget: InboundBudget = .process()

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
    private let accepting = NIOLockedValueBox(false)
    private let connectionCount = NIOLockedValueBox(0)
    private let peerCounts = NIOLockedValueBox<[String: Int]>([:])

    public init(
        configuration: RPCServerConfiguration, router: RPCRouter, logger: Logger,
        authenticate: RPCAuthenticator? = nil, middleware: [any RPCMiddleware] = [],
        group: EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        self.configuration = configuration
        self.router = router
        // Outermost first: every call is logged (refusals too), then authenticated, then held to
        // the caller's deadline; the service's own middleware (metrics, …) wraps the handler.
        self.middleware = [LoggingMiddleware(), MetricsMiddleware()] + (authenticate.map { [AuthenticationMiddleware($0)] } ?? [])
            + [DeadlineMiddleware()] + middleware
        self.logger = logger
        self.group = group
    }

    /// The in-process entrance: runs `method` as `principal` through the same middleware chain
    /// as a call off the wire (logging, metrics, access, the deadline), for the process's other
    /// doors (chat commands today) that identify the caller their own way.
    public func call<Request: WireMessage, Reply: WireMessage>(
        _ method: RPCMethod<Request, Reply>, _ request: Request, as principal: Principal?, deadlineBudgetMs: Int64? = nil
    ) async throws -> Reply {
        try Reply(wire: try await callRaw(method.name, request.wireBytes(), as: principal, deadlineBudgetMs: deadlineBudgetMs))
    }

    /// The in-process entrance for encoded requests (a relay taking over another process's outbox).
    public func callRaw(_ method: String, _ body: [UInt8], as principal: Principal?, deadlineBudgetMs: Int64? = nil) async throws -> [UInt8] {
        let loop = group.any()
        if let tooLarge = router.oversized(method, bytes: body.count) { throw tooLarge }
        guard let handler = router.handler(for: method) else { throw RPCError(.unimplemented, "unknown method \(method)") }
        var context = RPCContext(method: method, headers: [:], logger: logger, deadlineBudgetMs: deadlineBudgetMs)
        context.principal = principal
        let call = RPCCall(context: context, body: body, eventLoop: loop)
        let chain = RPCMiddlewareChain(middleware: middleware)
        let reply = try await loop.flatSubmit {
            chain.run(call) { call in
                switch handler {
                case let .loop(run):
                    return run(call.body, call.context, call.eventLoop)
                case let .async(run):
                    let promise = call.eventLoop.makePromise(of: [UInt8].self)
                    promise.completeWithTask { try await run(call.body, call.context) }
                    return promise.futureResult
                }
            }
        }.get()
        return reply
    }

    /// True while the listener accepts connections (readiness: false before the bind and from
    /// the start of a graceful shutdown).
    public var isAccepting: Bool { accepting.withLockedValue { $0 } }

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
        let peerCounts = self.peerCounts
        let accepting = self.accepting
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
                                connectionCount: connectionCount, peerCounts: peerCounts, logger: logger)
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
        accepting.withLockedValue { $0 = true }
        defer { accepting.withLockedValue { $0 = false } }
        logger.info("listening", metadata: ["rpc.address": "\(serverChannel.channel.localAddress.map { "\($0)" } ?? "?")"])

        try await withThrowingDiscardingTaskGroup { connections in
            try await serverChannel.executeThenClose { inbound in
                for try await connection in inbound.cancelOnGracefulShutdown() {
                    connections.addTask { await Self.serve(connection) }
                }
                accepting.withLockedValue { $0 = false }
            }
        }
    }

    /// The pipeline of one accepted connection (called on its event loop).
    private static func setUp(
        _ channel: Channel, configuration: RPCServerConfiguration, router: RPCRouter, middleware: [any RPCMiddleware],
        connectionCount: NIOLockedValueBox<Int>, peerCounts: NIOLockedValueBox<[String: Int]>, logger: Logger
    ) throws -> RPCConnection {
        let peer = channel.remoteAddress?.ipAddress ?? "?"
        var refusal: String?
        if connectionCount.withLockedValue({ count in
            guard count < configuration.maxConnections else { return false }
            count += 1
            return true
        }) {
            channel.closeFuture.whenComplete { _ in connectionCount.withLockedValue { $0 -= 1 } }
            if peerCounts.withLockedValue({ counts in
                guard counts[peer, default: 0] < configuration.maxConnectionsPerPeer else { return false }
                counts[peer, default: 0] += 1
                return true
            }) {
                channel.closeFuture.whenComplete { _ in
                    peerCounts.withLockedValue { counts in
                        counts[peer, default: 1] -= 1
                        if counts[peer] == 0 { counts[peer] = nil }
                    }
                }
            } else {
                refusal = "too many connections from \(peer) (limit \(configuration.maxConnectionsPerPeer) per address)"
            }
        } else {
            refusal = "too many connections (limit \(configuration.maxConnections))"
        }
        var connectionLogger = logger
        connectionLogger[metadataKey: "rpc.peer"] = "\(channel.remoteAddress.map { "\($0)" } ?? "?")"
        let listener = "\(configuration.host):\(configuration.port)"
        if let refusal {
            connectionLogger.warning("connection refused", metadata: ["rpc.refusal": "\(refusal)"])
            KlaxonMetrics.refused(refusal.contains("per address") ? "connections_per_peer" : "connections")
        } else {
            KlaxonMetrics.connectionOpened(listener: listener)
            channel.closeFuture.whenComplete { _ in KlaxonMetrics.connectionClosed(listener: listener) }
        }
        let (jobs, sink) = AsyncStream.makeStream(of: RPCConnectionHandler.Job.self)
        let handler = RPCConnectionHandler(
            router: router, middleware: middleware, maxInFlight: configuration.maxInFlightPerConnection,
            refusal: refusal, budget: configuration.inboundBudget, peer: peer,
            jobs: sink, logger: connectionLogger)
        let pipeline = channel.pipeline.syncOperations
        try pipeline.addHandler(IdleStateHandler(allTimeout: configuration.idleTimeout))
        try pipeline.addHandler(IdleConnectionCloser())
        if let tls = configuration.tls { try tls.addHandlers(to: pipeline, handshakeDeadline: configuration.frameDeadline) }
        try pipeline.addHandler(FlushCoalescer())
        try pipeline.addHandler(MessageToByteHandler(FrameEncoder()))
        try pipeline.addHandler(ByteToMessageHandler(FrameDecoder(
            maxFrameBytes: configuration.maxFrameBytes, frameDeadline: configuration.frameDeadline, budget: configuration.inboundBudget)))
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
