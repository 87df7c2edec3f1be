import AsyncHTTPClient
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Shared
import Testing

/// The pages' lean HTTP/1.1 client (issue 29) against a real TCP server whose answers are
/// written byte by byte, so keep-alive, closes, interim answers and garbage are exact.
@Suite struct LeanHTTP1Tests {
    static func client(limit: Int = 256) -> LeanHTTP1 {
        LeanHTTP1(tlsConfiguration: .makeClientConfiguration(), perOriginLimit: limit)
    }

    static func headers(_ key: String) -> HTTPHeaders {
        ["Content-Type": "application/json", "Idempotency-Key": key, "User-Agent": "Klaxon-Notifier"]
    }

    @Test func urlsParseOnceIntoOriginAndRequestTarget() {
        let lean = Self.client()
        let full = lean.target("http://hooks.example:8080/a/b%20c?x=1&y=%2F#frag")
        #expect(full?.tls == false && full?.host == "hooks.example" && full?.port == 8080)
        #expect(full?.authority == "hooks.example:8080" && full?.uri == "/a/b%20c?x=1&y=%2F")
        let bare = lean.target("https://hooks.example")
        #expect(bare?.tls == true && bare?.port == 443 && bare?.authority == "hooks.example" && bare?.uri == "/")
        let v6 = lean.target("http://[::1]:9/p")
        #expect(v6?.host == "::1" && v6?.authority == "[::1]:9" && v6?.port == 9)
        // Not taken (the general client sends them): credentials in the URL, other schemes.
        #expect(lean.target("http://user:secret@hooks.example/") == nil)
        #expect(lean.target("ftp://hooks.example/") == nil)
        #expect(lean.target("not a url") == nil)
    }

