import Foundation
import KlaxonDomain
import KlaxonTestSupport
import Shared
import Testing

/// The response wing's rules at its edges (issue 22, points 1 and 2), over real TCP, PostgreSQL
/// and a webhook sink.
@Suite struct ResponseRulesTests {
    /// A service "People" whose users have the given rule delays, each with their own sink path.
    func people(_ pipeline: Pipeline, _ users: [(String, [UInt32])]) async throws -> Seed.Service {
        let sink = pipeline.sink
        return try await pipeline.db.pool.transaction { connection in
            try Seed.service(
                connection, name: "People", routingKey: Seed.newRoutingKey(),
                users: users.map { Seed.User(name: $0.0, email: "\($0.0.lowercased())@example.com", webhookURL: "\(sink.url)/\($0.0.lowercased())", ruleDelaysSeconds: $0.1) })
        }
    }

    @Test func aResolvedMajorIncidentRefusesItsResponseAndCancelsPendingRequests() async throws {
        let pipeline = try await Pipeline()
        let service = try await people(pipeline, [("Alice", [0]), ("Bob", [0]), ("Carol", [0])])
        let (alice, bob, carol) = (UInt64(service.userIDs[0]), UInt64(service.userIDs[1]), UInt64(service.userIDs[2]))
        let admin = pipeline.client(.assignment)
        let major: IncidentInfo = try await admin.call(Assignment.DeclareMajor, DeclareMajorRequest(title: "Checkout down everywhere"))
        let ingest = pipeline.client(.ingest, token: nil)
        let child: EventResult = try await ingest.call(Ingest.SendEvent, Pipeline.trigger(service.routingKey, dedupKey: "checkout-eu"))
        let _: IncidentResponse = try await admin.call(Assignment.Subscribe, SubscribeRequest(incidentID: major.id, userIDs: [carol]))
        let _: IncidentResponse = try await admin.call(
            Assignment.RequestResponders, RequestRespondersRequest(incidentID: major.id, userIDs: [bob], message: "join", timeoutSeconds: 600))
        #expect(await pipeline.sink.waitFor(timeout: .seconds(10)) { $0.contains { $0.webhook?.reason == "responder_request" && $0.webhook?.user.name == "Bob" } })

        let _: IncidentView = try await admin.call(Assignment.Resolve, IncidentActionRequest(incidentID: major.id, userID: alice, text: "fixed"))
        let closed: IncidentResponse = try await admin.call(Assignment.GetResponse, GetIncidentRequest(incidentID: major.id))
        #expect(closed.requests.map(\.state) == ["cancelled"], "a pending request ends when the major incident resolves")
        let timeline: GetTimelineReply = try await admin.call(Assignment.GetTimeline, GetIncidentRequest(incidentID: major.id))
        #expect(timeline.entries.contains { $0.type == "responder_cancelled" && $0.details["user"] == String(bob) })

        // Every response command is refused with FAILED_PRECONDITION and pages nobody.
        let expected = "major incident \(major.id) is resolved: its response is closed"
        let refusals: [RPCError?] = [
            await admin.failure(Assignment.PostStatusUpdate, PostStatusUpdateRequest(incidentID: major.id, text: "all clear")),
            await admin.failure(Assignment.RequestResponders, RequestRespondersRequest(incidentID: major.id, userIDs: [alice])),
            await admin.failure(Assignment.AssignRole, AssignRoleRequest(incidentID: major.id, role: "commander", userID: alice)),
            await admin.failure(Assignment.Subscribe, SubscribeRequest(incidentID: major.id, userIDs: [alice])),
            await admin.failure(Assignment.LinkIncidents, LinkIncidentsRequest(majorIncidentID: major.id, incidentIDs: [child.incidentID])),
        ]
        for refusal in refusals {
            #expect(refusal?.code == .failedPrecondition && refusal?.message == expected, "\(String(describing: refusal))")
        }
        // Nothing was queued for Notifier by the refused calls, and no status update or second request exists.
        #expect(await eventually(timeout: .seconds(10)) { (try? await pipeline.db.scalar("SELECT count(*) FROM outbox")) == 0 })
        #expect(try await pipeline.db.scalar("SELECT count(*) FROM notifications WHERE reason = 'status_update'") == 0)
        #expect(try await pipeline.db.scalar("SELECT count(*) FROM notifications WHERE reason = 'responder_request'") == 1)
        #expect(try await pipeline.db.scalar("SELECT count(*) FROM incident_roles") == 0)
        #expect(try await pipeline.db.scalar("SELECT count(*) FROM status_updates") == 0)
        #expect(try await pipeline.db.scalar("SELECT count(*) FROM incidents WHERE major_incident_id IS NOT NULL") == 0)
        // The record stays readable.
        #expect(closed.subscriberIDs == [carol])
        await admin.close()
        await ingest.close()
        await pipeline.shutdown()
    }

