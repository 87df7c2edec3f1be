import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// The pages' own HTTP/1.1 client (issue 29, point 2): one POST, one answer, on keep-alive
/// connections kept per origin (scheme, host, port), written with NIO's HTTP codec directly.
/// Per request it allocates the head, the body's buffer and one promise, where AsyncHTTPClient's
/// general machinery (request bag, streaming body, pool state machine, logger) cost about a
/// quarter of Klaxon's CPU per page.
///
/// What it does not do, it leaves to the caller's general client (`post` returns nil): an
/// origin whose `perOriginLimit` connections are all busy, a URL with credentials in it, an
/// https URL when the trust roots could not be loaded (the general client then names why).
/// Redirects, statuses and retries are the caller's: this is one exchange.
public final class LeanHTTP1: Sendable {
    /// Where one URL's requests go, parsed once per distinct URL.
    public struct Target: Sendable, Hashable {
        public let tls: Bool
        /// The host without brackets (an IPv6 literal is bare).
        public let host: String
        public let port: Int
        /// The Host header: the host as written (brackets for IPv6) and the port if one was written.
        public let authority: String
        /// Path and query, percent-encoded as written; "/" when the URL has no path.
        public let uri: String

        var origin: Origin { Origin(tls: tls, host: host, port: port) }
    }

    struct Origin: Hashable, Sendable {
        let tls: Bool
        let host: String
        let port: Int
    }

    public struct Response: Sendable {
        public let status: Int
        public let location: String?
        public let retryAfter: String?
        let keepAlive: Bool

        public init(status: Int, location: String?, retryAfter: String?) {
            self.init(status: status, location: location, retryAfter: retryAfter, keepAlive: false)
        }

        init(status: Int, location: String?, retryAfter: String?, keepAlive: Bool) {
            self.status = status
            self.location = location
            self.retryAfter = retryAfter
            self.keepAlive = keepAlive
        }
    }

    /// At most this many connections per origin (busy and idle); beyond, the caller's general
    /// client takes the request. The dispatcher bounds pages in flight per address (128), so one
    /// address that never answers holds at most half of them.
    public let perOriginLimit: Int
    /// An idle kept-alive connection is closed after this long.
    static let idleTimeout: TimeAmount = .seconds(60)

    let group: any EventLoopGroup
    let tls: NIOSSLContext?
    private let pools = NIOLockedValueBox<[Origin: OriginPool]>([:])
    private let targets = NIOLockedValueBox<[String: Target?]>([:])

    struct OriginPool {
        var idle: [LeanConnection] = []
        /// Connections open or being opened (busy and idle).
        var open = 0
    }

    public init(group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, tlsConfiguration: TLSConfiguration, perOriginLimit: Int = 256) {
        self.group = group
        self.tls = try? NIOSSLContext(configuration: tlsConfiguration)
        self.perOriginLimit = perOriginLimit
    }

    /// Connections open to `url`'s origin now (busy and idle), for tests and metrics.
    public func openConnections(to url: String) -> Int {
        guard let target = target(url) else { return 0 }
        return pools.withLockedValue { $0[target.origin]?.open ?? 0 }
    }

    /// `url` parsed (cached: a surge to one webhook parses it once); nil when this client does not
    /// take it (not http or https, credentials in the URL, no host).
    public func target(_ url: String) -> Target? {
        if let cached = targets.withLockedValue({ $0[url] }) { return cached }
        let parsed = Self.parse(url)
        targets.withLockedValue { cache in
            if cache.count >= 10_000 { cache.removeAll() }
            cache[url] = .some(parsed)
        }
        return parsed
    }

    static func parse(_ url: String) -> Target? {
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(), scheme == "http" || scheme == "https",
              components.percentEncodedUser == nil, components.percentEncodedPassword == nil,
              let written = components.percentEncodedHost, !written.isEmpty
        else { return nil }
        let bare = written.hasPrefix("[") && written.hasSuffix("]") ? String(written.dropFirst().dropLast()) : written
        guard !bare.contains("%") || bare.contains(":") else { return nil }  // a percent-encoded name: the general client decodes it
        let tls = scheme == "https"
        let host = bare.contains(":") ? "[\(bare)]" : bare
        let path = components.percentEncodedPath
        let uri = (path.isEmpty ? "/" : path) + (components.percentEncodedQuery.map { "?\($0)" } ?? "")
        return Target(
            tls: tls, host: bare, port: components.port ?? (tls ? 443 : 80), authority: host + (components.port.map { ":\($0)" } ?? ""), uri: uri)
    }

