import AssignmentService
import Foundation
import KlaxonDomain
import KlaxonTestSupport
import NotifierService
import Shared
import Testing

/// The assignment rules over real TCP, PostgreSQL timers and an HTTP sink, with the spec's own
/// numbers on a clock the test moves: ack timeout 5 min, level delay 10 min. A acks at 02:00, B at
/// 02:04; the incident goes back to triggered at 02:09 (B's ack + 5 min, not A's), both are paged
/// again, and at 02:19 level 2 is paged.
@Suite(.serialized) struct EscalationEndToEndTests {
    static let at0200: Millis = 1_796_004_000_000  // 2026-11-30T02:00:00Z
    static func at(minutes: Int, seconds: Int = 0) -> Millis { at0200 + Millis(minutes * 60 + seconds) * 1000 }

    @Test func ackTimeoutRunsFromTheLatestAckThenEscalatesToLevelTwo() async throws {
        let clock = ManualClock(Self.at(minutes: -1))
        let pipeline = try await Pipeline(clock: clock)
        let url = "\(pipeline.sink.url)/hooks"
        let service = try await pipeline.db.pool.transaction { connection in
            try Seed.service(
                connection, name: "Payments", routingKey: Seed.newRoutingKey(),
                users: ["Alice", "Bob", "Carol"].map { Seed.User(name: $0, email: "\($0.lowercased())@example.com", webhookURL: url) },
                levels: [[0, 1], [2]], escalationDelaySeconds: 600, ackTimeoutSeconds: 300)
        }
        let (alice, bob, carol) = (UInt64(service.userIDs[0]), UInt64(service.userIDs[1]), UInt64(service.userIDs[2]))
        let ingest = pipeline.client(.ingest)
        let assignment = pipeline.client(.assignment)

        let created: EventResult = try await ingest.call(Ingest.SendEvent, Pipeline.trigger(service.routingKey, dedupKey: "payments-down"))
        let first = await pipeline.sink.waitForRequests(2, timeout: .seconds(10))
        #expect(Set(first.compactMap { $0.webhook?.user.name }) == ["Alice", "Bob"])
        let incident = created.incidentID
        func status() async throws -> String? {
            try await pipeline.db.pool.withConnection { try $0.query("SELECT status FROM incidents WHERE id = $1", [Int64(incident)]).string(0, "status") }
        }

        await pipeline.move(to: Self.at(minutes: 0))
        let byAlice: IncidentView = try await assignment.call(Assignment.Acknowledge, IncidentActionRequest(incidentID: incident, userID: alice))
        #expect(byAlice.status == .acknowledged)
        #expect(byAlice.escalateAtMs == 0)
        #expect(byAlice.ackTimeoutAtMs == Self.at(minutes: 5))
        await pipeline.move(to: Self.at(minutes: 4))
        let byBob: IncidentView = try await assignment.call(Assignment.Acknowledge, IncidentActionRequest(incidentID: incident, userID: bob))
        #expect(byBob.acknowledgements.map(\.userID) == [alice, bob])
        #expect(byBob.acknowledgements.map(\.atMs) == [Self.at(minutes: 0), Self.at(minutes: 4)])
        #expect(byBob.ackTimeoutAtMs == Self.at(minutes: 9), "measured from the latest ack")

        // Past Alice's ack + 5 min, and up to the last millisecond before 02:09: still
        // acknowledged, nobody paged.
        await pipeline.move(to: Self.at(minutes: 5, seconds: 1))
        #expect(try await status() == "acknowledged")
        await pipeline.move(to: Self.at(minutes: 9) - 1)
        #expect(try await status() == "acknowledged")
        #expect(pipeline.sink.requests.count == 2)

        // At 02:09: triggered again, both paged with reason ack_timeout.
        await pipeline.jump(to: Self.at(minutes: 9))
        let again = await pipeline.sink.waitForRequests(4, timeout: .seconds(10))
        let repaged = again.dropFirst(2).compactMap(\.webhook)
        #expect(Set(repaged.map(\.user.name)) == ["Alice", "Bob"])
        #expect(repaged.allSatisfy { $0.reason == "ack_timeout" && $0.incident.status == "triggered" })
        #expect(try await pipeline.db.scalar(
            "SELECT at_ms FROM timeline_entries WHERE incident_id = $1 AND type = 'ack_timeout'", [Int64(incident)]) == Self.at(minutes: 9))
        #expect(try await pipeline.db.scalar(
            "SELECT count(*) FROM acknowledgements WHERE incident_id = $1 AND closed_at_ms IS NOT NULL", [Int64(incident)]) == 2)

        // Nobody acknowledges: level 1's 10 min run from 02:09; at 02:19 level 2 (Carol) is paged.
        await pipeline.move(to: Self.at(minutes: 19) - 1)
        #expect(pipeline.sink.requests.count == 4)
        await pipeline.jump(to: Self.at(minutes: 19))
        let escalated = await pipeline.sink.waitForRequests(5, timeout: .seconds(10))
        let carolPage = try #require(escalated.dropFirst(4).first?.webhook)
        #expect(carolPage.user.id == carol)
        #expect(carolPage.reason == "escalated")
        #expect(try await pipeline.db.scalar(
            "SELECT at_ms FROM timeline_entries WHERE incident_id = $1 AND type = 'assign' AND details->>'level' = '2'",
            [Int64(incident)]) == Self.at(minutes: 19))
        #expect(try await pipeline.db.scalar(
            "SELECT count(*) FROM incident_assignments WHERE incident_id = $1 AND user_id = $2", [Int64(incident), Int64(carol)]) == 1)

        // Resolve by Carol: later timers do nothing.
        let resolved: IncidentView = try await assignment.call(
            Assignment.Resolve, IncidentActionRequest(incidentID: incident, userID: carol, text: "rolled back"))
        #expect(resolved.status == .resolved)
        #expect(resolved.escalateAtMs == 0 && resolved.ackTimeoutAtMs == 0)
        do {
            let _: IncidentView = try await assignment.call(Assignment.Acknowledge, IncidentActionRequest(incidentID: incident, userID: alice))
            Issue.record("acknowledging a resolved incident must fail")
        } catch let error as RPCError {
            #expect(error.code == .failedPrecondition)
        }
        await pipeline.move(to: Self.at(minutes: 60))
        #expect(pipeline.sink.requests.count == 5)
        await ingest.close()
        await assignment.close()
        await pipeline.shutdown()
    }

    @Test func actionsAreValidated() async throws {
        let pipeline = try await Pipeline(start: [.ingest, .assignment])
        let service = try await pipeline.seed(users: ["Alice"])
        let assignment = pipeline.client(.assignment)
        func code(_ method: RPCMethod<IncidentActionRequest, IncidentView>, _ request: IncidentActionRequest) async -> StatusCode? {
            do {
                let _: IncidentView = try await assignment.call(method, request)
                return .ok
            } catch let error as RPCError {
                return error.code
            } catch {
                return nil
            }
        }
        let alice = UInt64(service.userIDs[0])
        #expect(await code(Assignment.Acknowledge, IncidentActionRequest(incidentID: 0, userID: 0)) == .invalidArgument)
        #expect(await code(Assignment.Acknowledge, IncidentActionRequest(incidentID: 999, userID: alice)) == .notFound)
        #expect(await code(Assignment.Acknowledge, IncidentActionRequest(incidentID: 1, userID: 999)) == .notFound)
        // An action this server does not know (a newer client's) is UNIMPLEMENTED and writes
        // nothing: it is never taken for another action such as a note.
        let triggered: EventResult = try await pipeline.client(.ingest).call(Ingest.SendEvent, Pipeline.trigger(service.routingKey, dedupKey: "x"))
        let newer = RPCMethod<IncidentActionRequest, IncidentView>("klaxon.assignment.v1.Assignment/Merge")
        #expect(await code(newer, IncidentActionRequest(incidentID: triggered.incidentID, userID: alice, text: "merge")) == .unimplemented)
        #expect(try await pipeline.db.scalar("SELECT count(*) FROM timeline_entries WHERE incident_id = $1 AND type = 'note'", [Int64(triggered.incidentID)]) == 0)
        await assignment.close()
        await pipeline.shutdown()
    }
}