    @Test func responderRemindersGoOutWhilePendingAndNeverYieldToStatusUpdates() async throws {
        let pipeline = try await Pipeline()
        // Dana: minute zero and a 3-second reminder; she is also a subscriber. Eve: the same rules; she declines at once.
        let service = try await people(pipeline, [("Dana", [0, 3]), ("Eve", [0, 3])])
        let (dana, eve) = (UInt64(service.userIDs[0]), UInt64(service.userIDs[1]))
        let admin = pipeline.client(.assignment)
        let major: IncidentInfo = try await admin.call(Assignment.DeclareMajor, DeclareMajorRequest(title: "Payments down"))
        let _: IncidentResponse = try await admin.call(Assignment.Subscribe, SubscribeRequest(incidentID: major.id, userIDs: [dana]))
        let _: IncidentResponse = try await admin.call(
            Assignment.RequestResponders, RequestRespondersRequest(incidentID: major.id, userIDs: [dana, eve], message: "join", timeoutSeconds: 60))
        let eveToken = try await Pipeline.issueToken(pipeline.db.pool, name: "eve", role: .responder, userID: Int64(eve))
        let asEve = pipeline.client(.assignment, token: eveToken)
        let _: IncidentResponse = try await asEve.call(Assignment.AnswerResponderRequest, ResponderAnswer(incidentID: major.id, join: false))
        // A status update to Dana, the subscriber, while her request is pending.
        let _: IncidentResponse = try await admin.call(Assignment.PostStatusUpdate, PostStatusUpdateRequest(incidentID: major.id, text: "Investigating"))

        // Dana's reminder goes out (she is no assignee, and the status update is another family).
        let reminded = await pipeline.sink.waitFor(timeout: .seconds(15)) { requests in
            requests.compactMap(\.webhook).filter { $0.user.name == "Dana" && $0.reason == "responder_request" }.count == 2
        }
        #expect(reminded, "Dana's responder reminder was not sent while her request was pending")
        let db = pipeline.db
        // Eve's reminder is skipped as declined; nothing of Dana's was superseded or skipped as reassigned.
        #expect(await eventually(timeout: .seconds(15)) {
            (try? await db.scalar("SELECT count(*) FROM notifications WHERE user_id = \(eve) AND status = 'pending'")) == 0
        })
        let skipped: GetTimelineReply = try await admin.call(Assignment.GetTimeline, GetIncidentRequest(incidentID: major.id))
        let skips = skipped.entries.filter { $0.type == "notify_skipped" }
        #expect(skips.contains { $0.details["user"] == String(eve) && $0.details["reason"] == "declined" }, "\(skips.map(\.details))")
        #expect(!skips.contains { $0.details["user"] == String(dana) && ["superseded", "reassigned"].contains($0.details["reason"] ?? "") },
                "\(skips.map(\.details))")
        await asEve.close()
        await admin.close()
        await pipeline.shutdown()
    }
}