    /// POSTs `body` with `headers` (Host and Content-Length are added) and returns the answer
    /// once it has been read to its end; nil when the origin's connections are all busy. Throws
    /// `LeanHTTP1Error` when no answer came by `deadline`, the connection failed, or the answer
    /// was not HTTP. A kept-alive connection that the server had closed before answering is
    /// replaced by a new one once (the request never reached anyone).
    public func post(_ target: Target, headers: HTTPHeaders, body: [UInt8], deadline: NIODeadline) async throws -> Response? {
        if target.tls && tls == nil { return nil }
        var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: target.uri, headers: headers)
        head.headers.replaceOrAdd(name: "Host", value: target.authority)
        head.headers.replaceOrAdd(name: "Content-Length", value: String(body.count))
        for attempt in 0..<2 {
            guard let (connection, reused) = try await acquire(target, deadline: deadline, fresh: attempt > 0) else { return nil }
            do {
                let response = try await connection.exchange(head, body: body, deadline: deadline)
                if response.keepAlive { release(connection, to: target.origin) }
                return response
            } catch LeanHTTP1Error.closed(answered: false) where reused && attempt == 0 {
                continue
            }
        }
        throw LeanHTTP1Error.closed(answered: false)
    }

    private enum Pick {
        case idle(LeanConnection)
        case open
        case busy
    }

    private func acquire(_ target: Target, deadline: NIODeadline, fresh: Bool) async throws -> (LeanConnection, reused: Bool)? {
        let origin = target.origin
        let limit = perOriginLimit
        let pick = pools.withLockedValue { pools -> Pick in
            var pool = pools[origin] ?? OriginPool()
            defer { pools[origin] = pool }
            while !fresh, let connection = pool.idle.popLast() {
                // A closed one was already counted out by its close future.
                if connection.channel.isActive { return .idle(connection) }
            }
            guard pool.open < limit else { return .busy }
            pool.open += 1
            return .open
        }
        switch pick {
        case let .idle(connection):
            return (connection, true)
        case .busy:
            return nil
        case .open:
            do {
                return (try await connect(target, deadline: deadline), false)
            } catch {
                pools.withLockedValue { $0[origin]?.open -= 1 }
                throw error
            }
        }
    }

    private func release(_ connection: LeanConnection, to origin: Origin) {
        guard connection.channel.isActive else { return }
        pools.withLockedValue { $0[origin, default: OriginPool()].idle.append(connection) }
    }

    private func connect(_ target: Target, deadline: NIODeadline) async throws -> LeanConnection {
        let left = deadline - .now()
        guard left > .zero else { throw LeanHTTP1Error.timedOut }
        let tls = target.tls ? self.tls : nil
        // SNI and name checks use the name; an IP literal is checked against the certificate's IP SANs.
        let sniName = target.tls && !Self.isIPLiteral(target.host) ? target.host : nil
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(left)
            // At the TCP level (IPPROTO_TCP): the socket-level option of the same number is SO_DEBUG, root only.
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: tls, serverHostname: sniName)) }
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(LeanExchangeHandler())
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(host: target.host, port: target.port).get()
        } catch ChannelError.connectTimeout {
            throw LeanHTTP1Error.timedOut
        } catch {
            throw LeanHTTP1Error.connect(host: target.host, port: target.port, reason: "\(error)")
        }
        let handler = try await channel.pipeline.handler(type: LeanExchangeHandler.self).map { NIOLoopBound($0, eventLoop: channel.eventLoop) }.get()
        let connection = LeanConnection(channel: channel, handler: handler)
        let origin = target.origin
        channel.closeFuture.whenComplete { [self] _ in
            pools.withLockedValue { pools in
                pools[origin]?.open -= 1
                pools[origin]?.idle.removeAll { $0 === connection }
            }
        }
        return connection
    }

    static func isIPLiteral(_ host: String) -> Bool {
        (try? SocketAddress(ipAddress: host, port: 0)) != nil
    }
}

public enum LeanHTTP1Error: Error, CustomStringConvertible, Equatable {
    case connect(host: String, port: Int, reason: String)
    case timedOut
    /// The connection closed before the answer's end (`answered`: some of it had come).
    case closed(answered: Bool)
    case invalidResponse(String)
    /// TLS failed (a certificate that does not verify, a handshake refused).
    case tls(String)
    /// The connection failed otherwise (reset, write error).
    case failed(String)

