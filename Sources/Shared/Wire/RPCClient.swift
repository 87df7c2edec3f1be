import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL

public struct RPCClientConfiguration: Sendable {
    public var host: String
    public var port: Int
    public var connectTimeout: TimeAmount = .seconds(2)
    /// How long a call waits for its reply unless the call says otherwise.
    public var defaultTimeout: TimeAmount = .seconds(10)
    public var maxFrameBytes: Int = Framing.defaultMaxFrameBytes
    /// After a failed connect, calls fail fast with UNAVAILABLE for a delay that doubles up to the maximum.
    public var initialBackoff: TimeAmount = .milliseconds(50)
    public var maxBackoff: TimeAmount = .seconds(5)
    /// Headers sent with every call (e.g. authorization).
    public var headers: [String: String] = [:]
    /// Run in order on every call before it is sent (a token that rotates, a request id, …).
    public var interceptors: [any RPCClientInterceptor] = []
    /// TLS to the server (nil: plain TCP); the server's certificate is verified.
    public var tls: ClientTLS?

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }
}

/// The client side of the middleware chain: sees each call's method and headers before it is sent.
public protocol RPCClientInterceptor: Sendable {
    func intercept(method: String, headers: inout [String: String])
}

/// A client for one server: one reused connection, pipelined calls matched to replies by id,
/// a deadline on every call, reconnection with exponential backoff.
public final class RPCClient: Sendable {
    public let configuration: RPCClientConfiguration
    private let group: EventLoopGroup
    /// The TLS context, made once (an unreadable CA file fails every connect, naming it).
    private let tlsContext: Result<NIOSSLContext, any Error>?
    private let state = NIOLockedValueBox(ConnectionState.idle)
    private let ids = NIOLockedValueBox<UInt64>(0)

    private enum ConnectionState {
        case idle
        case connecting(EventLoopFuture<Connection>)
        case connected(Channel, PendingCalls)
        case backingOff(until: NIODeadline, failures: Int, error: String)
        case closed
    }

    public init(configuration: RPCClientConfiguration, group: EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.configuration = configuration
        self.group = group
        self.tlsContext = configuration.tls.map { tls in Result { try tls.context() } }
    }

    public convenience init(host: String, port: Int) {
        self.init(configuration: RPCClientConfiguration(host: host, port: port))
    }

    /// Calls `method` and decodes its reply; every failure is an `RPCError`.
    public func call<Request: WireMessage, Reply: WireMessage>(
        _ method: RPCMethod<Request, Reply>, _ request: Request,
        headers: [String: String] = [:], timeout: TimeAmount? = nil
    ) async throws -> Reply {
        let envelope = try await callRaw(method.name, body: request.wireBytes(), headers: headers, timeout: timeout)
        do {
            return try Reply(wire: envelope.body)
        } catch {
            throw RPCError(.internalError, "cannot decode reply to \(method): \(error)")
        }
    }

    /// Sends one envelope and returns the OK reply envelope; a non-OK status is thrown.
    public func callRaw(
        _ method: String, body: [UInt8], headers: [String: String] = [:], timeout: TimeAmount? = nil
    ) async throws -> Envelope {
        let timeout = timeout ?? configuration.defaultTimeout
        var allHeaders = configuration.headers.merging(headers) { _, call in call }
        allHeaders["deadline-ms"] = String(timeout.nanoseconds / 1_000_000)
        for interceptor in configuration.interceptors { interceptor.intercept(method: method, headers: &allHeaders) }
        let id = ids.withLockedValue { value -> UInt64 in
            value &+= 1
            return value
        }
        let request = Envelope(id: id, method: method, body: body, headers: allHeaders)
        // The deadline belongs to the call, not to the connection handler's write: it runs from
        // here, whatever happens to the connection (still connecting, closing, already gone).
        let active = activeChannel()
        let loop = active?.channel.eventLoop ?? group.any()
        let promise = loop.makePromise(of: Envelope.self)
        let milliseconds = timeout.nanoseconds / 1_000_000
        let timer = loop.scheduleTask(in: timeout) {
            promise.fail(RPCError(.deadlineExceeded, "\(method) got no reply within \(milliseconds) ms"))
        }
        promise.futureResult.whenComplete { _ in timer.cancel() }
        let call = PendingCall(envelope: request, promise: promise)
        if let active {
            send(call, on: active)
        } else {
            // Connecting may take longer than the deadline: the caller's wait ends at the deadline.
            Task {
                do {
                    send(call, on: try await self.connectedChannel())
                } catch {
                    promise.fail(error as? RPCError ?? RPCError(.unavailable, "call to \(method) failed: \(error)"))
                }
            }
        }
        let reply: Envelope
        do {
            reply = try await promise.futureResult.get()
        } catch let error as RPCError {
            throw error
        } catch {
            throw RPCError(.unavailable, "call to \(method) failed: \(error)")
        }
        let status = reply.status ?? .ok
        guard status.code == .ok else { throw RPCError(status: status) }
        return reply
    }

