import KlaxonDomain
import KlaxonTestSupport
import NotifierService
import Shared
import Testing

@Suite struct AdminTests {
    @Test func policiesSchedulesAndWhoIsOnCall() async throws {
        let pipeline = try await Pipeline()
        let seeded = try await pipeline.seed(users: ["Alice", "Bob", "Carol"])
        let (alice, bob, carol) = (UInt64(seeded.userIDs[0]), UInt64(seeded.userIDs[1]), UInt64(seeded.userIDs[2]))
        let admin = pipeline.client(.assignment)

        // An 11th target is refused, naming the level; so is a target that is both or neither.
        let eleven = PolicyMessage(name: "too many", levels: [
            PolicyLevelMessage(escalationDelaySeconds: 60, targets: [PolicyTargetMessage(userID: alice)]),
            PolicyLevelMessage(escalationDelaySeconds: 60, targets: Array(repeating: PolicyTargetMessage(userID: bob), count: 11)),
        ])
        let refused = await admin.failure(Admin.CreateEscalationPolicy, eleven)
        #expect(refused?.code == .invalidArgument)
        #expect(refused?.status.violations == [FieldViolation(field: "levels[1].targets", description: "level 2 must have 1–10 targets, got 11")])
        let both = PolicyMessage(name: "both", levels: [PolicyLevelMessage(escalationDelaySeconds: 60, targets: [PolicyTargetMessage(userID: alice, scheduleID: 1)])])
        #expect(await admin.failure(Admin.CreateEscalationPolicy, both)?.status.violations.map(\.field) == ["levels[0].targets[0]"])

        // A schedule: Bob and Carol rotate daily; an override puts Alice on for one hour.
        let start = Millis(1_800_000_000_000)
        let scheduleRequest = ScheduleMessage(
            name: "Primary", timeZone: "Europe/Berlin",
            layers: [LayerMessage(userIDs: [bob, carol], rotationVirtualStartMs: start, rotationTurnLengthSeconds: 86_400)],
            overrides: [OverrideMessage(userID: alice, startMs: start + 3_600_000, endMs: start + 7_200_000)])
        let schedule: ScheduleMessage = try await admin.call(Admin.CreateSchedule, scheduleRequest)
        #expect(schedule.id > 0)
        let fetched: ScheduleMessage = try await admin.call(Admin.GetSchedule, AdminIDRequest(id: schedule.id))
        #expect(fetched == schedule)
        func onCall(_ request: WhoIsOnCallRequest) async throws -> WhoIsOnCallReply {
            try await admin.call(Admin.WhoIsOnCall, request)
        }
        #expect(try await onCall(WhoIsOnCallRequest(scheduleID: schedule.id, atMs: start)).userIDs == [bob])
        #expect(try await onCall(WhoIsOnCallRequest(scheduleID: schedule.id, atMs: start + 3_600_000)).userIDs == [alice])
        #expect(try await onCall(WhoIsOnCallRequest(scheduleID: schedule.id, atMs: start + 86_400_000)).userIDs == [carol])
        let badZone = ScheduleMessage(name: "x", timeZone: "Mars/Base", layers: scheduleRequest.layers)
        #expect(await admin.failure(Admin.CreateSchedule, badZone)?.status.violations.map(\.field) == ["time_zone"])

        // A policy: level 1 Alice, level 2 the schedule.
        let policy: PolicyMessage = try await admin.call(Admin.CreateEscalationPolicy, PolicyMessage(name: "Payments", levels: [
            PolicyLevelMessage(escalationDelaySeconds: 300, targets: [PolicyTargetMessage(userID: alice)]),
            PolicyLevelMessage(escalationDelaySeconds: 600, targets: [PolicyTargetMessage(scheduleID: schedule.id)]),
        ], numLoops: 2))
        let got: PolicyMessage = try await admin.call(Admin.GetEscalationPolicy, AdminIDRequest(id: policy.id))
        #expect(got == policy)
        let levels = try await onCall(WhoIsOnCallRequest(policyID: policy.id, atMs: start + 86_400_000)).levels
        #expect(levels == [.init(level: 1, userIDs: [alice]), .init(level: 2, userIDs: [carol])])
        var renamed = policy
        renamed.name = "Payments (EU)"
        renamed.levels[0].escalationDelaySeconds = 120
        let _: PolicyMessage = try await admin.call(Admin.UpdateEscalationPolicy, renamed)
        #expect(try await admin.call(Admin.GetEscalationPolicy, AdminIDRequest(id: policy.id)) as PolicyMessage == renamed)
        let list: PolicyListMessage = try await admin.call(Admin.ListEscalationPolicies, Empty())
        #expect(list.policies.map(\.id).contains(policy.id))

        // In use: neither can be deleted.
        try await pipeline.db.pool.withConnection { connection in
            try connection.query("UPDATE services SET escalation_policy_id = $1 WHERE id = $2", [Int64(policy.id), seeded.serviceID])
        }
        #expect(await admin.failure(Admin.DeleteEscalationPolicy, AdminIDRequest(id: policy.id))?.code == .failedPrecondition)
        #expect(await admin.failure(Admin.DeleteSchedule, AdminIDRequest(id: schedule.id))?.code == .failedPrecondition)
        #expect(await admin.failure(Admin.GetEscalationPolicy, AdminIDRequest(id: 9_999))?.code == .notFound)
        await admin.close()
        await pipeline.shutdown()
    }