    public var description: String {
        switch self {
        case let .connect(host, port, reason): "could not connect to \(host):\(port): \(reason)"
        case .timedOut: "no answer within the timeout"
        case .closed(answered: false): "the connection closed before any answer"
        case .closed(answered: true): "the connection closed in the middle of the answer"
        case let .invalidResponse(why): "the answer is not valid HTTP/1.1: \(why)"
        case let .tls(why): "TLS failed: \(why)"
        case let .failed(why): "the connection failed: \(why)"
        }
    }
}

/// One kept-alive connection: its channel and the handler that runs its one exchange at a time.
final class LeanConnection: Sendable {
    let channel: any Channel
    let handler: NIOLoopBound<LeanExchangeHandler>

    init(channel: any Channel, handler: NIOLoopBound<LeanExchangeHandler>) {
        self.channel = channel
        self.handler = handler
    }

    func exchange(_ head: HTTPRequestHead, body: [UInt8], deadline: NIODeadline) async throws -> LeanHTTP1.Response {
        let promise = channel.eventLoop.makePromise(of: LeanHTTP1.Response.self)
        let handler = self.handler
        channel.eventLoop.execute {
            handler.value.begin(promise, head: head, body: body, deadline: deadline)
        }
        return try await promise.futureResult.get()
    }
}

/// Writes one request and reads its answer to the end (the body is read and dropped); closes the
/// connection on a timeout, an error, or an answer that does not keep it alive; closes an idle
/// one after `LeanHTTP1.idleTimeout`. Lives on its channel's event loop.
final class LeanExchangeHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    private var context: ChannelHandlerContext?
    private var promise: EventLoopPromise<LeanHTTP1.Response>?
    private var head: HTTPResponseHead?
    private var answered = false
    /// Why the connection failed, kept for the exchange that finds it closed (a TLS handshake
    /// fails before any request is written).
    private var failure: LeanHTTP1Error?
    private var deadlineTask: Scheduled<Void>?
    private var idleTask: Scheduled<Void>?

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func begin(_ promise: EventLoopPromise<LeanHTTP1.Response>, head: HTTPRequestHead, body: [UInt8], deadline: NIODeadline) {
        idleTask?.cancel()
        idleTask = nil
        guard let context, context.channel.isActive, self.promise == nil else {
            promise.fail(failure ?? LeanHTTP1Error.closed(answered: false))
            return
        }
        self.promise = promise
        self.head = nil
        self.answered = false
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        deadlineTask = context.eventLoop.scheduleTask(deadline: deadline) {
            bound.value.fail(LeanHTTP1Error.timedOut)
            bound.value.context?.close(promise: nil)
        }
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenFailure { error in
            bound.value.fail(bound.value.failure ?? LeanHTTP1Error.failed("\(error)"))
            bound.value.context?.close(promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case let .head(head):
            answered = true
            // 100 Continue and other interim answers: the real one follows.
            if head.status.code >= 100 && head.status.code < 200 && head.status.code != 101 { return }
            self.head = head
        case .body:
            answered = true
        case .end:
            guard let promise, let head else { return }
            self.promise = nil
            deadlineTask?.cancel()
            deadlineTask = nil
            let response = LeanHTTP1.Response(
                status: Int(head.status.code), location: head.headers.first(name: "Location"), retryAfter: head.headers.first(name: "Retry-After"),
                keepAlive: head.isKeepAlive)
            if response.keepAlive {
                let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
                idleTask = context.eventLoop.scheduleTask(in: LeanHTTP1.idleTimeout) { bound.value.context?.close(promise: nil) }
            } else {
                context.close(promise: nil)
            }
            promise.succeed(response)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        idleTask?.cancel()
        idleTask = nil
        fail(failure ?? LeanHTTP1Error.closed(answered: answered))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let failure: LeanHTTP1Error =
            switch error {
            case HTTPParserError.invalidEOFState: .closed(answered: true)
            case is HTTPParserError, is NIOHTTPDecoderError: .invalidResponse("\(error)")
            case is NIOSSLError, is BoringSSLError: .tls("\(error)")
            default: .failed("\(error)")
            }
        if self.failure == nil { self.failure = failure }
        fail(failure)
        context.close(promise: nil)
    }

    private func fail(_ error: any Error) {
        deadlineTask?.cancel()
        deadlineTask = nil
        if let promise {
            self.promise = nil
            promise.fail(error)
        }
    }
}
