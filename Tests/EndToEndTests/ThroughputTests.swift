import AssignmentService
import Foundation
import KlaxonDomain
import KlaxonTestSupport
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NotifierService
import Shared
import Testing

/// Issue 11: pages flow continuously, one dead endpoint holds up nobody else, and outbox bundles
/// travel as batch calls (with a fallback for peers that lack them).
@Suite struct ThroughputTests {
    /// An endpoint that accepts connections and never answers, on the same level as two healthy
    /// ones: every healthy page arrives while the dead endpoint's sends are still hanging (the
    /// old dispatcher waited for a whole batch, so each batch of 32 waited out the 10 s timeout),
    /// and the dead address never holds more than its share of sending slots.
    @Test func aDeadEndpointHoldsUpNobodyElse() async throws {
        // Connections open at once (and the most ever): a timed-out attempt closes its connection
        // and its retry opens another, so on a loaded machine the total may pass the per-address
        // limit; never at once.
        let connections = NIOLockedValueBox((open: 0, most: 0))
        let blackhole = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                connections.withLockedValue { $0.open += 1; $0.most = max($0.most, $0.open) }
                channel.closeFuture.whenComplete { _ in connections.withLockedValue { $0.open -= 1 } }
                return channel.eventLoop.makeSucceededVoidFuture()
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let pipeline = try await Pipeline()
        let deadURL = "http://127.0.0.1:\(blackhole.localAddress!.port!)/never"
        let service = try await pipeline.db.pool.transaction { [sink = pipeline.sink] connection in
            try Seed.service(connection, name: "Isolation", routingKey: Seed.newRoutingKey(), users: [
                Seed.User(name: "Ada", email: "ada@example.com", webhookURL: "\(sink.url)/ada"),
                Seed.User(name: "Ben", email: "ben@example.com", webhookURL: "\(sink.url)/ben"),
                Seed.User(name: "Cat", email: "cat@example.com", webhookURL: deadURL),
            ])
        }
        try await pipeline.db.pool.withConnection { connection in
            try connection.query("UPDATE services SET events_per_minute = 0 WHERE id = $1", [service.serviceID])
        }
        let ingest = pipeline.client(.ingest)
        // More incidents than an address has sending slots: the limit binds for Cat.
        let slots = DeliveryEngine.defaultMaxPerDestination
        let incidents = slots + 36
        let events = (0..<incidents).map { Pipeline.trigger(service.routingKey, dedupKey: "iso-\($0)") }
        // A generous deadline: the whole suite shares two cores, and this test is about the pages.
        let reply: SendEventsReply = try await ingest.call(Ingest.SendEvents, SendEventsRequest(events: events), timeout: .seconds(60))
        #expect(reply.items.count == incidents)
        // The notify timeout is 10 s: healthy pages must not wait for it.
        let start = ContinuousClock.now
        let pages = await pipeline.sink.waitForRequests(2 * incidents, timeout: .seconds(8))
        let took = ContinuousClock.now - start
        #expect(pages.count == 2 * incidents, "healthy pages that arrived: \(pages.count) of \(2 * incidents)")
        #expect(took < .seconds(8))
        #expect(Set(pages.map(\.uri)) == ["/ada", "/ben"])
        // Cat's pages: at most the per-address limit in flight, the rest wait unclaimed.
        let leased = try await pipeline.db.scalar(
            """
            SELECT count(*) FROM notifications n JOIN contact_methods c ON c.id = n.contact_method_id
            WHERE c.address = $1 AND n.status = 'pending' AND n.lease_until_ms > 0
            """, [deadURL]) ?? 0
        #expect(leased > 0 && leased <= Int64(slots), "Cat's pages in flight: \(leased)")
        let most = connections.withLockedValue { $0.most }
        #expect(most > 0 && most <= slots, "Cat's connections open at once, at most: \(most)")
        await ingest.close()
        await pipeline.shutdown()
        try? await blackhole.close()
    }

