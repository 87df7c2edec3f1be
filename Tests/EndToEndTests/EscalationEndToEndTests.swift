import AssignmentService
import Foundation
import KlaxonDomain
import KlaxonTestSupport
import NotifierService
import Shared
import Testing

/// The assignment rules over real TCP, PostgreSQL timers and an HTTP sink, in seconds instead
/// of minutes: ack timeout T = 3 s, level delay 2 s. A acks, B acks later, the incident goes back
/// to triggered at B's ack + T (not A's), both are paged again, and 2 s later level 2 is paged.
@Suite(.serialized) struct EscalationEndToEndTests {
    static let sendEvent = Ingest.SendEvent

    @Test func ackTimeoutRunsFromTheLatestAckThenEscalatesToLevelTwo() async throws {
        let pipeline = try await Pipeline()
        let url = "\(pipeline.sink.url)/hooks"
        let service = try await pipeline.db.pool.transaction { connection in
            try Seed.service(
                connection, name: "Payments", routingKey: Seed.newRoutingKey(),
                users: ["Alice", "Bob", "Carol"].map { Seed.User(name: $0, email: "\($0.lowercased())@example.com", webhookURL: url) },
                levels: [[0, 1], [2]], escalationDelaySeconds: 2, ackTimeoutSeconds: 3)
        }
        let (alice, bob, carol) = (UInt64(service.userIDs[0]), UInt64(service.userIDs[1]), UInt64(service.userIDs[2]))
        let ingest = pipeline.client(.ingest)
        let assignment = pipeline.client(.assignment)

        let created: EventResult = try await ingest.call(Self.sendEvent, Pipeline.trigger(service.routingKey, dedupKey: "payments-down"))
        let first = await pipeline.sink.waitForRequests(2, timeout: .seconds(10))
        #expect(Set(first.compactMap { $0.webhook?.user.name }) == ["Alice", "Bob"])
        let incident = created.incidentID

        let byAlice: IncidentView = try await assignment.call(
            Assignment.Acknowledge, IncidentActionRequest(incidentID: incident, userID: alice))
        #expect(byAlice.status == .acknowledged)
        #expect(byAlice.escalateAtMs == 0)
        try await Task.sleep(for: .milliseconds(1_500))
        let byBob: IncidentView = try await assignment.call(
            Assignment.Acknowledge, IncidentActionRequest(incidentID: incident, userID: bob))
        let bobAckedAt = try #require(byBob.acknowledgements.last?.atMs)
        #expect(byBob.acknowledgements.map(\.userID) == [alice, bob])
        #expect(byBob.ackTimeoutAtMs == bobAckedAt + 3_000, "measured from the latest ack")

        // Past Alice's ack + T, before Bob's ack + T: still acknowledged, nobody paged.
        let aliceDeadline = byAlice.ackTimeoutAtMs
        try await Task.sleep(for: .milliseconds(max(0, Int(aliceDeadline - SystemWallClock().nowMs()) + 600)))
        #expect(SystemWallClock().nowMs() < bobAckedAt + 3_000)
        #expect(try await pipeline.db.scalar("SELECT count(*) FROM incidents WHERE id = $1 AND status = 'acknowledged'", [Int64(incident)]) == 1)
        #expect(pipeline.sink.requests.count == 2)

        // At Bob's ack + T (within a second): triggered again, both paged with reason ack_timeout.
        let again = await pipeline.sink.waitForRequests(4, timeout: .seconds(8))
        let repaged = again.dropFirst(2).compactMap(\.webhook)
        #expect(Set(repaged.map(\.user.name)) == ["Alice", "Bob"])
        #expect(repaged.allSatisfy { $0.reason == "ack_timeout" && $0.incident.status == "triggered" })
        let timeoutAt = try #require(try await pipeline.db.scalar(
            "SELECT at_ms FROM timeline_entries WHERE incident_id = $1 AND type = 'ack_timeout'", [Int64(incident)]))
        #expect((bobAckedAt + 3_000...bobAckedAt + 4_000).contains(timeoutAt), "fired \(timeoutAt - bobAckedAt - 3_000) ms after due")
        #expect(try await pipeline.db.scalar(
            "SELECT count(*) FROM acknowledgements WHERE incident_id = $1 AND closed_at_ms IS NOT NULL", [Int64(incident)]) == 2)

        // Nobody acknowledges: after level 1's 2 s delay, level 2 (Carol) is paged.
        let escalated = await pipeline.sink.waitForRequests(5, timeout: .seconds(8))
        let carolPage = try #require(escalated.dropFirst(4).first?.webhook)
        #expect(carolPage.user.id == carol)
        #expect(carolPage.reason == "escalated")
        let escalatedAt = try #require(try await pipeline.db.scalar(
            "SELECT at_ms FROM timeline_entries WHERE incident_id = $1 AND type = 'assign' AND details->>'level' = '2'", [Int64(incident)]))
        #expect((timeoutAt + 2_000...timeoutAt + 3_000).contains(escalatedAt))
        #expect(try await pipeline.db.scalar(
            "SELECT count(*) FROM incident_assignments WHERE incident_id = $1 AND user_id = $2", [Int64(incident), Int64(carol)]) == 1)

        // Resolve by Carol: later timers do nothing.
        let resolved: IncidentView = try await assignment.call(
            Assignment.Resolve, IncidentActionRequest(incidentID: incident, userID: carol, text: "rolled back"))
        #expect(resolved.status == .resolved)
        #expect(resolved.escalateAtMs == 0 && resolved.ackTimeoutAtMs == 0)
        do {
            let _: IncidentView = try await assignment.call(
                Assignment.Acknowledge, IncidentActionRequest(incidentID: incident, userID: alice))
            Issue.record("acknowledging a resolved incident must fail")
        } catch let error as RPCError {
            #expect(error.code == .failedPrecondition)
        }
        try await Task.sleep(for: .milliseconds(2_500))
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
    /// database: level 2 is paged exactly once, within about a second of their start.
    @Test func escalationSurvivesARestartAndFiresOnceAcrossTwoReplicas() async throws {
        let pipeline = try await Pipeline()
        let url = "\(pipeline.sink.url)/hooks"
        let service = try await pipeline.db.pool.transaction { connection in
            try Seed.service(
                connection, name: "Restart", routingKey: Seed.newRoutingKey(),
                users: ["Alice", "Bob"].map { Seed.User(name: $0, email: "\($0.lowercased())@example.com", webhookURL: url) },
                levels: [[0], [1]], escalationDelaySeconds: 2)
        }
        let ingest = pipeline.client(.ingest)
        let _: EventResult = try await ingest.call(Ingest.SendEvent, Pipeline.trigger(service.routingKey))
        #expect(await pipeline.sink.waitForRequests(1, timeout: .seconds(10)).compactMap { $0.webhook?.user.name } == ["Alice"])
        await pipeline.stop(.assignment)
        try await Task.sleep(for: .milliseconds(3_000))  // past the 2 s escalation while nobody runs timers
        #expect(pipeline.sink.requests.count == 1)

        // Two replicas: the pipeline's own, and a second one on another port.
        var second = pipeline.config
        second.assignmentListen = HostPort(host: "127.0.0.1", port: try await freePort())
        let replica = AssignmentService(config: second, pool: pipeline.db.pool, clock: SystemWallClock(), logger: pipeline.logger)
        let replicaTask = Task { try await replica.run() }
        let restartedAt = SystemWallClock().nowMs()
        try await pipeline.start(.assignment)

        let pages = await pipeline.sink.waitForRequests(2, timeout: .seconds(10))
        #expect(pages.dropFirst().compactMap { $0.webhook?.user.name } == ["Bob"])
        let escalatedAt = try #require(try await pipeline.db.scalar(
            "SELECT at_ms FROM timeline_entries WHERE type = 'assign' AND details->>'level' = '2'"))
        #expect(escalatedAt - restartedAt < 2_000, "fired \(escalatedAt - restartedAt) ms after the restart")
        try await Task.sleep(for: .milliseconds(1_500))
        #expect(pipeline.sink.requests.count == 2, "paged once, not once per replica")
        #expect(try await pipeline.db.scalar("SELECT count(*) FROM timeline_entries WHERE type = 'escalate'") == 1)
        replicaTask.cancel()
        _ = await replicaTask.result
        await ingest.close()
        await pipeline.shutdown()
    }
}
