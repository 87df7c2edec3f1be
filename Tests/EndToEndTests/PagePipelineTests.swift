import Foundation
import KlaxonDomain
import KlaxonTestSupport
import NotifierService
import Shared
import Testing

/// One page carried end to end: monitor → Ingest → PostgreSQL → Assignment → Notifier → webhook,
/// over the binary protocol at every hop.
@Suite(.serialized) struct PagePipelineTests {
    static let sendEvent = Ingest.SendEvent

    @Test func triggerPagesOnceAndTheSameDedupKeyDoesNotPageAgain() async throws {
        let pipeline = try await Pipeline(clock: ManualClock())
        let service = try await pipeline.seed(users: ["Alice"])
        let ingest = pipeline.client(.ingest)

        let created: EventResult = try await ingest.call(Self.sendEvent, Pipeline.trigger(service.routingKey, dedupKey: "checkout-errors"))
        #expect(created.outcome == .created)
        #expect(created.dedupKey == "checkout-errors")
        // The reply means committed: the incident is there the moment we hear back.
        #expect(try await pipeline.db.scalar("SELECT count(*) FROM incidents WHERE id = $1", [Int64(created.incidentID)]) == 1)

        let pages = await pipeline.sink.waitForRequests(1, timeout: .seconds(10))
        try #require(pages.count == 1)
        let page = pages[0]
        #expect(page.method == "POST")
        #expect(page.uri == "/hooks")
        let message = try #require(page.webhook)
        #expect(page.header("Idempotency-Key") == message.notificationID)
        #expect(page.header("Content-Type") == "application/json")
        #expect(message.incident.id == created.incidentID)
        #expect(message.incident.title == "Checkout error rate 37%")
        #expect(message.incident.status == "triggered")
        #expect(message.incident.urgency == "high")
        #expect(message.incident.service.name == "Checkout")
        #expect(message.incident.dedupKey == "checkout-errors")
        #expect(message.reason == "assigned")
        #expect(message.snapshot)
        #expect(message.user.name == "Alice")
        #expect(message.rule.startDelaySeconds == 0)

        let again: EventResult = try await ingest.call(Self.sendEvent, Pipeline.trigger(service.routingKey, dedupKey: "checkout-errors"))
        #expect(again.outcome == .deduplicated)
        #expect(again.incidentID == created.incidentID)
        await pipeline.letTimePass()
        #expect(pipeline.sink.requests.count == 1, "a deduplicated trigger must not page again")
        #expect(try await pipeline.db.scalar("SELECT count FROM alerts WHERE incident_id = $1", [Int64(created.incidentID)]) == 2)

        let timeline = try await pipeline.db.pool.withConnection { try Timeline.entries($0, incidentID: Int64(created.incidentID)) }
        let types = timeline.map(\.type)
        #expect(types.filter { $0 == .trigger }.count == 1)
        #expect(types.filter { $0 == .assign }.count == 1)
        #expect(types.filter { $0 == .notifyScheduled }.count == 1)
        #expect(types.filter { $0 == .notifySent }.count == 1)
        #expect(types.filter { $0 == .alertDeduplicated }.count == 1)
        #expect(timeline.first { $0.type == .notifySent }?.details["notification"] == message.notificationID)
        await ingest.close()
        await pipeline.shutdown()
    }

    @Test func everyUserOfTheLevelIsPaged() async throws {
        let pipeline = try await Pipeline()
        let service = try await pipeline.seed(users: ["Alice", "Bob"])
        let ingest = pipeline.client(.ingest)
        let created: EventResult = try await ingest.call(Self.sendEvent, Pipeline.trigger(service.routingKey))
        #expect(!created.dedupKey.isEmpty, "a trigger without dedup key gets a generated one")
        let pages = await pipeline.sink.waitForRequests(2, timeout: .seconds(10))
        #expect(Set(pages.compactMap { $0.webhook?.user.name }) == ["Alice", "Bob"])
        #expect(Set(pages.compactMap { $0.webhook?.incident.id }) == [created.incidentID])
        #expect(try await pipeline.db.scalar("SELECT count(*) FROM incident_assignments WHERE incident_id = $1", [Int64(created.incidentID)]) == 2)
        await ingest.close()
        await pipeline.shutdown()
    }

