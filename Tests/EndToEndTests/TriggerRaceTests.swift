import Foundation
import KlaxonDomain
import KlaxonTestSupport
import Logging
import NotifierService
import Shared
import Testing

/// PRODUCT.md, "Assignment and escalation": the trigger's level 1 is always assigned and its
/// minute-zero pages always sent with the snapshot taken at the trigger (status triggered),
/// whatever landed first; delayed rules follow the incident's state and are skipped with the
/// reason. Real TCP, PostgreSQL and an HTTP sink.
@Suite struct TriggerRaceEndToEndTests {
    static let sendEvent = Ingest.SendEvent

    /// The Ingest → Assignment hand-off is held up (Ingest's outbox points at a port nobody
    /// listens on: Assignment restarting, a backlog). Meanwhile incident X is acknowledged by
    /// user A through Assignment, Y by the monitor, and Z resolved by the monitor. Then the
    /// hand-off resumes. Every level-1 user of X, Y and Z is paged with status triggered and
    /// snapshot true; their 2-minute rules are skipped with the reason; timelines read in order.
    /// On a clock the test moves.
    @Test func ackOrResolveBeforeTheHandOffStillPagesLevelOne() async throws {
        let deadPort = try await freePort()
        let clock = ManualClock()
        let start = clock.nowMs()
        let pipeline = try await Pipeline(clock: clock) { config, _ in
            config.assignmentAddress = HostPort(host: "127.0.0.1", port: deadPort)
        }
        let url = "\(pipeline.sink.url)/hooks"
        let service = try await pipeline.db.pool.transaction { connection in
            try Seed.service(
                connection, name: "Payments", routingKey: Seed.newRoutingKey(),
                users: [
                    Seed.User(name: "Alice", email: "alice@example.com", webhookURL: url, ruleDelaysSeconds: [0, 120]),
                    Seed.User(name: "Bob", email: "bob@example.com", webhookURL: url, ruleDelaysSeconds: [0, 120]),
                ])
        }
        let alice = UInt64(service.userIDs[0])
        let ingest = pipeline.client(.ingest)
        let assignment = pipeline.client(.assignment)
        let x: EventResult = try await ingest.call(Self.sendEvent, Pipeline.trigger(service.routingKey, dedupKey: "x"))
        let y: EventResult = try await ingest.call(Self.sendEvent, Pipeline.trigger(service.routingKey, dedupKey: "y"))
        let z: EventResult = try await ingest.call(Self.sendEvent, Pipeline.trigger(service.routingKey, dedupKey: "z"))

        let acked: IncidentView = try await assignment.call(
            Assignment.Acknowledge, IncidentActionRequest(incidentID: x.incidentID, userID: alice))
        #expect(acked.status == .acknowledged)
        let yAck: EventResult = try await ingest.call(Self.sendEvent, Event(routingKey: service.routingKey, eventAction: .acknowledge, dedupKey: "y"))
        #expect(yAck.outcome == .acknowledged)
        let zResolve: EventResult = try await ingest.call(Self.sendEvent, Event(routingKey: service.routingKey, eventAction: .resolve, dedupKey: "z"))
        #expect(zResolve.outcome == .resolved)

        // The hand-off resumes: Ingest's outbox reaches Assignment; the triggers find themselves applied.
        let relay = OutboxRelay(
            destination: Outbox.Destination.assignment, client: pipeline.client(.assignment, token: pipeline.serviceToken), pool: pipeline.db.pool, logger: pipeline.logger)
        let delivered = try await eventually(timeout: .seconds(10)) {
            _ = try await relay.deliverDue(now: start + 3_600_000)
            return try await pipeline.db.scalar("SELECT count(*) FROM outbox WHERE destination = 'assignment'") == 0
        }
        #expect(delivered)
        // Work written by another process (Ingest's monitor events) is picked up by the loops'
        // poll, at least every 2 s: let 5 s pass.
        await pipeline.jump(to: start + 5_000)

        let pages = await pipeline.sink.waitForRequests(6, timeout: .seconds(15)).compactMap(\.webhook)
        for incident in [x, y, z] {
            for name in ["Alice", "Bob"] {
                let page = pages.first { $0.incident.id == incident.incidentID && $0.user.name == name }
                #expect(page != nil, "\(name) paged for incident \(incident.incidentID)")
                #expect(page?.incident.status == "triggered")
                #expect(page?.snapshot == true)
                #expect(page?.reason == "assigned")
                #expect(page?.rule.startDelaySeconds == 0)
            }
        }
        // The 2-minute rules: skipped, with the reason.
        await pipeline.move(to: start + 120_000)
        let skipped = try await eventually(timeout: .seconds(10)) {
            try await pipeline.db.scalar("SELECT count(*) FROM timeline_entries WHERE type = 'notify_skipped'") == 6
        }
        #expect(skipped)
        for (incident, reason) in [(x, "acknowledged"), (y, "acknowledged"), (z, "resolved")] {
            #expect(try await pipeline.db.scalar(
                "SELECT count(*) FROM timeline_entries WHERE incident_id = $1 AND type = 'notify_skipped' AND details->>'reason' = $2",
                [Int64(incident.incidentID), reason]) == 2, "incident \(incident.incidentID): \(reason)")
        }
        await pipeline.move(to: start + 180_000)  // before the acknowledged ones' ack timeout
        #expect(pipeline.sink.requests.count == 6, "nobody paged twice")

        // Each timeline: trigger, then the trigger's assignment, then what happened.
        for (incident, last) in [(x, "acknowledge"), (y, "acknowledge"), (z, "resolve")] {
            let types = try await pipeline.db.pool.withConnection { connection in
                let rows = try connection.query(
                    "SELECT type FROM timeline_entries WHERE incident_id = $1 AND type IN ('trigger', 'assign', 'acknowledge', 'resolve') ORDER BY id",
                    [Int64(incident.incidentID)])
                return (0..<rows.count).map { rows.string($0, "type")! }
            }
            #expect(types == ["trigger", "assign", last], "incident \(incident.incidentID)")
        }
        // The escalation state followed what happened: no escalation pending, level 1 assigned.
        #expect(try await pipeline.db.scalar(
            "SELECT count(*) FROM incidents WHERE trigger_applied AND current_level = 1 AND escalate_at_ms IS NULL") == 3)
        #expect(try await pipeline.db.scalar("SELECT count(*) FROM incident_assignments WHERE incident_id = $1", [Int64(x.incidentID)]) == 2)
        await ingest.close()
        await assignment.close()
        await pipeline.shutdown()
    }

    /// A acknowledges as soon as the trigger's reply arrives, twenty times over: B is paged
    /// every time (today's main missed B in most of them).
    @Test func immediateAcknowledgeNeverDropsTheOtherAssignee() async throws {
        let pipeline = try await Pipeline()
        let service = try await pipeline.seed(users: ["Alice", "Bob"])
        let alice = UInt64(service.userIDs[0])
        let ingest = pipeline.client(.ingest)
        let assignment = pipeline.client(.assignment)
        var incidents: [UInt64] = []
        for index in 0..<20 {
            let created: EventResult = try await ingest.call(Self.sendEvent, Pipeline.trigger(service.routingKey, dedupKey: "race-\(index)"))
            let _: IncidentView = try await assignment.call(
                Assignment.Acknowledge, IncidentActionRequest(incidentID: created.incidentID, userID: alice))
            incidents.append(created.incidentID)
        }
        let pages = await pipeline.sink.waitForRequests(40, timeout: .seconds(20)).compactMap(\.webhook)
        for incident in incidents {
            #expect(pages.contains { $0.incident.id == incident && $0.user.name == "Bob" && $0.incident.status == "triggered" },
                    "Bob paged for incident \(incident)")
        }
        #expect(pages.count == 40)
        await ingest.close()
        await assignment.close()
        await pipeline.shutdown()
    }
}