    /// A bundle row of IncidentTriggered messages goes out as one IncidentsTriggered call; the
    /// reply's failures leave only the failed message in the row. A peer without the batch method
    /// (UNIMPLEMENTED) gets the messages one by one.
    @Test func bundlesTravelAsBatchCallsAndFallBackToSingleCalls() async throws {
        let db = try await TestDatabase.create()
        let logger = Logger(label: "relay")
        let received = NIOLockedValueBox<[String]>([])
        func bundleRow() async throws {
            let messages = (1...3).map { index in
                (method: Assignment.IncidentTriggered.name,
                 body: IncidentTriggeredRequest(messageID: "m\(index)", incidentID: UInt64(index), triggeredAtMs: 1).wireBytes())
            }
            try await db.pool.transaction { connection in
                try Outbox.enqueueAll(connection, destination: Outbox.Destination.assignment, messages, now: 0)
            }
        }

        // A batch-aware peer that refuses the second item.
        var batchRouter = RPCRouter()
        batchRouter.register(Assignment.IncidentsTriggered) { (batch: IncidentTriggeredBatch, _) in
            received.withLockedValue { $0.append("batch:" + batch.requests.map(\.messageID).joined(separator: ",")) }
            return BatchReply(failures: [BatchItemFailure(index: 1, status: RPCStatus(code: .failedPrecondition, message: "no such incident"))])
        }
        let batchServer = RPCServer(configuration: .init(host: "127.0.0.1", port: 0), router: batchRouter, logger: logger)
        let batchTask = Task { try await batchServer.run() }
        let batchPort = try await batchServer.localAddress().port!
        try await bundleRow()
        let relay = OutboxRelay(
            destination: Outbox.Destination.assignment, client: RPCClient(host: "127.0.0.1", port: batchPort), pool: db.pool, logger: logger)
        _ = try await relay.deliverDue(now: 1_000)
        #expect(received.withLockedValue { $0 } == ["batch:m1,m2,m3"])
        let left = try await db.pool.withConnection { connection in
            let rows = try connection.query("SELECT method, body, last_error FROM outbox")
            return try (0..<rows.count).map { row in
                (try Outbox.messages(method: rows.string(row, "method")!, body: rows.bytes(row, "body")!)
                    .map { try IncidentTriggeredRequest(wire: $0.body).messageID }, rows.string(row, "last_error") ?? "")
            }
        }
        #expect(left.count == 1)
        #expect(left.first?.0 == ["m2"])
        #expect(left.first?.1.contains("no such incident") == true)
        batchTask.cancel()
        _ = await batchTask.result

        // A peer from before batch calls: single calls, and the row is delivered.
        try await db.pool.withConnection { connection in try connection.query("DELETE FROM outbox") }
        received.withLockedValue { $0 = [] }
        var singleRouter = RPCRouter()
        singleRouter.register(Assignment.IncidentTriggered) { (request: IncidentTriggeredRequest, _) in
            received.withLockedValue { $0.append(request.messageID) }
            return Empty()
        }
        let singleServer = RPCServer(configuration: .init(host: "127.0.0.1", port: 0), router: singleRouter, logger: logger)
        let singleTask = Task { try await singleServer.run() }
        let singlePort = try await singleServer.localAddress().port!
        try await bundleRow()
        let oldRelay = OutboxRelay(
            destination: Outbox.Destination.assignment, client: RPCClient(host: "127.0.0.1", port: singlePort), pool: db.pool, logger: logger)
        _ = try await oldRelay.deliverDue(now: 1_000)
        #expect(received.withLockedValue { $0 } == ["m1", "m2", "m3"])
        #expect(try await db.scalar("SELECT count(*) FROM outbox") == 0)
        singleTask.cancel()
        _ = await singleTask.result
        await db.drop()
    }

