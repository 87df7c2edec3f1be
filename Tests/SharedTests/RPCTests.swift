import KlaxonDomain
import KlaxonTestSupport
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ServiceLifecycle
@testable import Shared
import Testing

/// The RPC server and client over real TCP on loopback.
@Suite struct RPCTests {
    static let echo = RPCMethod<Event, EventResult>("klaxon.test.v1.Test/Echo")
    static let slow = RPCMethod<Event, EventResult>("klaxon.test.v1.Test/Slow")
    static let loopSlow = RPCMethod<Event, EventResult>("klaxon.test.v1.Test/LoopSlow")
    static let held = RPCMethod<Event, EventResult>("klaxon.test.v1.Test/Held")

    /// A server whose Echo returns the request's routing key as the result's dedup key, and whose
    /// Slow sleeps `timestamp_ms` milliseconds first. Tracks the most calls seen running at once.
    final class Harness: Sendable {
        let server: RPCServer
        let task: Task<Void, Error>
        let running = NIOLockedValueBox((now: 0, max: 0))
        /// Echo calls answered.
        let echoed = NIOLockedValueBox(0)
        /// LoopSlow calls answered.
        let loopAnswered = NIOLockedValueBox(0)
        /// Calls to Held, on the event loop, answered when the test says so.
        let heldCalls = NIOLockedValueBox<[(key: String, promise: EventLoopPromise<EventResult>)]>([])
        var port: Int { get async throws { try await server.localAddress().port! } }

        init(
            maxInFlight: Int = 64, maxFrameBytes: Int = 64 * 1024, idleTimeout: TimeAmount = .seconds(300),
            authenticate: RPCAuthenticator? = nil, port: Int = 0, frameDeadline: TimeAmount = .seconds(10), maxPerPeer: Int = 512,
            echoLimit: Int? = nil
        ) {
            var configuration = RPCServerConfiguration(host: "127.0.0.1", port: port)
            configuration.idleTimeout = idleTimeout
            configuration.frameDeadline = frameDeadline
            configuration.maxConnectionsPerPeer = maxPerPeer
            configuration.maxInFlightPerConnection = maxInFlight
            configuration.maxFrameBytes = maxFrameBytes
            let running = self.running
            var router = RPCRouter()
            let echoed = self.echoed
            router.register(RPCTests.echo) { (event: Event, _) in
                echoed.withLockedValue { $0 += 1 }
                return EventResult(dedupKey: event.routingKey, incidentID: 1, outcome: .created)
            }
            if let echoLimit { router.limit(RPCTests.echo, maxBytes: echoLimit, field: "event") }
            router.register(RPCTests.slow) { (event: Event, _) in
                running.withLockedValue { $0.now += 1; $0.max = max($0.max, $0.now) }
                defer { running.withLockedValue { $0.now -= 1 } }
                try await Task.sleep(for: .milliseconds(event.payload?.timestampMs ?? 0))
                return EventResult(dedupKey: event.routingKey, incidentID: 2, outcome: .created)
            }
            // On the event loop, no task: answers after `timestamp_ms` via a scheduled task.
            let loopAnswered = self.loopAnswered
            router.registerOnLoop(RPCTests.loopSlow) { (event: Event, _, loop) in
                running.withLockedValue { $0.now += 1; $0.max = max($0.max, $0.now) }
                return loop.scheduleTask(in: .milliseconds(event.payload?.timestampMs ?? 0)) {
                    running.withLockedValue { $0.now -= 1 }
                    loopAnswered.withLockedValue { $0 += 1 }
                    return EventResult(dedupKey: event.routingKey, incidentID: 3, outcome: .created)
                }.futureResult
            }
            let heldCalls = self.heldCalls
            router.registerOnLoop(RPCTests.held) { (event: Event, _, loop) in
                running.withLockedValue { $0.now += 1; $0.max = max($0.max, $0.now) }
                let promise = loop.makePromise(of: EventResult.self)
                heldCalls.withLockedValue { $0.append((event.routingKey, promise)) }
                return promise.futureResult.map { result in
                    running.withLockedValue { $0.now -= 1 }
                    return result
                }
            }
            server = RPCServer(configuration: configuration, router: router, logger: Logger(label: "test"), authenticate: authenticate)
            let server = self.server
            task = Task { try await server.run() }
        }