    @Test func nothingIsLostWhenAssignmentIsDownAtTriggerTime() async throws {
        let pipeline = try await Pipeline(start: [.ingest, .notifier])
        let service = try await pipeline.seed(users: ["Alice"])
        let ingest = pipeline.client(.ingest)
        let created: EventResult = try await ingest.call(Self.sendEvent, Pipeline.trigger(service.routingKey, dedupKey: "while-down"))
        #expect(created.outcome == .created)

        // The outbox keeps trying while Assignment is unreachable.
        let retried = try await eventually(timeout: .seconds(5)) {
            try await pipeline.db.scalar("SELECT max(attempts) FROM outbox WHERE destination = 'assignment'") ?? 0 >= 2
        }
        #expect(retried)
        #expect(pipeline.sink.requests.isEmpty)

        try await pipeline.start(.assignment)
        let pages = await pipeline.sink.waitForRequests(1, timeout: .seconds(20))
        #expect(pages.count == 1)
        #expect(pages.first?.webhook?.incident.id == created.incidentID)
        #expect(try await eventually { try await pipeline.db.scalar("SELECT count(*) FROM outbox") == 0 })
        await ingest.close()
        await pipeline.shutdown()
    }

    /// A group commit's new incidents share one outbox row. While Assignment is down it waits;
    /// one of its messages reaching Assignment early (then again inside the bundle) still has
    /// one effect; every incident is paged once and the row is gone.
    @Test func oneBundleRowAnnouncesABatchsIncidentsAndEachIsPagedOnce() async throws {
        let pipeline = try await Pipeline(start: [.ingest, .notifier], clock: ManualClock())
        let service = try await pipeline.seed(users: ["Alice"])
        let ingest = pipeline.client(.ingest)
        let request = SendEventsRequest(events: (0..<3).map { Pipeline.trigger(service.routingKey, dedupKey: "bundle-\($0)") })
        let reply: SendEventsReply = try await ingest.call(Ingest.SendEvents, request)
        let incidents = Set(reply.items.compactMap { $0.result?.incidentID })
        #expect(reply.items.map { $0.result?.outcome } == [.created, .created, .created])
        #expect(incidents.count == 3)

        let messages = try await pipeline.db.pool.withConnection { connection in
            let row = try connection.query("SELECT method, body FROM outbox WHERE destination = 'assignment'")
            #expect(row.count == 1)
            return try Outbox.messages(method: row.string(0, "method")!, body: row.bytes(0, "body")!)
        }
        #expect(messages.count == 3)
        let announced = try messages.map { try IncidentTriggeredRequest(wire: $0.body).incidentID }
        #expect(Set(announced) == incidents)

        try await pipeline.start(.assignment)
        let assignment = pipeline.client(.assignment, token: pipeline.serviceToken)
        _ = try await assignment.callRaw(messages[0].method, body: messages[0].body)  // before the relay's bundle
        // The relay retries the bundle after its backoff.
        #expect(try await pipeline.runClock { try await pipeline.db.scalar("SELECT count(*) FROM outbox WHERE destination = 'assignment'") == 0 })
        let pages = await pipeline.sink.waitForRequests(3, timeout: .seconds(20))
        #expect(Set(pages.compactMap { $0.webhook?.incident.id }) == incidents)
        await pipeline.letTimePass()
        #expect(pipeline.sink.requests.count == 3)
        for incident in incidents {
            #expect(try await pipeline.db.scalar(
                "SELECT count(*) FROM timeline_entries WHERE incident_id = $1 AND type = 'assign'", [Int64(incident)]) == 1)
        }
        await ingest.close()
        await assignment.close()
        await pipeline.shutdown()
    }

    /// Outbox delivery is at-least-once; receivers make it exactly one effect.
    @Test func redeliveredMessagesHaveOneEffect() async throws {
        let pipeline = try await Pipeline(start: [.ingest, .notifier], clock: ManualClock())
        let service = try await pipeline.seed(users: ["Alice"])
        let ingest = pipeline.client(.ingest)
        let created: EventResult = try await ingest.call(Self.sendEvent, Pipeline.trigger(service.routingKey))
        let messages = try await pipeline.db.pool.withConnection { connection in
            let row = try connection.query("SELECT method, body FROM outbox WHERE destination = 'assignment'")
            return try Outbox.messages(method: row.string(0, "method")!, body: row.bytes(0, "body")!)
        }
        #expect(messages.map(\.method) == [Assignment.IncidentTriggered.name])
        try await pipeline.start(.assignment)
        // The relay delivers it too: three deliveries of one message.
        let assignment = pipeline.client(.assignment, token: pipeline.serviceToken)
        _ = try await assignment.callRaw(messages[0].method, body: messages[0].body)
        _ = try await assignment.callRaw(messages[0].method, body: messages[0].body)

        let pages = await pipeline.sink.waitForRequests(1, timeout: .seconds(20))
        #expect(pages.count == 1)
        #expect(try await pipeline.runClock { try await pipeline.db.scalar("SELECT count(*) FROM outbox") == 0 })
        await pipeline.letTimePass()
        #expect(pipeline.sink.requests.count == 1)
        let incident = Int64(created.incidentID)
        #expect(try await pipeline.db.scalar("SELECT count(*) FROM timeline_entries WHERE incident_id = $1 AND type = 'assign'", [incident]) == 1)
        #expect(try await pipeline.db.scalar("SELECT count(*) FROM notifications WHERE incident_id = $1", [incident]) == 1)

        // The same notify request twice: one notification.
        let notifier = pipeline.client(.notifier, token: pipeline.serviceToken)
        let snapshot = IncidentSnapshot(
            incidentID: created.incidentID, number: 1, title: "again", status: .triggered, urgency: .high,
            serviceID: UInt64(service.serviceID), serviceName: "Checkout", severity: "critical", dedupKey: created.dedupKey,
            createdAtMs: 0, atMs: 0)
        let request = NotifyRequest(
            requestID: "request-1", incidentID: created.incidentID, userID: UInt64(service.userIDs[0]), reason: .manual,
            snapshot: snapshot, requestedAtMs: pipeline.clock.nowMs())
        let _: Empty = try await notifier.call(Notifier.Notify, request)
        let _: Empty = try await notifier.call(Notifier.Notify, request)
        let second = await pipeline.sink.waitForRequests(2, timeout: .seconds(10))
        await pipeline.letTimePass()
        #expect(second.count == 2)
        #expect(pipeline.sink.requests.count == 2)
        #expect(try await pipeline.db.scalar("SELECT count(*) FROM notifications WHERE request_id = 'request-1'") == 1)
        await ingest.close()
        await assignment.close()
        await notifier.close()
        await pipeline.shutdown()
    }

    /// Many connections race to trigger one new dedup key: the partial unique index makes exactly
    /// one incident, every other trigger joins it.
    @Test func concurrentTriggersWithOneNewDedupKeyMakeOneIncident() async throws {
        let pipeline = try await Pipeline(start: [.ingest])
        let service = try await pipeline.seed()
        let clients = (0..<4).map { _ in pipeline.client(.ingest) }
        let outcomes = try await withThrowingTaskGroup(of: EventResult.self) { group in
            for index in 0..<24 {
                group.addTask {
                    try await clients[index % clients.count].call(Self.sendEvent, Pipeline.trigger(service.routingKey, dedupKey: "race"))
                }
            }
            return try await group.reduce(into: [EventResult]()) { $0.append($1) }
        }
        #expect(outcomes.filter { $0.outcome == .created }.count == 1)
        #expect(outcomes.filter { $0.outcome == .deduplicated }.count == 23)
        #expect(Set(outcomes.map(\.incidentID)).count == 1)
        #expect(try await pipeline.db.scalar("SELECT count(*) FROM incidents") == 1)
        #expect(try await pipeline.db.scalar("SELECT count FROM alerts") == 24)
        #expect(try await pipeline.db.outboxMessages().count == 1)
        for client in clients { await client.close() }
        await pipeline.shutdown()
    }

    @Test func invalidEventsAreRejectedNamingTheFieldsAndWriteNothing() async throws {
        let pipeline = try await Pipeline(start: [.ingest])
        _ = try await pipeline.seed()
        let ingest = pipeline.client(.ingest)
        let bad = Event(routingKey: "short", eventAction: .trigger, payload: Payload(summary: "", source: "web-1"))
        do {
            let _: EventResult = try await ingest.call(Self.sendEvent, bad)
            Issue.record("expected INVALID_ARGUMENT")
        } catch let error as RPCError {
            #expect(error.code == .invalidArgument)
            #expect(error.status.violations.map(\.field) == ["routing_key", "payload.summary", "payload.severity"])
        }
        do {
            let _: EventResult = try await ingest.call(Self.sendEvent, Pipeline.trigger(String(repeating: "u", count: 32)))
            Issue.record("expected INVALID_ARGUMENT for an unknown routing key")
        } catch let error as RPCError {
            #expect(error.code == .invalidArgument)
            #expect(error.status.violations == [FieldViolation(field: "routing_key", description: "unknown routing key")])
        }
        #expect(try await pipeline.db.scalar("SELECT count(*) FROM incidents") == 0)
        #expect(try await pipeline.db.scalar("SELECT count(*) FROM outbox") == 0)
        await ingest.close()
        await pipeline.shutdown()
    }

    @Test func acknowledgeAndResolveEventsActOnTheOpenIncident() async throws {
        let pipeline = try await Pipeline(start: [.ingest])
        let service = try await pipeline.seed()
        let ingest = pipeline.client(.ingest)
        func send(_ action: EventAction) async throws -> EventResult {
            try await ingest.call(Self.sendEvent, Event(routingKey: service.routingKey, eventAction: action, dedupKey: "k"))
        }
        #expect(try await send(.acknowledge).outcome == .ignored)
        let created: EventResult = try await ingest.call(Self.sendEvent, Pipeline.trigger(service.routingKey, dedupKey: "k"))
        let before = SystemWallClock().nowMs()
        #expect(try await send(.acknowledge).outcome == .acknowledged)
        // Through the incident rules: the service's ack timeout (default 30 min) runs from this ack.
        let timers = try await pipeline.db.pool.withConnection { connection in
            try connection.query("SELECT ack_timeout_at_ms, escalate_at_ms, auto_resolve_at_ms FROM incidents WHERE id = $1", [Int64(created.incidentID)])
        }
        let ackTimeout = try #require(timers.int64(0, "ack_timeout_at_ms"))
        #expect((before + 1_800_000...SystemWallClock().nowMs() + 1_800_000).contains(ackTimeout))
        #expect(timers.isNull(0, "escalate_at_ms"))
        #expect(try await pipeline.db.scalar(
            "SELECT count(*) FROM acknowledgements WHERE incident_id = $1 AND actor = 'integration' AND closed_at_ms IS NULL",
            [Int64(created.incidentID)]) == 1)
        #expect(try await send(.resolve).outcome == .resolved)
        #expect(try await pipeline.db.scalar(
            """
            SELECT count(*) FROM incidents WHERE id = $1 AND status = 'resolved' AND resolved_at_ms IS NOT NULL
              AND ack_timeout_at_ms IS NULL AND escalate_at_ms IS NULL AND auto_resolve_at_ms IS NULL
            """, [Int64(created.incidentID)]) == 1)
        #expect(try await send(.resolve).outcome == .ignored)
        // After resolve, the same dedup key opens a new incident.
        let reopened: EventResult = try await ingest.call(Self.sendEvent, Pipeline.trigger(service.routingKey, dedupKey: "k"))
        #expect(reopened.outcome == .created)
        #expect(reopened.incidentID != created.incidentID)
        await ingest.close()
        await pipeline.shutdown()
    }
}
