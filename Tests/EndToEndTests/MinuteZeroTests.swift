import Foundation
import KlaxonDomain
import KlaxonTestSupport
import NotifierService
import Shared
import Testing

/// PRODUCT.md's seed example for notifications, over real TCP, PostgreSQL and an HTTP sink.
@Suite struct MinuteZeroTests {
    static let sendEvent = Ingest.SendEvent

    /// A and B on one level with zero-delay rules; A acknowledges one second after the trigger;
    /// B is still paged, with the snapshot (status triggered). B's delayed rule (5 min) is then
    /// skipped because the incident is acknowledged. On a clock the test moves.
    @Test func minuteZeroIsAlwaysSentAndDelayedRulesAreSkippedOnceAcknowledged() async throws {
        let clock = ManualClock()
        let start = clock.nowMs()
        let pipeline = try await Pipeline(start: [.ingest, .assignment], clock: clock)  // Notifier starts late: A's ack lands first
        let url = "\(pipeline.sink.url)/hooks"
        let service = try await pipeline.db.pool.transaction { connection in
            try Seed.service(
                connection, name: "Payments", routingKey: Seed.newRoutingKey(),
                users: [
                    Seed.User(name: "Alice", email: "alice@example.com", webhookURL: url, ruleDelaysSeconds: [0]),
                    Seed.User(name: "Bob", email: "bob@example.com", webhookURL: url, ruleDelaysSeconds: [0, 300]),
                ])
        }
        let alice = UInt64(service.userIDs[0])
        let ingest = pipeline.client(.ingest)
        let assignment = pipeline.client(.assignment)
        let created: EventResult = try await ingest.call(Self.sendEvent, Pipeline.trigger(service.routingKey))
        // Wait until Assignment assigned both (the notify requests sit in its outbox for Notifier).
        let assigned = try await eventually(timeout: .seconds(10)) {
            try await pipeline.db.scalar("SELECT count(*) FROM incident_assignments WHERE incident_id = $1", [Int64(created.incidentID)]) == 2
        }
        try #require(assigned)
        await pipeline.move(to: start + 1_000)
        let acked: IncidentView = try await assignment.call(
            Assignment.Acknowledge, IncidentActionRequest(incidentID: created.incidentID, userID: alice))
        #expect(acked.status == .acknowledged)
        try await pipeline.start(.notifier)
        // Assignment's relay backs off while Notifier is down (200 ms, 400 ms, …): its retry comes.
        await pipeline.jump(to: start + 10_000)
        #expect(await pipeline.runClock { pipeline.sink.requests.count >= 2 })
        #expect(clock.nowMs() < start + 300_000, "the minute-zero pages waited for the delayed rule's instant")
        let pages = await pipeline.sink.waitForRequests(2, timeout: .seconds(10))
        let bob = try #require(pages.compactMap(\.webhook).first { $0.user.name == "Bob" })
        #expect(bob.snapshot)
        #expect(bob.incident.status == "triggered", "the snapshot from when Bob was assigned")
        #expect(bob.rule.startDelaySeconds == 0)
        #expect(pages.compactMap(\.webhook).contains { $0.user.name == "Alice" })

        // Bob's 5-minute rule: skipped, the incident no longer needs him.
        await pipeline.move(to: start + 300_000)
        let skipped = try await eventually(timeout: .seconds(10)) {
            try await pipeline.db.scalar(
                "SELECT count(*) FROM timeline_entries WHERE incident_id = $1 AND type = 'notify_skipped' AND details->>'reason' = 'acknowledged'",
                [Int64(created.incidentID)]) == 1
        }
        #expect(skipped)
        #expect(pipeline.sink.requests.count == 2)
        await ingest.close()
        await assignment.close()
        await pipeline.shutdown()
    }

