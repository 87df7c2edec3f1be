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

/// Sees every call's method and headers before its handler; a returned error is the reply.
public typealias RPCAuthenticator = @Sendable (_ method: String, _ headers: [String: String]) async -> RPCError?

/// The binary-protocol listener: length-prefixed Envelopes, pipelined requests answered as they
/// finish (out of order), one task per request, and a bad connection never touching the others.
public final class RPCServer: Service, Sendable {
    public let configuration: RPCServerConfiguration
    private let router: RPCRouter
    private let authenticate: RPCAuthenticator?
    private let logger: Logger
    private let group: EventLoopGroup
    private let listening = Latch<SocketAddress>()
    private let connectionCount = NIOLockedValueBox(0)

    public init(
        configuration: RPCServerConfiguration, router: RPCRouter, logger: Logger,
        authenticate: RPCAuthenticator? = nil, group: EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        self.configuration = configuration
        self.router = router
        self.authenticate = authenticate
        self.logger = logger
        self.group = group
    }

    /// The address bound, once listening (useful with port 0).
    public func localAddress() async throws -> SocketAddress {
        try await listening.wait()
    }

    public func run() async throws {
        let configuration = self.configuration
        let serverChannel: NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>
        do {
            serverChannel = try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 256)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .bind(host: configuration.host, port: configuration.port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let pipeline = channel.pipeline.syncOperations
                        try pipeline.addHandler(IdleStateHandler(allTimeout: configuration.idleTimeout))
                        try pipeline.addHandler(IdleConnectionCloser())
                        try pipeline.addHandler(FlushCoalescer())
                        try pipeline.addHandler(MessageToByteHandler(FrameEncoder()))
                        try pipeline.addHandler(ByteToMessageHandler(FrameDecoder(maxFrameBytes: configuration.maxFrameBytes)))
                        return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
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
                    connections.addTask { await self.serve(connection) }
                }
            }
        }
    }

    private func serve(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>) async {
        let admitted = connectionCount.withLockedValue { count in
            guard count < configuration.maxConnections else { return false }
            count += 1
            return true
        }
        defer { if admitted { connectionCount.withLockedValue { $0 -= 1 } } }
        let peer = connection.channel.remoteAddress.map { "\($0)" } ?? "?"
        let logger: Logger = {
            var logger = self.logger
            logger[metadataKey: "rpc.peer"] = "\(peer)"
            return logger
        }()

        do {
            try await connection.executeThenClose { inbound, outbound in
                guard admitted else {
                    let refusal = RPCStatus(code: .resourceExhausted, message: "too many connections (limit \(configuration.maxConnections))")
                    try await outbound.write(Envelope(id: 0, status: refusal).frameBuffer())
                    return
                }
                try await withThrowingTaskGroup(of: Void.self) { calls in
                    var unreaped = 0
                    do {
                        // On graceful shutdown: stop reading, finish the calls already read, close.
                        for try await frame in inbound.cancelOnGracefulShutdown() {
                            let request: Envelope
                            do {
                                request = try Envelope(frame: frame)
                            } catch {
                                // The frame boundary may be lost: answer once, then close this connection only.
                                logger.info("closing connection after a malformed envelope", metadata: ["rpc.error": "\(error)"])
                                let status = RPCStatus(code: .invalidArgument, message: "malformed envelope: \(error)")
                                try await outbound.write(Envelope(id: 0, status: status).frameBuffer())
                                break
                            }
                            // At most maxInFlight requests un-reaped: reaping waits only when all are still running.
                            while unreaped >= configuration.maxInFlightPerConnection {
                                try await calls.next()
                                unreaped -= 1
                            }
                            unreaped += 1
                            calls.addTask {
                                let reply = await self.handle(request, logger: logger)
                                try await outbound.write(reply.frameBuffer())
                            }
                        }
                    } catch let error as FrameError {
                        logger.info("closing connection after a bad frame", metadata: ["rpc.error": "\(error)"])
                        try? await outbound.write(Envelope(id: 0, status: error.status).frameBuffer())
                    }
                    // Replies to requests already read still go out before the connection closes.
                    try await calls.waitForAll()
                }
            }
        } catch {
            logger.debug("connection ended", metadata: ["rpc.error": "\(error)"])
        }
    }

    /// One request to one reply; never throws, every failure is a status.
    func handle(_ request: Envelope, logger: Logger) async -> Envelope {
        func reply(_ status: RPCStatus, _ body: [UInt8] = []) -> Envelope {
            Envelope(id: request.id, body: body, status: status)
        }
        guard !request.method.isEmpty else {
            return reply(RPCStatus(code: .invalidArgument, message: "request has no method"))
        }
        guard let handler = router.handler(for: request.method) else {
            return reply(RPCStatus(code: .unimplemented, message: "unknown method \(request.method)"))
        }
        if let authenticate, let refusal = await authenticate(request.method, request.headers) {
            return reply(refusal.status)
        }
        var callLogger = logger
        callLogger[metadataKey: "rpc.method"] = "\(request.method)"
        callLogger[metadataKey: "rpc.id"] = "\(request.id)"
        let context = RPCContext(
            method: request.method, headers: request.headers, logger: callLogger,
            deadlineBudgetMs: request.headers["deadline-ms"].flatMap { Int64($0) })
        do {
            return reply(.ok, try await handler(request.body, context))
        } catch let error as RPCError {
            return reply(error.status)
        } catch let error as RPCStatusConvertible {
            if error.rpcError.code == .internalError || error.rpcError.code == .unavailable {
                callLogger.error("handler failed", metadata: ["rpc.error": "\(error)"])
            }
            return reply(error.rpcError.status)
        } catch is CancellationError {
            return reply(RPCStatus(code: .unavailable, message: "server is shutting down"))
        } catch {
            callLogger.error("handler failed", metadata: ["rpc.error": "\(error)"])
            return reply(RPCStatus(code: .internalError, message: "internal error"))
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
