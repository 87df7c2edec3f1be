import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// A small real HTTP server that records every request: the webhook receiver of `klaxon dev`
/// and of the tests. Answers are scripted (`respond`) so retries can be exercised.
public final class HTTPSink: Sendable {
    public struct Request: Sendable {
        public var method: String
        public var uri: String
        public var headers: [(String, String)]
        public var body: [UInt8]

        public func header(_ name: String) -> String? {
            headers.first { $0.0.lowercased() == name.lowercased() }?.1
        }
    }

    /// A scripted answer: status and extra headers (Location, Retry-After, …).
    public struct Answer: Sendable {
        public var status: Int
        public var headers: [(String, String)]

        public init(_ status: Int, headers: [(String, String)] = []) {
            self.status = status
            self.headers = headers
        }
    }

    private struct State {
        var requests: [Request] = []
        var count = 0
        var scripted: [Answer] = []
        /// Every request is answered `outage.status` until this instant (monotonic).
        var outage: (until: NIODeadline, status: Int)?
        var waiters: [(id: Int, count: Int, continuation: CheckedContinuation<Void, Never>)] = []
        var nextWaiter = 0
    }

    private let state = NIOLockedValueBox(State())
    private let channel: Channel
    private let onRequest: (@Sendable (Request) -> Void)?
    private let keepRequests: Bool

    public var port: Int { channel.localAddress?.port ?? 0 }

    private init(channel: Channel, onRequest: (@Sendable (Request) -> Void)?, keepRequests: Bool, scheme: String) {
        self.channel = channel
        self.scheme = scheme
        self.onRequest = onRequest
        self.keepRequests = keepRequests
    }

    public static func start(
        host: String = "127.0.0.1", port: Int = 0, keepRequests: Bool = true, tls: NIOSSLContext? = nil,
        onRequest: (@Sendable (Request) -> Void)? = nil
    ) async throws -> HTTPSink {
        let box = NIOLockedValueBox<HTTPSink?>(nil)
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                if let tls {
                    do { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls)) } catch {
                        return channel.eventLoop.makeFailedFuture(error)
                    }
                }
                return channel.pipeline.configureHTTPServerPipeline().flatMapThrowing {
                    try channel.pipeline.syncOperations.addHandler(SinkHandler { request in
                        box.withLockedValue { $0 }?.record(request) ?? Answer(200)
                    })
                }
            }
            .bind(host: host, port: port).get()
        let sink = HTTPSink(channel: channel, onRequest: onRequest, keepRequests: keepRequests, scheme: tls == nil ? "http" : "https")
        box.withLockedValue { $0 = sink }
        return sink
    }

    public var url: String { "\(scheme)://127.0.0.1:\(port)" }
    private let scheme: String

    /// The next requests get these statuses, in order; after them, 200.
    public func respond(_ statuses: [Int]) {
        respond(statuses.map { Answer($0) })
    }

    /// The next requests get these answers, in order; after them, 200.
    public func respond(_ answers: [Answer]) {
        state.withLockedValue { $0.scripted.append(contentsOf: answers) }
    }

    /// An outage: every request is answered `status` for `duration` from now (the sink's own
    /// monotonic time, not the services' clock: an endpoint is down in real time).
    public func failFor(_ duration: TimeAmount, status: Int = 503) {
        state.withLockedValue { $0.outage = (.now() + duration, status) }
    }

    public var requests: [Request] { state.withLockedValue { $0.requests } }

    /// How many requests arrived (also when they are not kept).
    public var count: Int { state.withLockedValue { $0.count } }

    /// Waits until at least `count` requests arrived or `timeout` passed; returns the requests.
    public func waitForRequests(_ count: Int, timeout: Duration) async -> [Request] {
        let id = state.withLockedValue { state in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        // The timeout releases this wait only, and only if it is still waiting.
        let timer = Task {
            do { try await Task.sleep(for: timeout) } catch { return }
            self.releaseWaiters { $0 == id }
        }
        defer { timer.cancel() }
        await withCheckedContinuation { continuation in
            let ready = state.withLockedValue { state -> Bool in
                if state.count >= count { return true }
                state.waiters.append((id, count, continuation))
                return false
            }
            if ready { continuation.resume() }
        }
        return requests
    }

    public func shutdown() async {
        try? await channel.close()
        releaseWaiters { _ in true }
    }

    private func record(_ request: Request) -> Answer {
        let answer = state.withLockedValue { state -> Answer in
            if keepRequests { state.requests.append(request) }
            state.count += 1
            if let outage = state.outage, NIODeadline.now() < outage.until { return Answer(outage.status) }
            return state.scripted.isEmpty ? Answer(200) : state.scripted.removeFirst()
        }
        onRequest?(request)
        releaseWaiters { _ in false }
        return answer
    }

    /// Resumes every wait whose count is reached, and those `force` picks (by wait id).
    private func releaseWaiters(force: (Int) -> Bool) {
        let ready = state.withLockedValue { state -> [CheckedContinuation<Void, Never>] in
            let count = state.count
            let done = { (waiter: (id: Int, count: Int, continuation: CheckedContinuation<Void, Never>)) in
                force(waiter.id) || count >= waiter.count
            }
            let ready = state.waiters.filter(done).map(\.continuation)
            state.waiters.removeAll(where: done)
            return ready
        }
        for continuation in ready { continuation.resume() }
    }
}

private final class SinkHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let answer: @Sendable (HTTPSink.Request) -> HTTPSink.Answer
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []

    init(answer: @escaping @Sendable (HTTPSink.Request) -> HTTPSink.Answer) {
        self.answer = answer
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case let .head(head):
            self.head = head
            body = []
        case var .body(buffer):
            body.append(contentsOf: buffer.readBytes(length: buffer.readableBytes) ?? [])
        case .end:
            guard let head else { return }
            let request = HTTPSink.Request(
                method: head.method.rawValue, uri: head.uri, headers: head.headers.map { ($0.name, $0.value) }, body: body)
            let scripted = answer(request)
            let status = scripted.status
            let reply = status < 300 ? "{\"ok\":true}" : "{\"error\":\"scripted failure\"}"
            var headers = HTTPHeaders(scripted.headers)
            headers.add(name: "Content-Type", value: "application/json")
            headers.add(name: "Content-Length", value: String(reply.utf8.count))
            context.write(wrapOutboundOut(.head(HTTPResponseHead(
                version: head.version, status: HTTPResponseStatus(statusCode: status), headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: reply)))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            self.head = nil
        }
    }
}