    /// Registers the call in the connection's pending table, then writes it; a write that fails
    /// (the connection closed meanwhile) fails the call at once. However the call ends (reply,
    /// deadline, failed write, connection lost), its entry goes.
    private func send(_ call: PendingCall, on connection: Connection) {
        let method = call.envelope.method
        let id = call.envelope.id
        guard connection.pending.add(id, call.promise) else {
            call.promise.fail(RPCError(.unavailable, "connection closed before \(method) was sent"))
            return
        }
        call.promise.futureResult.whenComplete { _ in connection.pending.remove(id) }
        connection.channel.writeAndFlush(call.envelope.frameBuffer(allocator: connection.channel.allocator)).whenFailure { error in
            call.promise.fail(RPCError(.unavailable, "cannot send \(method): \(error)"))
        }
    }

    /// A live connection and its calls waiting for replies.
    struct Connection: Sendable {
        let channel: Channel
        let pending: PendingCalls
    }

    private func activeChannel() -> Connection? {
        state.withLockedValue { state in
            if case let .connected(channel, pending) = state, channel.isActive { return Connection(channel: channel, pending: pending) }
            return nil
        }
    }

    public func close() async {
        let channel = state.withLockedValue { state -> Channel? in
            defer { state = .closed }
            if case let .connected(channel, _) = state { return channel }
            return nil
        }
        try? await channel?.close()
    }

    /// Opens the connection now if none is open (or waits for the one being opened), and throws
    /// UNAVAILABLE as a call would (at once while backing off). For a sender that should not hold
    /// anything while the peer is being reached: an outbox relay connects before it leases rows.
    public func connect() async throws {
        _ = try await connectedChannel()
    }

    private enum Step {
        case use(Connection)
        case wait(EventLoopFuture<Connection>, started: Bool, failures: Int)
        case fail(RPCError)
    }

    private func connectedChannel() async throws -> Connection {
        let step = state.withLockedValue { state -> Step in
            var failures = 0
            switch state {
            case let .connected(channel, pending) where channel.isActive:
                return .use(Connection(channel: channel, pending: pending))
            case let .connecting(future):
                return .wait(future, started: false, failures: 0)
            case let .backingOff(until, previous, error):
                if NIODeadline.now() < until {  // monotonic connection backoff, not a domain instant
                    return .fail(RPCError(.unavailable, "\(configuration.host):\(configuration.port) unreachable: \(error)"))
                }
                failures = previous
            case .closed:
                return .fail(RPCError(.unavailable, "client closed"))
            case .idle, .connected:
                break
            }
            let pending = PendingCalls()
            let future = makeBootstrap(pending).connect(host: configuration.host, port: configuration.port)
                .map { Connection(channel: $0, pending: pending) }
            state = .connecting(future)
            return .wait(future, started: true, failures: failures)
        }
        switch step {
        case let .use(connection):
            return connection
        case let .fail(error):
            throw error
        case let .wait(future, started, failures):
            if started { observe(future, failures: failures) }
            do {
                return try await future.get()
            } catch {
                throw RPCError(.unavailable, "cannot connect to \(configuration.host):\(configuration.port): \(error)")
            }
        }
    }

    private func observe(_ future: EventLoopFuture<Connection>, failures: Int) {
        future.whenComplete { result in
            switch result {
            case let .success(connection):
                let channel = connection.channel
                let kept = self.state.withLockedValue { state -> Bool in
                    guard case .connecting = state else { return false }
                    state = .connected(channel, connection.pending)
                    return true
                }
                if !kept { channel.close(promise: nil); return }
                channel.closeFuture.whenComplete { _ in
                    self.state.withLockedValue { state in
                        if case let .connected(current, _) = state, current === channel { state = .idle }
                    }
                }
            case let .failure(error):
                let delay = self.backoff(afterFailures: failures + 1)
                self.state.withLockedValue { state in
                    guard case .connecting = state else { return }
                    state = .backingOff(until: .now() + delay, failures: failures + 1, error: "\(error)")  // monotonic
                }
            }
        }
    }

