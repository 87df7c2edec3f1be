import Foundation
import KlaxonDomain
import KlaxonTestSupport
import Logging
import NotifierService
import Shared
import Testing

/// PRODUCT.md, "Deleting things": a failure while processing one incident is retried with
/// backoff and logged; it never holds up others.
@Suite struct PoisonIncidentTests {
    static let sendEvent = Ingest.SendEvent

    /// A schedule, written by SQL as no API would, whose only layer names a user who does not
    /// exist: assigning from it fails on a foreign key, every time.
    static func ghostSchedule(_ connection: PGConnection) throws -> Int64 {
        try connection.query(
            """
            INSERT INTO schedules (name, time_zone, definition) VALUES ('ghosts', 'UTC',
              '{"layers":[{"users":[987654],"rotationVirtualStartMs":0,"turnLengthSeconds":86400,"restrictions":[]}],"overrides":[]}')
            RETURNING id
            """).int64(0, "id")!
    }

    /// Incident P escalates into a schedule that names a user who does not exist (written by
    /// SQL), so every attempt to process P fails on a foreign key. Meanwhile another service's
    /// incidents escalate and time out: each fires when due. On a clock the test moves.
    @Test func oneFailingIncidentNeverHoldsUpOtherTimers() async throws {
        let clock = ManualClock()
        let start = clock.nowMs()
        let pipeline = try await Pipeline(clock: clock)
        let url = "\(pipeline.sink.url)/hooks"
        let (poison, healthy) = try await pipeline.db.pool.transaction { connection in
            let poison = try Seed.service(
                connection, name: "Poison", routingKey: Seed.newRoutingKey(),
                users: [Seed.User(name: "Pat", email: "pat@example.com", webhookURL: url)], escalationDelaySeconds: 60)
            let schedule = try Self.ghostSchedule(connection)
            try connection.query(
                "INSERT INTO escalation_levels (policy_id, position, escalation_delay_seconds) VALUES ($1, 2, 60)", [poison.policyID])
            try connection.query(
                "INSERT INTO escalation_targets (policy_id, level_position, position, schedule_id) VALUES ($1, 2, 1, $2)",
                [poison.policyID, schedule])
            let healthy = try Seed.service(
                connection, name: "Healthy", routingKey: Seed.newRoutingKey(),
                users: ["Bea", "Cem"].map { Seed.User(name: $0, email: "\($0.lowercased())@example.com", webhookURL: url) },
                levels: [[0], [1]], escalationDelaySeconds: 300, ackTimeoutSeconds: 300)
            return (poison, healthy)
        }
        let ingest = pipeline.client(.ingest)
        let assignment = pipeline.client(.assignment)
        let p: EventResult = try await ingest.call(Self.sendEvent, Pipeline.trigger(poison.routingKey, dedupKey: "p"))
        // Wait until P is stuck: its escalation failed at least once.
        try #require(try await eventually(timeout: .seconds(10)) {
            try await pipeline.db.scalar("SELECT count(*) FROM incidents WHERE id = $1 AND current_level = 1", [Int64(p.incidentID)]) == 1
        })
        await pipeline.jump(to: start + 60_000)
        let stuck = try await eventually(timeout: .seconds(10)) {
            try await pipeline.db.scalar("SELECT work_attempts FROM incidents WHERE id = $1", [Int64(p.incidentID)]) ?? 0 >= 1
        }
        try #require(stuck)
        #expect(try await pipeline.db.scalar(
            "SELECT count(*) FROM incidents WHERE id = $1 AND work_last_error LIKE '%23503%' AND current_level = 1", [Int64(p.incidentID)]) == 1)

        // Healthy: H1 escalates after 5 min; H2 is acknowledged and times out 5 min later.
        let h1: EventResult = try await ingest.call(Self.sendEvent, Pipeline.trigger(healthy.routingKey, dedupKey: "h1"))
        let h2: EventResult = try await ingest.call(Self.sendEvent, Pipeline.trigger(healthy.routingKey, dedupKey: "h2"))
        let assigned = try await eventually(timeout: .seconds(10)) {
            try await pipeline.db.scalar(
                "SELECT count(*) FROM incidents WHERE id = ANY($1::bigint[]) AND current_level = 1",
                [PGArray([Int64(h1.incidentID), Int64(h2.incidentID)])]) == 2
        }
        try #require(assigned)
        let _: IncidentView = try await assignment.call(
            Assignment.Acknowledge, IncidentActionRequest(incidentID: h2.incidentID, userID: UInt64(healthy.userIDs[0])))
        let due = try await pipeline.db.pool.withConnection { connection in
            let rows = try connection.query(
                "SELECT id, escalate_at_ms, ack_timeout_at_ms FROM incidents WHERE id = ANY($1::bigint[]) ORDER BY id",
                [PGArray([Int64(h1.incidentID), Int64(h2.incidentID)])])
            return (rows.int64(0, "escalate_at_ms")!, rows.int64(1, "ack_timeout_at_ms")!)
        }
        // P fails again at every retry meanwhile (1 s, 2 s, 4 s, … on this clock).
        for step in 1...8 { await pipeline.move(to: start + 60_000 + Millis(step) * 30_000) }
        await pipeline.jump(to: max(due.0, due.1))
        let fired = try await eventually(timeout: .seconds(10)) {
            try await pipeline.db.scalar(
                "SELECT count(*) FROM timeline_entries WHERE (incident_id = $1 AND type = 'escalate') OR (incident_id = $2 AND type = 'ack_timeout')",
                [Int64(h1.incidentID), Int64(h2.incidentID)]) == 2
        }
        #expect(fired, "the healthy incidents' timers fired while P keeps failing")
        let lags = try await pipeline.db.pool.withConnection { connection in
            let rows = try connection.query(
                """
                SELECT incident_id, at_ms FROM timeline_entries
                WHERE (incident_id = $1 AND type = 'escalate') OR (incident_id = $2 AND type = 'ack_timeout') ORDER BY incident_id
                """, [Int64(h1.incidentID), Int64(h2.incidentID)])
            return (rows.int64(0, "at_ms")! - due.0, rows.int64(1, "at_ms")! - due.1)
        }
        #expect(lags.0 >= 0 && lags.0 <= 1_000, "escalation fired \(lags.0) ms after due")
        #expect(lags.1 >= 0 && lags.1 <= 1_000, "ack timeout fired \(lags.1) ms after due")
        // P keeps backing off, retried, its reason kept; nothing of it was half-written.
        #expect(try await pipeline.db.scalar("SELECT work_retry_at_ms FROM incidents WHERE id = $1", [Int64(p.incidentID)]) != nil)
        #expect(try await pipeline.db.scalar(
            "SELECT count(*) FROM timeline_entries WHERE incident_id = $1 AND type = 'escalate'", [Int64(p.incidentID)]) == 0)
        await ingest.close()
        await assignment.close()
        await pipeline.shutdown()
    }

    /// One group commit announces two new incidents in one outbox bundle; Assignment cannot
    /// process one of them (its level 1 is a schedule naming a user who does not exist). The
    /// other is assigned and paged at once, and the row left behind holds only the bad message,
    /// backing off, with its reason.
    @Test func oneBadMessageInABundleHoldsUpNoOtherIncident() async throws {
        let pipeline = try await Pipeline()
        let url = "\(pipeline.sink.url)/hooks"
        let (poison, healthy) = try await pipeline.db.pool.transaction { connection in
            let poison = try Seed.service(
                connection, name: "Poison", routingKey: Seed.newRoutingKey(),
                users: [Seed.User(name: "Pat", email: "pat@example.com", webhookURL: url)])
            let schedule = try Self.ghostSchedule(connection)
            try connection.query(
                "UPDATE escalation_targets SET user_id = NULL, schedule_id = $2 WHERE policy_id = $1", [poison.policyID, schedule])
            let healthy = try Seed.service(
                connection, name: "Healthy", routingKey: Seed.newRoutingKey(),
                users: [Seed.User(name: "Bea", email: "bea@example.com", webhookURL: url)])
            return (poison, healthy)
        }
        let ingest = pipeline.client(.ingest)
        let reply: SendEventsReply = try await ingest.call(Ingest.SendEvents, SendEventsRequest(events: [
            Pipeline.trigger(poison.routingKey, dedupKey: "p"), Pipeline.trigger(healthy.routingKey, dedupKey: "h"),
        ]))
        let ids = reply.items.compactMap { $0.result?.incidentID }
        try #require(ids.count == 2)
        let pages = await pipeline.sink.waitForRequests(1, timeout: .seconds(10)).compactMap(\.webhook)
        #expect(pages.map(\.user.name) == ["Bea"])
        #expect(pages.first?.incident.id == ids[1])
        let leftBehind = try await eventually(timeout: .seconds(10)) {
            try await pipeline.db.scalar("SELECT count(*) FROM outbox WHERE destination = 'assignment' AND last_error LIKE '%does not exist%'") == 1
        }
        #expect(leftBehind)
        let messages = try await pipeline.db.outboxMessages()
        #expect(messages.count == 1, "only the bad message is retried")
        let message = try #require(messages.first)
        #expect(try IncidentTriggeredRequest(wire: message.body).incidentID == ids[0])
        #expect(try await pipeline.db.scalar("SELECT count(*) FROM incidents WHERE id = $1 AND current_level = 0", [Int64(ids[0])]) == 1)
        await ingest.close()
        await pipeline.shutdown()
    }

    /// Deleting a user still on a schedule, an escalation policy or an open incident is refused
    /// with FAILED_PRECONDITION naming each reference; a user nothing refers to is deleted.
    @Test func deletingAReferencedUserIsRefusedNamingEachReference() async throws {
        let pipeline = try await Pipeline()
        let service = try await pipeline.seed(users: ["Alice"])
        let alice = service.userIDs[0]
        let people = pipeline.client(.notifier)
        let admin = pipeline.client(.assignment)
        let schedule: ScheduleMessage = try await admin.call(Admin.CreateSchedule, ScheduleMessage(
            name: "Primary", timeZone: "UTC",
            layers: [LayerMessage(userIDs: [UInt64(alice)], rotationVirtualStartMs: 0, rotationTurnLengthSeconds: 86_400)]))
        let ingest = pipeline.client(.ingest)
        let created: EventResult = try await ingest.call(Self.sendEvent, Pipeline.trigger(service.routingKey))
        let assigned = try await eventually(timeout: .seconds(10)) {
            try await pipeline.db.scalar("SELECT count(*) FROM incident_assignments WHERE incident_id = $1", [Int64(created.incidentID)]) == 1
        }
        try #require(assigned)

        let refusal = try #require(await people.failure(People.DeleteUser, IDRequest(id: UInt64(alice))))
        #expect(refusal.code == .failedPrecondition)
        #expect(refusal.status.message.contains("schedule \(schedule.id) \"Primary\""), "\(refusal.status.message)")
        #expect(refusal.status.message.contains("escalation policy \(service.policyID) \"Checkout policy\" (level 1)"), "\(refusal.status.message)")
        #expect(refusal.status.message.contains("open incident \(created.incidentID)"), "\(refusal.status.message)")
        #expect(try await pipeline.db.scalar("SELECT count(*) FROM users WHERE id = $1", [alice]) == 1)

        let bob: UserMessage = try await people.call(People.CreateUser, UserMessage(name: "Bob", email: "bob@example.com"))
        let _: Empty = try await people.call(People.DeleteUser, IDRequest(id: bob.id))
        #expect(await people.failure(People.DeleteUser, IDRequest(id: bob.id))?.code == .notFound)
        await people.close()
        await admin.close()
        await ingest.close()
        await pipeline.shutdown()
    }
}