        func releaseHeld() {
            for call in heldCalls.withLockedValue({ calls in defer { calls.removeAll() }; return calls }) {
                call.promise.succeed(EventResult(dedupKey: call.key, incidentID: 3, outcome: .created))
            }
        }

        func client(timeout: TimeAmount = .seconds(5)) async throws -> RPCClient {
            var configuration = RPCClientConfiguration(host: "127.0.0.1", port: try await port)
            configuration.defaultTimeout = timeout
            return RPCClient(configuration: configuration)
        }

        func stop() async {
            task.cancel()
            _ = await task.result
        }
    }

    static func event(_ key: String, sleepMs: Int64 = 0) -> Event {
        Event(routingKey: key, eventAction: .trigger, payload: Payload(summary: "s", source: "s", timestampMs: sleepMs))
    }

    /// Issue 9.6: a server that closes idle connections after a few milliseconds, 1,000 calls in
    /// waves: every call is answered (OK) or fails with UNAVAILABLE within its deadline; none
    /// hangs, none waits out its deadline because its connection went away under it.
    @Test func everyCallEndsByItsDeadlineWhileConnectionsKeepClosing() async throws {
        let harness = Harness(idleTimeout: .milliseconds(5))
        let deadline = TimeAmount.seconds(2)
        let client = try await harness.client(timeout: deadline)
        struct Tally { var ok = 0, unavailable = 0, other = 0, slowest: Duration = .zero }
        let tally = NIOLockedValueBox(Tally())
        let clock = ContinuousClock()
        for wave in 0..<50 {
            for index in 0..<20 {
                Task {
                    let start = clock.now
                    let code: StatusCode?
                    do {
                        let _: EventResult = try await client.call(Self.echo, Self.event("w\(wave)-\(index)"))
                        code = nil
                    } catch let error as RPCError {
                        code = error.code
                    } catch {
                        code = .internalError
                    }
                    let took = clock.now - start
                    tally.withLockedValue { tally in
                        switch code {
                        case nil: tally.ok += 1
                        case .unavailable?: tally.unavailable += 1
                        default: tally.other += 1
                        }
                        tally.slowest = max(tally.slowest, took)
                    }
                }
            }
            try await Task.sleep(for: .milliseconds(Int.random(in: 1...8)))
        }
        let allEnded = await eventually(timeout: .seconds(6)) {
            tally.withLockedValue { $0.ok + $0.unavailable + $0.other } == 1_000
        }
        let final = tally.withLockedValue { $0 }
        #expect(allEnded, "calls still hanging: \(1_000 - final.ok - final.unavailable - final.other)")
        #expect(final.slowest <= .milliseconds(2_250), "slowest call took \(final.slowest) with a 2 s deadline")
        #expect(final.other == 0, "only OK or UNAVAILABLE, got \(final.other) others")
        await client.close()
        await harness.stop()
    }

    @Test func callRoundTrips() async throws {
        let harness = Harness()
        let client = try await harness.client()
        let result: EventResult = try await client.call(Self.echo, Self.event("hello"))
        #expect(result == EventResult(dedupKey: "hello", incidentID: 1, outcome: .created))
        await client.close()
        await harness.stop()
    }