    /// An escalation level whose only target is a schedule pages whoever is on call.
    @Test func scheduleTargetPagesWhoeverIsOnCall() async throws {
        let pipeline = try await Pipeline(clock: ManualClock())
        let seeded = try await pipeline.seed(users: ["Alice", "Bob"])
        let bob = UInt64(seeded.userIDs[1])
        let admin = pipeline.client(.assignment)
        let schedule: ScheduleMessage = try await admin.call(Admin.CreateSchedule, ScheduleMessage(
            name: "Bob always", timeZone: "UTC", layers: [LayerMessage(userIDs: [bob], rotationVirtualStartMs: 0, rotationTurnLengthSeconds: 604_800)]))
        let policy: PolicyMessage = try await admin.call(Admin.CreateEscalationPolicy, PolicyMessage(name: "By schedule", levels: [
            PolicyLevelMessage(escalationDelaySeconds: 300, targets: [PolicyTargetMessage(scheduleID: schedule.id)]),
        ]))
        try await pipeline.db.pool.withConnection { connection in
            try connection.query("UPDATE services SET escalation_policy_id = $1 WHERE id = $2", [Int64(policy.id), seeded.serviceID])
        }
        let ingest = pipeline.client(.ingest)
        let _: EventResult = try await ingest.call(Ingest.SendEvent, Pipeline.trigger(seeded.routingKey))
        let pages = await pipeline.sink.waitForRequests(1, timeout: .seconds(10))
        #expect(pages.compactMap { $0.webhook?.user.name } == ["Bob"])
        await pipeline.letTimePass()
        #expect(pipeline.sink.requests.count == 1)
        await ingest.close()
        await admin.close()
        await pipeline.shutdown()
    }

    /// Reassigning to another policy restarts it at level 1 and the incident follows it.
    @Test func reassignToAnotherPolicy() async throws {
        let pipeline = try await Pipeline()
        let url = "\(pipeline.sink.url)/hooks"
        let seeded = try await pipeline.db.pool.transaction { connection in
            try Seed.service(
                connection, name: "Checkout", routingKey: Seed.newRoutingKey(),
                users: ["Alice", "Bob"].map { Seed.User(name: $0, email: "\($0.lowercased())@example.com", webhookURL: url) },
                levels: [[0]])
        }
        let (alice, bob) = (UInt64(seeded.userIDs[0]), UInt64(seeded.userIDs[1]))
        let assignment = pipeline.client(.assignment)
        let other: PolicyMessage = try await assignment.call(Admin.CreateEscalationPolicy, PolicyMessage(name: "Database team", levels: [
            PolicyLevelMessage(escalationDelaySeconds: 600, targets: [PolicyTargetMessage(userID: bob)]),
        ]))
        let ingest = pipeline.client(.ingest)
        let created: EventResult = try await ingest.call(Ingest.SendEvent, Pipeline.trigger(seeded.routingKey))
        #expect(await pipeline.sink.waitForRequests(1, timeout: .seconds(10)).compactMap { $0.webhook?.user.name } == ["Alice"])

        let view: IncidentView = try await assignment.call(
            Assignment.Reassign, IncidentActionRequest(incidentID: created.incidentID, userID: alice, policyID: other.id))
        #expect(view.assigneeIDs == [bob])
        #expect(view.level == 1)
        let pages = await pipeline.sink.waitForRequests(2, timeout: .seconds(10))
        #expect(pages.last?.webhook?.user.name == "Bob")
        #expect(pages.last?.webhook?.reason == "reassigned")
        #expect(try await pipeline.db.scalar("SELECT escalation_policy_id FROM incidents WHERE id = $1", [Int64(created.incidentID)]) == Int64(other.id))
        let missing = await assignment.failure(Assignment.Reassign, IncidentActionRequest(incidentID: created.incidentID, userID: alice, policyID: 9_999))
        #expect(missing?.status.violations.map(\.field) == ["policy_id"])
        await ingest.close()
        await assignment.close()
        await pipeline.shutdown()
    }
}