    func backoff(afterFailures failures: Int) -> TimeAmount {
        let initial = configuration.initialBackoff.nanoseconds
        let exponent = min(failures - 1, 30)
        let delay = min(initial.multipliedReportingOverflow(by: Int64(1) << exponent).partialValue, configuration.maxBackoff.nanoseconds)
        return .nanoseconds(delay > 0 ? delay : configuration.maxBackoff.nanoseconds)
    }

    private func makeBootstrap(_ pending: PendingCalls) -> ClientBootstrap {
        let maxFrameBytes = configuration.maxFrameBytes
        let tls = tlsContext.map { context in (context, configuration.tls?.serverName ?? Self.hostname(configuration.host)) }
        return ClientBootstrap(group: group)
            .connectTimeout(configuration.connectTimeout)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    if let (context, serverName) = tls {
                        try pipeline.addHandler(NIOSSLClientHandler(context: try context.get(), serverHostname: serverName))
                    }
                    try pipeline.addHandler(FlushCoalescer())
                    try pipeline.addHandler(MessageToByteHandler(FrameEncoder()))
                    try pipeline.addHandler(ByteToMessageHandler(FrameDecoder(maxFrameBytes: maxFrameBytes)))
                    try pipeline.addHandler(RPCClientHandler(pending: pending))
                }
            }
    }
}

extension RPCClient {
    /// A name for SNI and the certificate check; nil for an IP address (NIOSSL then checks the
    /// certificate's IP addresses against the peer's).
    public static func hostname(_ host: String) -> String? {
        host.allSatisfy { $0.isNumber || $0 == "." } || host.contains(":") ? nil : host
    }
}

/// A call on its way out; its promise ends at its deadline (set by the caller) or at the reply.
struct PendingCall: Sendable {
    var envelope: Envelope
    var promise: EventLoopPromise<Envelope>
}

/// One connection's calls waiting for replies, by envelope id. Filled by the client before it
/// writes, emptied by replies, deadlines and the connection's end; the channel handler only reads it.
final class PendingCalls: Sendable {
    private struct State {
        var calls: [UInt64: EventLoopPromise<Envelope>] = [:]
        var closed = false
    }

    private let state = NIOLockedValueBox(State())

    /// False when the connection already ended.
    func add(_ id: UInt64, _ promise: EventLoopPromise<Envelope>) -> Bool {
        state.withLockedValue { state in
            guard !state.closed else { return false }
            state.calls[id] = promise
            return true
        }
    }

    func remove(_ id: UInt64) {
        _ = state.withLockedValue { $0.calls.removeValue(forKey: id) }
    }

    func complete(_ reply: Envelope) {
        state.withLockedValue { $0.calls.removeValue(forKey: reply.id) }?.succeed(reply)
    }

    /// Fails every waiting call; with `closing`, later ones too.
    func failAll(_ error: RPCError, closing: Bool) {
        let calls = state.withLockedValue { state -> [EventLoopPromise<Envelope>] in
            if closing { state.closed = true }
            defer { state.calls.removeAll() }
            return Array(state.calls.values)
        }
        for promise in calls { promise.fail(error) }
    }
}

/// Matches replies to calls through the connection's pending table; lives on the channel's event loop.
final class RPCClientHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let pending: PendingCalls

    init(pending: PendingCalls) {
        self.pending = pending
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        let reply: Envelope
        do {
            reply = try Envelope(frame: frame)
        } catch {
            pending.failAll(RPCError(.internalError, "malformed reply from server: \(error)"), closing: true)
            context.close(promise: nil)
            return
        }
        if reply.id == 0, let status = reply.status, status.code != .ok {
            // The server refused the connection or a frame (it closes next): every call gets its reason.
            pending.failAll(RPCError(status: status), closing: false)
            return
        }
        pending.complete(reply)
    }

    func channelInactive(context: ChannelHandlerContext) {
        pending.failAll(RPCError(.unavailable, "connection closed before the reply"), closing: true)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        pending.failAll(RPCError(.unavailable, "connection failed: \(error)"), closing: true)
        context.close(promise: nil)
    }
}