    @Test func oneKeptAliveConnectionCarriesEveryPost() async throws {
        let server = try await ScriptedServer.start { _, _ in
            .answer("HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        }
        defer { server.stop() }
        let lean = Self.client()
        let target = try #require(lean.target("\(server.url)/hooks/ada?via=klaxon"))
        for n in 0..<20 {
            let body = Array("{\"n\":\(n)}".utf8)
            let response = try await lean.post(target, headers: Self.headers("page-\(n)"), body: body, deadline: .now() + .seconds(5))
            #expect(response?.status == 201)
        }
        #expect(server.connections == 1, "every POST on one kept-alive connection")
        let requests = server.requests
        #expect(requests.count == 20)
        let first = try #require(requests.first)
        #expect(first.head.hasPrefix("POST /hooks/ada?via=klaxon HTTP/1.1\r\n"), "\(first.head)")
        #expect(first.header("host") == "127.0.0.1:\(server.port)")
        #expect(first.header("content-length") == "7" && first.body == Array("{\"n\":0}".utf8))
        #expect(first.header("idempotency-key") == "page-0" && first.header("content-type") == "application/json")
        #expect(requests.map { $0.header("idempotency-key") } == (0..<20).map { "page-\($0)" })
        #expect(lean.openConnections(to: server.url) == 1)
    }

    @Test func anAnswerThatClosesIsNotKept() async throws {
        let server = try await ScriptedServer.start { _, _ in .answerAndClose("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n") }
        defer { server.stop() }
        let lean = Self.client()
        let target = try #require(lean.target(server.url))
        for n in 0..<3 {
            let response = try await lean.post(target, headers: Self.headers("k\(n)"), body: [1], deadline: .now() + .seconds(5))
            #expect(response?.status == 200)
        }
        #expect(server.connections == 3 && server.requests.count == 3)
        #expect(await eventually { lean.openConnections(to: server.url) == 0 }, "closed connections are counted out")
    }

    /// The server closed a kept-alive connection while it was idle: the next POST goes out again
    /// on a new connection, once, and nothing is sent twice.
    @Test func aConnectionTheServerClosedWhileIdleIsReplaced() async throws {
        let server = try await ScriptedServer.start { _, request in
            request == 0 ? .answerAndClose("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok") : .answer("HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
        }
        defer { server.stop() }
        let lean = Self.client()
        let target = try #require(lean.target(server.url))
        #expect(try await lean.post(target, headers: Self.headers("a"), body: [1], deadline: .now() + .seconds(5))?.status == 200)
        #expect(try await lean.post(target, headers: Self.headers("b"), body: [2], deadline: .now() + .seconds(5))?.status == 202)
        #expect(server.requests.map { $0.header("idempotency-key") } == ["a", "b"])
        #expect(server.connections == 2)
    }

    @Test func interimAnswersAreSkippedAndHeadersKept() async throws {
        let server = try await ScriptedServer.start { _, _ in
            .answer("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nContent-Length: 4\r\n\r\nslow")
        }
        defer { server.stop() }
        let lean = Self.client()
        let response = try await lean.post(try #require(lean.target(server.url)), headers: Self.headers("x"), body: [], deadline: .now() + .seconds(5))
        #expect(response?.status == 429 && response?.retryAfter == "7")
        let redirect = try await ScriptedServer.start { _, _ in .answer("HTTP/1.1 308 Permanent Redirect\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n") }
        defer { redirect.stop() }
        let moved = try await lean.post(try #require(lean.target(redirect.url)), headers: Self.headers("y"), body: [1], deadline: .now() + .seconds(5))
        #expect(moved?.status == 308 && moved?.location == "/elsewhere")
    }

    @Test func silenceGarbageAndAHalfAnswerAreNamedFailures() async throws {
        let silent = try await ScriptedServer.start { _, _ in .silence }
        defer { silent.stop() }
        let lean = Self.client()
        let started = NIODeadline.now()
        await #expect(throws: LeanHTTP1Error.timedOut) {
            _ = try await lean.post(try #require(lean.target(silent.url)), headers: Self.headers("s"), body: [1], deadline: .now() + .milliseconds(300))
        }
        #expect(NIODeadline.now() - started < .seconds(3))
        #expect(await eventually { lean.openConnections(to: silent.url) == 0 }, "a timed-out connection is closed, not kept")

        let garbage = try await ScriptedServer.start { _, _ in .answer("SMTP ready\r\n\r\n") }
        defer { garbage.stop() }
        do {
            _ = try await lean.post(try #require(lean.target(garbage.url)), headers: Self.headers("g"), body: [1], deadline: .now() + .seconds(5))
            Issue.record("garbage was taken for an answer")
        } catch let error as LeanHTTP1Error {
            guard case .invalidResponse = error else { Issue.record("\(error)"); return }
        }

        // Half an answer, then the server closes: failed, and not sent again (it may have been read).
        let half = try await ScriptedServer.start { _, _ in .answerAndClose("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort") }
        defer { half.stop() }
        await #expect(throws: LeanHTTP1Error.closed(answered: true)) {
            _ = try await lean.post(try #require(lean.target(half.url)), headers: Self.headers("h"), body: [1], deadline: .now() + .seconds(5))
        }
        #expect(half.requests.count == 1)

        let closedPort = try await ScriptedServer.start { _, _ in .silence }
        let refusedURL = closedPort.url
        // Closed before the connect: `stop()` alone closes later, and a connect could still land.
        try await closedPort.channel.close()
        do {
            _ = try await lean.post(try #require(lean.target(refusedURL)), headers: Self.headers("r"), body: [1], deadline: .now() + .seconds(5))
            Issue.record("a refused connection delivered")
        } catch let error as LeanHTTP1Error {
            guard case .connect = error else { Issue.record("\(error)"); return }
            #expect("\(error)".contains("could not connect to 127.0.0.1"))
        }
    }

    /// Past its limit an origin's POSTs are not queued here: `post` answers nil at once and the
    /// caller's general client takes them.
    @Test func pastTheLimitTheCallerTakesOver() async throws {
        let server = try await ScriptedServer.start { _, _ in .silence }
        defer { server.stop() }
        let lean = Self.client(limit: 2)
        let target = try #require(lean.target(server.url))
        let held = (0..<2).map { n in
            Task { try? await lean.post(target, headers: Self.headers("held-\(n)"), body: [1], deadline: .now() + .seconds(2)) }
        }
        #expect(await eventually { lean.openConnections(to: server.url) == 2 })
        let third = try await lean.post(target, headers: Self.headers("third"), body: [1], deadline: .now() + .seconds(2))
        #expect(third == nil)
        for task in held { _ = await task.value }
        #expect(await eventually { lean.openConnections(to: server.url) == 0 })
    }

    /// The clients `HTTPClient.pages(trusting:)` makes have a lean twin (one per CA file, as they
    /// are); a client made elsewhere has none and sends everything itself.
    @Test func thePagesClientsHaveALeanTwin() throws {
        let pages = HTTPClient.pages
        let twin = try #require(pages.lean)
        #expect(HTTPClient.pages(trusting: "").lean === twin)
        #expect(HTTPClient.pages(trusting: "/nonexistent-ca.pem").lean !== twin)
        let other = HTTPClient(eventLoopGroupProvider: .singleton)
        defer { try? other.syncShutdown() }
        #expect(other.lean == nil)
    }

    @Test func aBadHeaderIsRefusedBeforeAnythingIsSent() async throws {
        let server = try await ScriptedServer.start { _, _ in .answer("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n") }
        defer { server.stop() }
        let lean = Self.client()
        var headers = Self.headers("x")
        headers.add(name: "X-Injected", value: "a\r\nX-Evil: 1")
        do {
            _ = try await lean.post(try #require(lean.target(server.url)), headers: headers, body: [1], deadline: .now() + .seconds(5))
            Issue.record("a header with CR LF was sent")
        } catch {}
        #expect(server.requests.isEmpty)
    }
}

func eventually(_ condition: @Sendable () -> Bool) async -> Bool {
    for _ in 0..<200 {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return condition()
}

/// A TCP server that reads HTTP/1.1 requests (Content-Length bodies) and answers each with the
/// script's raw bytes.
final class ScriptedServer: Sendable {
    enum Action: Sendable {
        case answer(String)
        case answerAndClose(String)
        case silence
    }

    struct Request: Sendable {
        var head: String
        var body: [UInt8]

        func header(_ name: String) -> String? {
            for line in head.split(separator: "\r\n").dropFirst() {
                guard let colon = line.firstIndex(of: ":") else { continue }
                if line[..<colon].lowercased() == name { return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces) }
            }
            return nil
        }
    }

    let channel: any Channel
    let state: NIOLockedValueBox<(connections: Int, requests: [Request])>

    var port: Int { channel.localAddress?.port ?? 0 }
    var url: String { "http://127.0.0.1:\(port)" }
    var connections: Int { state.withLockedValue { $0.connections } }
    var requests: [Request] { state.withLockedValue { $0.requests } }

    init(channel: any Channel, state: NIOLockedValueBox<(connections: Int, requests: [Request])>) {
        self.channel = channel
        self.state = state
    }

    static func start(_ script: @escaping @Sendable (_ connection: Int, _ request: Int) -> Action) async throws -> ScriptedServer {
        let state = NIOLockedValueBox((connections: 0, requests: [Request]()))
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                let connection = state.withLockedValue { $0.connections += 1; return $0.connections - 1 }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Handler(connection: connection, state: state, script: script))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return ScriptedServer(channel: channel, state: state)
    }

    func stop() { channel.close(promise: nil) }

    final class Handler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let connection: Int
        let state: NIOLockedValueBox<(connections: Int, requests: [Request])>
        let script: @Sendable (Int, Int) -> Action
        var pending: [UInt8] = []

        init(connection: Int, state: NIOLockedValueBox<(connections: Int, requests: [Request])>, script: @escaping @Sendable (Int, Int) -> Action) {
            self.connection = connection
            self.state = state
            self.script = script
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var buffer = unwrapInboundIn(data)
            pending += buffer.readBytes(length: buffer.readableBytes) ?? []
            while let end = pending.firstRange(of: Array("\r\n\r\n".utf8)) {
                let head = String(decoding: pending[..<end.lowerBound], as: UTF8.self)
                let request = Request(head: head, body: [])
                let length = Int(request.header("content-length") ?? "0") ?? 0
                guard pending.count >= end.upperBound + length else { return }
                let body = Array(pending[end.upperBound..<(end.upperBound + length)])
                pending.removeFirst(end.upperBound + length)
                let index = state.withLockedValue { $0.requests.append(Request(head: head, body: body)); return $0.requests.count - 1 }
                switch script(connection, index) {
                case let .answer(bytes):
                    context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(string: bytes)), promise: nil)
                case let .answerAndClose(bytes):
                    let channel = context.channel
                    context.writeAndFlush(wrapOutboundOut(channel.allocator.buffer(string: bytes))).whenComplete { _ in
                        channel.close(promise: nil)
                    }
                case .silence:
                    break
                }
            }
        }
    }
}