    @Test func pipelinedCallsAreAnsweredOutOfOrder() async throws {
        let harness = Harness()
        let client = try await harness.client()
        let order = NIOLockedValueBox<[String]>([])
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                let _: EventResult = try await client.call(Self.slow, Self.event("slow", sleepMs: 400))
                order.withLockedValue { $0.append("slow") }
            }
            try await Task.sleep(for: .milliseconds(50))  // slow is written first, on the same connection
            group.addTask {
                let _: EventResult = try await client.call(Self.echo, Self.event("fast"))
                order.withLockedValue { $0.append("fast") }
            }
            try await group.waitForAll()
        }
        #expect(order.withLockedValue { $0 } == ["fast", "slow"])
        await client.close()
        await harness.stop()
    }

    @Test func inFlightLimitAppliesBackpressurePerConnection() async throws {
        let harness = Harness(maxInFlight: 2)
        let client = try await harness.client()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<6 {
                group.addTask {
                    let result: EventResult = try await client.call(Self.slow, Self.event("c\(index)", sleepMs: 100))
                    #expect(result.dedupKey == "c\(index)")
                }
            }
            try await group.waitForAll()
        }
        #expect(harness.running.withLockedValue { $0.max } == 2)
        await client.close()
        await harness.stop()
    }

    /// Handlers registered on the event loop: answered out of order like the others, and held to
    /// the same per-connection in-flight limit.
    @Test func loopHandlersAreAnsweredOutOfOrderWithinTheInFlightLimit() async throws {
        let harness = Harness(maxInFlight: 3)
        let client = try await harness.client()
        let order = NIOLockedValueBox<[String]>([])
        try await withThrowingTaskGroup(of: Void.self) { group in
            // l0 is held on the server until the test releases it; l1…l8 answer after 60 ms,
            // two at a time beside it (three in flight). Nothing here depends on timing.
            group.addTask {
                let result: EventResult = try await client.call(Self.held, Self.event("l0"))
                #expect(result == EventResult(dedupKey: "l0", incidentID: 3, outcome: .created))
                order.withLockedValue { $0.append("l0") }
            }
            #expect(await eventually { harness.heldCalls.withLockedValue { $0.count } == 1 })
            for index in 1..<9 {
                group.addTask {
                    let result: EventResult = try await client.call(Self.loopSlow, Self.event("l\(index)", sleepMs: 60))
                    #expect(result == EventResult(dedupKey: "l\(index)", incidentID: 3, outcome: .created))
                    order.withLockedValue { $0.append("l\(index)") }
                }
            }
            #expect(await eventually(timeout: .seconds(20)) { order.withLockedValue { $0.count } == 8 }, "answered while l0 is still running")
            harness.releaseHeld()
            try await group.waitForAll()
        }
        #expect(order.withLockedValue { $0.last } == "l0")  // the first call finished last
        #expect(harness.running.withLockedValue { $0.max } == 3)
        await client.close()
        await harness.stop()
    }

    /// Graceful shutdown: the server stops reading, answers every call it already read (async and
    /// loop handlers alike), then closes the connection and returns.
    @Test func gracefulShutdownAnswersTheCallsInFlight() async throws {
        var router = RPCRouter()
        let started = NIOLockedValueBox(0)
        router.register(Self.slow) { (event: Event, _) in
            started.withLockedValue { $0 += 1 }
            try await Task.sleep(for: .milliseconds(event.payload?.timestampMs ?? 0))
            return EventResult(dedupKey: event.routingKey, incidentID: 2, outcome: .created)
        }
        router.registerOnLoop(Self.loopSlow) { (event: Event, _, loop) in
            started.withLockedValue { $0 += 1 }
            return loop.scheduleTask(in: .milliseconds(event.payload?.timestampMs ?? 0)) {
                EventResult(dedupKey: event.routingKey, incidentID: 3, outcome: .created)
            }.futureResult
        }
        let server = RPCServer(configuration: .init(host: "127.0.0.1", port: 0), router: router, logger: Logger(label: "test"))
        let group = ServiceGroup(services: [server], logger: Logger(label: "test"))
        let running = Task { try await group.run() }
        let port = try await server.localAddress().port!
        let client = RPCClient(host: "127.0.0.1", port: port)
        async let slow: EventResult = client.call(Self.slow, Self.event("async", sleepMs: 300))
        async let loop: EventResult = client.call(Self.loopSlow, Self.event("loop", sleepMs: 300))
        while started.withLockedValue({ $0 }) < 2 { try await Task.sleep(for: .milliseconds(5)) }  // both read and running
        await group.triggerGracefulShutdown()
        #expect(try await slow.dedupKey == "async")
        #expect(try await loop.dedupKey == "loop")
        try await running.value  // the server returned after answering
        await #expect(throws: RPCError.self) {
            let _: EventResult = try await client.call(Self.echo, Self.event("after"), timeout: .seconds(1))
        }
        await client.close()
    }

    /// The caller's deadline-ms is the server's too: a call whose caller gave up is answered
    /// DEADLINE_EXCEEDED then and its in-flight slot freed, so with one slot per connection the
    /// next call runs at once instead of after the abandoned one's 5 s.
    @Test func theCallersDeadlineFreesTheServersSlot() async throws {
        let harness = Harness(maxInFlight: 1)
        let client = try await harness.client()
        var slow = Self.event("slow")
        slow.payload = Payload(summary: "s", source: "s", timestampMs: 5_000)
        await #expect(throws: RPCError.self) {
            _ = try await client.call(Self.slow, slow, timeout: .milliseconds(200))
        }
        let started = ContinuousClock.now
        let echoed = try await client.call(Self.echo, Self.event("next"), timeout: .seconds(3))
        #expect(echoed.dedupKey == "next")
        #expect(ContinuousClock.now - started < .seconds(3))
        await client.close()
        await harness.stop()
    }

    @Test func unknownMethodIsUnimplemented() async throws {
        let harness = Harness()
        let client = try await harness.client()
        await #expect(throws: RPCError(.unimplemented, "unknown method klaxon.nope.v1.Nope/Nope")) {
            let _: EventResult = try await client.call(RPCMethod<Event, EventResult>("klaxon.nope.v1.Nope/Nope"), Self.event("x"))
        }
        await client.close()
        await harness.stop()
    }

    @Test func undecodableBodyIsInvalidArgumentAndTheConnectionStaysUp() async throws {
        let harness = Harness()
        let client = try await harness.client()
        do {
            _ = try await client.callRaw(Self.echo.name, body: [0x0A, 2, 0xFF, 0xFE])
            Issue.record("expected INVALID_ARGUMENT")
        } catch let error as RPCError {
            #expect(error.code == .invalidArgument)
            #expect(error.status.violations == [FieldViolation(field: "routing_key", description: "is not valid UTF-8")])
        }
        let result: EventResult = try await client.call(Self.echo, Self.event("after"))
        #expect(result.dedupKey == "after")
        await client.close()
        await harness.stop()
    }

    @Test func authenticationHookSeesHeaders() async throws {
        let harness = Harness(authenticate: { _, headers in
            headers["authorization"] == "Bearer good" ? nil : RPCError(.unauthenticated, "missing or wrong token")
        })
        let client = try await harness.client()
        await #expect(throws: RPCError(.unauthenticated, "missing or wrong token")) {
            let _: EventResult = try await client.call(Self.echo, Self.event("x"))
        }
        let result: EventResult = try await client.call(Self.echo, Self.event("x"), headers: ["authorization": "Bearer good"])
        #expect(result.dedupKey == "x")
        // A client interceptor sets the token on every call.
        struct Token: RPCClientInterceptor {
            func intercept(method: String, headers: inout [String: String]) { headers["authorization"] = "Bearer good" }
        }
        var configuration = RPCClientConfiguration(host: "127.0.0.1", port: try await harness.port)
        configuration.interceptors = [Token()]
        let intercepted = RPCClient(configuration: configuration)
        #expect(try await intercepted.call(Self.echo, Self.event("y")).dedupKey == "y")
        await intercepted.close()
        await client.close()
        await harness.stop()
    }

    @Test func clientDeadlineExpires() async throws {
        let harness = Harness()
        let client = try await harness.client(timeout: .milliseconds(100))
        do {
            let _: EventResult = try await client.call(Self.slow, Self.event("x", sleepMs: 1_000))
            Issue.record("expected DEADLINE_EXCEEDED")
        } catch let error as RPCError {
            #expect(error.code == .deadlineExceeded)
        }
        await client.close()
        await harness.stop()
    }

    @Test func badFramesCloseOnlyTheirConnection() async throws {
        let harness = Harness(maxFrameBytes: 1024)
        let port = try await harness.port
        let client = try await harness.client()
        let _: EventResult = try await client.call(Self.echo, Self.event("before"))

        // A zero-length frame: INVALID_ARGUMENT, then the server closes that connection.
        let zero = try await RawConnection.exchange(port: port, send: [0, 0, 0, 0])
        #expect(zero.closed)
        #expect(zero.replies.first?.status?.code == .invalidArgument)
        // An oversized frame: RESOURCE_EXHAUSTED before the body is sent, then close.
        let big = try await RawConnection.exchange(port: port, send: [0, 0, 0x10, 0])
        #expect(big.closed)
        #expect(big.replies.first?.status?.code == .resourceExhausted)
        // Garbage that is a valid frame but not an Envelope.
        let garbage = try await RawConnection.exchange(port: port, send: [0, 0, 0, 3, 0xFF, 0xFF, 0xFF])
        #expect(garbage.closed)
        #expect(garbage.replies.first?.status?.code == .invalidArgument)

        // The well-behaved connection never noticed.
        let result: EventResult = try await client.call(Self.echo, Self.event("after"))
        #expect(result.dedupKey == "after")
        await client.close()
        await harness.stop()
    }

    @Test func aFrameTrickledTooSlowlyIsRefusedAndOnlyItsConnectionClosed() async throws {
        let harness = Harness(frameDeadline: .milliseconds(300))
        let port = try await harness.port
        let client = try await harness.client()
        // A header announcing 100 bytes, then silence: the frame never completes.
        let slow = try await RawConnection.exchange(port: port, send: [0, 0, 0, 100, 1, 2], timeout: .seconds(5))
        #expect(slow.closed)
        #expect(slow.replies.first?.status?.code == .deadlineExceeded)
        #expect(slow.replies.first?.status?.message == "a frame was begun but not completed within 300 ms")
        let result: EventResult = try await client.call(Self.echo, Self.event("unharmed"))
        #expect(result.dedupKey == "unharmed")
        await client.close()
        await harness.stop()
    }

    @Test func onePeerCannotTakeEveryConnection() async throws {
        let harness = Harness(maxPerPeer: 2)
        let port = try await harness.port
        let first = try await harness.client(), second = try await harness.client()
        let _: EventResult = try await first.call(Self.echo, Self.event("1"))
        let _: EventResult = try await second.call(Self.echo, Self.event("2"))
        let third = try await RawConnection.exchange(port: port, send: [])
        #expect(third.closed)
        #expect(third.replies.first?.status?.code == .resourceExhausted)
        #expect(third.replies.first?.status?.message == "too many connections from 127.0.0.1 (limit 2 per address)")
        // One closes: a new connection is admitted again.
        await first.close()
        let admitted = await eventually(timeout: .seconds(5)) {
            let client = try? await harness.client()
            defer { if let client { Task { await client.close() } } }
            return (try? await client?.call(Self.echo, Self.event("3"))) != nil
        }
        #expect(admitted)
        await second.close()
        await harness.stop()
    }

    @Test func aRequestOverItsMethodsLimitIsRefusedBeforeDecoding() async throws {
        let harness = Harness(maxFrameBytes: 1 << 20, echoLimit: 1_000)
        let client = try await harness.client()
        var big = Self.event("big")
        big.links = Array(repeating: Link(href: ""), count: 2_000)  // ≈ 4 KB of empty links
        let refused = await client.failure(Self.echo, big)
        #expect(refused?.code == .invalidArgument)
        #expect(refused?.status.violations.first?.field == "event")
        #expect(harness.echoed.withLockedValue { $0 } == 0)
        let fine: EventResult = try await client.call(Self.echo, Self.event("small"))
        #expect(fine.dedupKey == "small")
        await client.close()
        await harness.stop()
    }

    @Test func aPeerThatNeverReadsItsRepliesStopsBeingRead() async throws {
        let harness = Harness()
        let port = try await harness.port
        // Write 2,000 requests of 16 KiB to a handler on the event loop (as SendEvent is) (≈ 32 MB; each reply is as large) and never read a
        // reply. Large replies fill the buffers after few calls, so the test costs little CPU.
        let frame = Envelope(id: 1, method: Self.loopSlow.name, body: Self.event(String(repeating: "k", count: 16 * 1024)).wireBytes())
        var one = ByteBuffer()
        Framing.writeFrame(frame.wireBytes(), into: &one)
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.autoRead, value: false)
            .channelOption(.socketOption(.so_rcvbuf), value: 16 * 1024)  // a small window: the server's side fills sooner
            .connect(host: "127.0.0.1", port: port).get()
        let total = 2_000
        for _ in 0..<(total / 100) {
            var batch = ByteBuffer()
            for _ in 0..<100 { batch.writeImmutableBuffer(one) }
            channel.writeAndFlush(batch, promise: nil)
        }
        // The server answers until its outbound buffer and the socket buffers fill, then stops
        // reading: the count settles far below what was sent.
        var last = -1
        for _ in 0..<50 {
            try await Task.sleep(for: .milliseconds(200))
            let now = harness.loopAnswered.withLockedValue { $0 }
            if now == last { break }
            last = now
        }
        #expect(last < total / 2, "answered \(last) of \(total) requests whose replies nobody reads")
        print("non-reading peer: \(last) of \(total) requests answered before the server stopped reading")
        // Another client is served meanwhile.
        let client = try await harness.client()
        let result: EventResult = try await client.call(Self.echo, Self.event("other"))
        #expect(result.dedupKey == "other")
        try await channel.close()
        await client.close()
        await harness.stop()
    }

    @Test func idleConnectionsAreClosed() async throws {
        let harness = Harness(idleTimeout: .milliseconds(200))
        let port = try await harness.port
        // A connection that sends nothing is closed by the server well before our 3 s patience runs out.
        let silent = try await RawConnection.exchange(port: port, send: [], timeout: .seconds(3))
        #expect(silent.closed)
        #expect(silent.replies.isEmpty)
        await harness.stop()
    }

    @Test func clientReconnectsAfterTheServerComesBack() async throws {
        let port = try await freePort()
        var configuration = RPCClientConfiguration(host: "127.0.0.1", port: port)
        configuration.initialBackoff = .milliseconds(20)
        configuration.maxBackoff = .milliseconds(100)
        let client = RPCClient(configuration: configuration)
        await #expect(throws: RPCError.self) {
            let _: EventResult = try await client.call(Self.echo, Self.event("down"))
        }
        let harness = Harness(port: port)
        _ = try await harness.port
        let reconnected = await eventually(timeout: .seconds(5)) {
            (try? await client.call(Self.echo, Self.event("up"))) != nil
        }
        #expect(reconnected)
        // The server restarts: the next calls fail fast, then the client reconnects again.
        await harness.stop()
        let second = Harness(port: port)
        _ = try await second.port
        let again = await eventually(timeout: .seconds(5)) {
            (try? await client.call(Self.echo, Self.event("again"))) != nil
        }
        #expect(again)
        await client.close()
        await second.stop()
    }

    @Test func backoffDoublesUpToTheMaximum() {
        var configuration = RPCClientConfiguration(host: "127.0.0.1", port: 1)
        configuration.initialBackoff = .milliseconds(50)
        configuration.maxBackoff = .seconds(5)
        let client = RPCClient(configuration: configuration)
        #expect(client.backoff(afterFailures: 1) == .milliseconds(50))
        #expect(client.backoff(afterFailures: 2) == .milliseconds(100))
        #expect(client.backoff(afterFailures: 4) == .milliseconds(400))
        #expect(client.backoff(afterFailures: 40) == .seconds(5))
    }
}

/// A raw TCP peer for sending bytes no well-behaved client would.
enum RawConnection {
    struct Outcome {
        var replies: [Envelope]
        var closed: Bool
    }

    static func exchange(port: Int, send bytes: [UInt8], timeout: Duration = .seconds(3)) async throws -> Outcome {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder()))
                    return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        return try await channel.executeThenClose { inbound, outbound in
            if !bytes.isEmpty {
                do {
                    try await outbound.write(ByteBuffer(bytes: bytes))
                } catch ChannelError.ioOnClosedChannel {
                    return Outcome(replies: [], closed: true)  // the server already closed it
                }
            }
            return try await withThrowingTaskGroup(of: Outcome?.self) { group in
                group.addTask {
                    var replies: [Envelope] = []
                    for try await frame in inbound { replies.append(try Envelope(frame: frame)) }
                    return Outcome(replies: replies, closed: true)
                }
                group.addTask {
                    try await Task.sleep(for: timeout)
                    return nil
                }
                let first = try await group.next()!
                group.cancelAll()
                return first ?? Outcome(replies: [], closed: false)
            }
        }
    }
}