    @Test func delayedRuleAfterResolveIsSkipped() async throws {
        let clock = ManualClock()
        let pipeline = try await Pipeline(clock: clock)
        let url = "\(pipeline.sink.url)/hooks"
        let service = try await pipeline.db.pool.transaction { connection in
            try Seed.service(
                connection, name: "Payments", routingKey: Seed.newRoutingKey(),
                users: [Seed.User(name: "Alice", email: "alice@example.com", webhookURL: url, ruleDelaysSeconds: [0, 120])])
        }
        let ingest = pipeline.client(.ingest)
        let created: EventResult = try await ingest.call(Self.sendEvent, Pipeline.trigger(service.routingKey, dedupKey: "flap"))
        #expect(await pipeline.sink.waitForRequests(1, timeout: .seconds(10)).count == 1)
        let _: EventResult = try await ingest.call(Self.sendEvent, Event(routingKey: service.routingKey, eventAction: .resolve, dedupKey: "flap"))
        clock.advance(byMs: 120_000)
        let skipped = try await eventually(timeout: .seconds(10)) {
            try await pipeline.db.scalar(
                "SELECT count(*) FROM timeline_entries WHERE incident_id = $1 AND type = 'notify_skipped' AND details->>'reason' = 'resolved'",
                [Int64(created.incidentID)]) == 1
        }
        #expect(skipped)
        #expect(pipeline.sink.requests.count == 1)
        // The notifications query says why.
        let notifier = pipeline.client(.notifier)
        let list: NotificationListMessage = try await notifier.call(People.ListIncidentNotifications, IDRequest(id: created.incidentID))
        #expect(list.notifications.map(\.status) == ["sent", "skipped"])
        #expect(list.notifications.last?.lastError == "resolved")
        // A skipped notification was never attempted; a sent one keeps no error.
        #expect(list.notifications.map(\.attempts) == [1, 0])
        #expect(list.notifications.first?.lastError == "")
        #expect(try await pipeline.db.scalar(
            "SELECT count(*) FROM timeline_entries WHERE incident_id = $1 AND type = 'notify_skipped' AND details->>'attempts' = '0'",
            [Int64(created.incidentID)]) == 1)
        await notifier.close()
        await ingest.close()
        await pipeline.shutdown()
    }
}

@Suite struct SupersedeTests {
    /// Reassigning Alice to herself issues a newer notify request: her pending 3-minute rule from
    /// the first request is superseded (skipped), the new request's own rules go ahead, and she is
    /// not paged twice for one step. On a clock the test moves.
    @Test func newerRequestSupersedesPendingDelayedNotifications() async throws {
        let clock = ManualClock()
        let start = clock.nowMs()
        let pipeline = try await Pipeline(clock: clock)
        let url = "\(pipeline.sink.url)/hooks"
        let service = try await pipeline.db.pool.transaction { connection in
            try Seed.service(
                connection, name: "Payments", routingKey: Seed.newRoutingKey(),
                users: [Seed.User(name: "Alice", email: "alice@example.com", webhookURL: url, ruleDelaysSeconds: [0, 180])])
        }
        let alice = UInt64(service.userIDs[0])
        let ingest = pipeline.client(.ingest)
        let assignment = pipeline.client(.assignment)
        let created: EventResult = try await ingest.call(Ingest.SendEvent, Pipeline.trigger(service.routingKey))
        #expect(await pipeline.sink.waitForRequests(1, timeout: .seconds(10)).count == 1)
        await pipeline.move(to: start + 60_000)
        let _: IncidentView = try await assignment.call(
            Assignment.Reassign, IncidentActionRequest(incidentID: created.incidentID, userID: alice, userIDs: [alice]))
        let superseded = try await eventually(timeout: .seconds(5)) {
            try await pipeline.db.scalar(
                "SELECT count(*) FROM timeline_entries WHERE incident_id = $1 AND type = 'notify_skipped' AND details->>'reason' = 'superseded'",
                [Int64(created.incidentID)]) == 1
        }
        #expect(superseded)
        // Minute zero of the reassign; the first request's rule was due at 03:00 and stays silent;
        // the reassign's own rule goes out at 04:00: 3 pages in all, not 4.
        #expect(await pipeline.sink.waitForRequests(2, timeout: .seconds(10)).count == 2)
        await pipeline.move(to: start + 240_000 - 1)
        #expect(pipeline.sink.requests.count == 2)
        await pipeline.jump(to: start + 240_000)
        let pages = await pipeline.sink.waitForRequests(3, timeout: .seconds(10))
        #expect(pages.compactMap(\.webhook).map(\.reason) == ["assigned", "reassigned", "reassigned"])
        await pipeline.move(to: start + 3_600_000)
        #expect(pipeline.sink.requests.count == 3)
        // The delayed rule went out within a second of its due time.
        let lateness = try await pipeline.db.scalar(
            "SELECT finished_at_ms - due_at_ms FROM notifications WHERE status = 'sent' AND NOT minute_zero AND incident_id = $1",
            [Int64(created.incidentID)])
        #expect((0..<1_000).contains(try #require(lateness)), "sent \(lateness ?? -1) ms after due")
        await ingest.close()
        await assignment.close()
        await pipeline.shutdown()
    }
}