@Suite struct TimerRestartTests {
    /// The escalation timer is a column: it outlives the process that set it. Assignment stops
    /// with an escalation pending, the due time passes, then two replicas start on the same
    /// database: level 2 is paged exactly once, at their start.
    @Test func escalationSurvivesARestartAndFiresOnceAcrossTwoReplicas() async throws {
        let clock = ManualClock(EscalationEndToEndTests.at0200)
        let pipeline = try await Pipeline(clock: clock)
        let url = "\(pipeline.sink.url)/hooks"
        let service = try await pipeline.db.pool.transaction { connection in
            try Seed.service(
                connection, name: "Restart", routingKey: Seed.newRoutingKey(),
                users: ["Alice", "Bob"].map { Seed.User(name: $0, email: "\($0.lowercased())@example.com", webhookURL: url) },
                levels: [[0], [1]], escalationDelaySeconds: 300)
        }
        let ingest = pipeline.client(.ingest)
        let _: EventResult = try await ingest.call(Ingest.SendEvent, Pipeline.trigger(service.routingKey))
        #expect(await pipeline.sink.waitForRequests(1, timeout: .seconds(10)).compactMap { $0.webhook?.user.name } == ["Alice"])
        await pipeline.settle()
        await pipeline.stop(.assignment)
        // 02:30, far past the 5 min escalation, while nobody runs timers.
        await pipeline.move(to: EscalationEndToEndTests.at(minutes: 30))
        #expect(pipeline.sink.requests.count == 1)

        // Two replicas: the pipeline's own, and a second one on another port.
        var second = pipeline.config
        second.assignmentListen = HostPort(host: "127.0.0.1", port: try await freePort())
        let replica = AssignmentService(config: second, pool: pipeline.db.pool, clock: clock, logger: pipeline.logger)
        let replicaRun = RunningService(replica, logger: pipeline.logger)
        pipeline.extraLoops = 7  // the replica's loops (Pipeline.loopCount's Assignment)
        try await pipeline.start(.assignment)

        let pages = await pipeline.sink.waitForRequests(2, timeout: .seconds(10))
        #expect(pages.dropFirst().compactMap { $0.webhook?.user.name } == ["Bob"])
        #expect(try await pipeline.db.scalar(
            "SELECT at_ms FROM timeline_entries WHERE type = 'assign' AND details->>'level' = '2'") == EscalationEndToEndTests.at(minutes: 30),
            "fired at the restart")
        // Both replicas keep polling (once a second): still paged once, not once per replica.
        for second in 1...3 { await pipeline.move(to: EscalationEndToEndTests.at(minutes: 30, seconds: second)) }
        #expect(pipeline.sink.requests.count == 2, "paged once, not once per replica")
        #expect(try await pipeline.db.scalar("SELECT count(*) FROM timeline_entries WHERE type = 'escalate'") == 1)
        await replicaRun.stop()
        await ingest.close()
        await pipeline.shutdown()
    }
}