    /// The rows claimed in one step go out together on their first attempt: every row's
    /// IncidentTriggered messages in one IncidentsTriggered call (so Assignment applies them in
    /// one transaction, not one per Ingest group commit), cut at `maxMessagesPerCall`, a lone
    /// message as its own method. A failure names its message across rows: only that message
    /// stays, in its own row, and its retry goes on a call of its own, apart from fresh rows.
    @Test func claimedRowsTravelTogetherAndRetriesAlone() async throws {
        let db = try await TestDatabase.create()
        let logger = Logger(label: "relay")
        let received = NIOLockedValueBox<[String]>([])
        func row(_ ids: [String]) async throws {
            let messages = ids.enumerated().map { position, id in
                (method: Assignment.IncidentTriggered.name,
                 body: IncidentTriggeredRequest(messageID: id, incidentID: UInt64(position + 1), triggeredAtMs: 1).wireBytes())
            }
            try await db.pool.transaction { connection in
                try Outbox.enqueueAll(connection, destination: Outbox.Destination.assignment, messages, now: 0)
            }
        }
        var router = RPCRouter()
        router.register(Assignment.IncidentsTriggered) { (batch: IncidentTriggeredBatch, _) in
            received.withLockedValue { $0.append(batch.requests.map(\.messageID).joined(separator: ",")) }
            return BatchReply(failures: batch.requests.enumerated().filter { $0.element.messageID == "n1" }.map {
                BatchItemFailure(index: UInt32($0.offset), status: RPCStatus(code: .failedPrecondition, message: "no such incident"))
            })
        }
        router.register(Assignment.IncidentTriggered) { (request: IncidentTriggeredRequest, _) in
            received.withLockedValue { $0.append("single:" + request.messageID) }
            return Empty()
        }
        let server = RPCServer(configuration: .init(host: "127.0.0.1", port: 0), router: router, logger: logger)
        let task = Task { try await server.run() }
        let port = try await server.localAddress().port!
        try await row(["m1", "m2", "m3", "m4", "m5"])
        try await row(["n1", "n2"])
        try await row(["s1"])
        var relay = OutboxRelay(
            destination: Outbox.Destination.assignment, client: RPCClient(host: "127.0.0.1", port: port), pool: db.pool, logger: logger)
        relay.maxMessagesPerCall = 4
        _ = try await relay.deliverDue(now: 1_000)
        #expect(received.withLockedValue { $0 }.sorted() == ["m1,m2,m3,m4", "m5,n1,n2,s1"])
        let left = try await db.pool.withConnection { connection in
            let rows = try connection.query("SELECT method, body FROM outbox")
            return try (0..<rows.count).flatMap { row in
                try Outbox.messages(method: rows.string(row, "method")!, body: rows.bytes(row, "body")!)
                    .map { try IncidentTriggeredRequest(wire: $0.body).messageID }
            }
        }
        #expect(left == ["n1"])
        #expect(try await db.scalar("SELECT count(*) FROM outbox") == 1)

        // The retry goes on a call of its own; the fresh row claimed with it does not join it.
        received.withLockedValue { $0 = [] }
        try await row(["p1", "p2"])
        _ = try await relay.deliverDue(now: 61_000)
        #expect(received.withLockedValue { $0 }.sorted() == ["p1,p2", "single:n1"])
        #expect(try await db.scalar("SELECT count(*) FROM outbox") == 0)

        // A lone message goes out as its own method, as it was written.
        try await db.pool.withConnection { connection in try connection.query("DELETE FROM outbox") }
        received.withLockedValue { $0 = [] }
        try await row(["s2"])
        _ = try await relay.deliverDue(now: 1_000)
        #expect(received.withLockedValue { $0 } == ["single:s2"])
        task.cancel()
        _ = await task.result
        await db.drop()
    }

    /// A relay reaches its peer before it claims: while the connection is being attempted (slow
    /// for a dead peer on a loaded machine), no row is leased, so the receiver's taker can have
    /// them. A failed connect does not skip the step: the row records its attempt and error.
    @Test func theRelayReachesItsPeerBeforeLeasingRows() async throws {
        let db = try await TestDatabase.create()
        try await db.pool.transaction { connection in
            try Outbox.enqueueAll(connection, destination: Outbox.Destination.assignment, [
                (method: Assignment.IncidentTriggered.name,
                 body: IncidentTriggeredRequest(messageID: "c1", incidentID: 1, triggeredAtMs: 1).wireBytes()),
            ], now: 0)
        }
        let connecting = Latch<Void>(), refused = Latch<Void>()
        var relay = OutboxRelay(
            destination: Outbox.Destination.assignment, transport: { _, _, _ in throw RPCError(.unavailable, "peer down") },
            pool: db.pool, logger: Logger(label: "relay"))
        relay.connect = {
            connecting.resolve(.success(()))
            try await refused.wait()
        }
        let step = Task { [relay] in try await relay.deliverDue(now: 1_000) }
        let deadline = Task {
            try await Task.sleep(for: .seconds(10))
            connecting.resolve(.failure(RPCError(.unavailable, "the relay never tried to reach its peer")))
        }
        try await connecting.wait()
        deadline.cancel()
        #expect(try await db.scalar("SELECT count(*) FROM outbox WHERE leased_until_ms > 0 OR attempts > 0") == 0,
                "a row was leased while the peer was being reached")
        refused.resolve(.failure(RPCError(.unavailable, "cannot connect")))
        _ = try await step.value
        #expect(try await db.scalar("SELECT attempts FROM outbox") == 1)
        #expect(try await db.scalar("SELECT count(*) FROM outbox WHERE last_error LIKE '%peer down%' AND leased_until_ms = 0") == 1)
        await db.drop()
    }

    /// The batch body is the encoding of the batch message: libprotobuf-c reads it back.
    @Test func batchBodyIsTheRepeatedField() throws {
        let requests = (1...3).map { NotifyRequest(requestID: "r\($0)", incidentID: UInt64($0), userID: 7, reason: .assigned, requestedAtMs: 5) }
        let decoded = try NotifyBatchRequest(wire: BatchCall.body(requests.map { $0.wireBytes() }))
        #expect(decoded.requests.map(\.requestID) == ["r1", "r2", "r3"])
        #expect(decoded.requests.map(\.incidentID) == [1, 2, 3])
        let big = IncidentTriggeredRequest(messageID: String(repeating: "x", count: 300), incidentID: 1, triggeredAtMs: 1)  // a 2-byte length
        #expect(try IncidentTriggeredBatch(wire: BatchCall.body([big.wireBytes()])).requests == [big])
    }
}
