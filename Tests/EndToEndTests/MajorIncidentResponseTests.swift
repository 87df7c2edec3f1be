import Foundation
import KlaxonDomain
import KlaxonTestSupport
import Shared
import Testing

/// The first seed's story (issue 14), over real TCP, PostgreSQL and a webhook sink: a burst across
/// three services → one surge major incident running the response plan; its commander, subject-
/// matter expert and scribe are paged within 1 s of the declaration; one declines, one joins
/// through a signed chat command, one never answers; the commander posts two status updates (one
/// from chat), which reach the subscriber and the plan's chat channel with the bridge; the
/// response and the postmortem show all of it.
@Suite struct MajorIncidentResponseTests {
    @Test func surgeResponsePlanRespondersRolesAndStatusUpdates() async throws {
        let pipeline = try await Pipeline { config, _ in config.chatSigningSecret = ChatCommandTests.secret }
        let sink = pipeline.sink
        // Three services whose own on-call people have no rules (this is about the response).
        var services: [Seed.Service] = []
        for name in ["Checkout", "Search", "Payments"] {
            services.append(try await pipeline.db.pool.transaction { connection in
                try Seed.service(
                    connection, name: name, routingKey: Seed.newRoutingKey(),
                    users: [Seed.User(name: "\(name) on-call", email: "\(name.lowercased())@example.com", webhookURL: "\(sink.url)/quiet", ruleDelaysSeconds: [])])
            })
        }
        try await pipeline.db.pool.withConnection { try $0.query("UPDATE services SET events_per_minute = 0") }
        // The responders and the stakeholder, each with a minute-zero webhook rule.
        let people = try await pipeline.db.pool.transaction { connection in
            try Seed.service(
                connection, name: "People", routingKey: Seed.newRoutingKey(),
                users: ["Cora", "Sam", "Sid", "Stan"].map { Seed.User(name: $0, email: "\($0.lowercased())@example.com", webhookURL: "\(sink.url)/\($0.lowercased())") })
        }
        let (cora, sam, sid, stan) = (people.userIDs[0], people.userIDs[1], people.userIDs[2], people.userIDs[3])
        try await pipeline.db.pool.withConnection { try $0.query("UPDATE users SET chat_id = 'UCORA' WHERE id = $1", [cora]) }
        let chat = ChatApp(port: pipeline.assignmentHTTPPort, secret: ChatCommandTests.secret)
        let admin = pipeline.client(.assignment)
        let plan: ResponsePlan = try await admin.call(Admin.CreateResponsePlan, ResponsePlan(
            name: "Global outage",
            responders: [
                ResponsePlanResponder(userID: UInt64(cora), role: "commander"),
                ResponsePlanResponder(userID: UInt64(sam), role: "subject_matter_expert"),
                ResponsePlanResponder(userID: UInt64(sid), role: "scribe"),
            ],
            subscriberIDs: [UInt64(stan)], conferenceURL: "https://meet.example.com/global-outage", conferencePhone: "+1 555 0100",
            chatChannel: "#inc-global", message: "Global outage: join the bridge", requestTimeoutSeconds: 5,
            channelWebhooks: ["\(sink.url)/channel/inc-global"]))
        #expect(plan.responders.count == 3 && plan.requestTimeoutSeconds == 5)
        var settings: SurgeSettingsMessage = try await admin.call(Admin.GetSurgeSettings, Empty())
        settings.responsePlan = "Global outage"
        let stored: SurgeSettingsMessage = try await admin.call(Admin.UpdateSurgeSettings, settings)
        #expect(stored.responsePlan == "Global outage")

        // A config push on the first service just before the outage (PagerDuty's Change Events API).
        let change = try await PagerDutyHTTPTests.post(pipeline.ingestHTTPPort, "/v2/change/enqueue", body: """
            {"routing_key": "\(services[0].routingKey)", "payload": {"summary": "Config push eu-west v7", "source": "deployer"},
             "links": [{"href": "https://deploys.example/eu-west/7", "text": "deploy 7"}]}
            """)
        #expect(change.status == 202, "\(change.json)")

        // The burst.
        let ingest = pipeline.client(.ingest, token: nil)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, service) in services.enumerated() {
                group.addTask {
                    // 20 per service: past the default threshold (50, or 10 after a quiet hour) across 3 services.
                    for batch in stride(from: 0, to: 20, by: 10) {
                        let events = (batch..<batch + 10).map { Pipeline.trigger(service.routingKey, dedupKey: "eu-\(index)-\($0)", summary: "EU down \($0)") }
                        let _: SendEventsReply = try await ingest.call(Ingest.SendEvents, SendEventsRequest(events: events), timeout: .seconds(30))
                    }
                }
            }
            try await group.waitForAll()
        }
        let db = pipeline.db
        #expect(await eventually(timeout: .seconds(10)) { (try? await db.scalar("SELECT count(*) FROM incidents WHERE major")) == 1 })
        let majorID = UInt64(try #require(try await db.scalar("SELECT id FROM incidents WHERE major")))
        let declaredAt = try #require(try await db.scalar("SELECT created_at_ms FROM incidents WHERE major"))

        // The plan's three responders are paged at once (reason responder_request, the bridge and their role in the page).
        let paged = await sink.waitFor(timeout: .seconds(10)) { requests in
            Set(requests.compactMap { $0.webhook }.filter { $0.reason == "responder_request" }.map(\.user.name)) == ["Cora", "Sam", "Sid"]
        }
        #expect(paged, "the plan's responders were not all paged")
        // Their outcomes are written just after the sends (group commit).
        #expect(await eventually(timeout: .seconds(10)) {
            (try? await db.scalar("SELECT count(*) FROM notifications WHERE incident_id = \(majorID) AND reason = 'responder_request' AND status = 'sent'")) == 3
        })
        let sentAt = try await db.pool.withConnection { connection in
            let rows = try connection.query(
                "SELECT max(finished_at_ms) AS last FROM notifications WHERE incident_id = $1 AND reason = 'responder_request' AND status = 'sent'",
                [Int64(majorID)])
            return rows.int64(0, "last")
        }
        let last = try #require(sentAt)
        // The spec's 1 s. scripts/test runs this suite alone (KLAXON_TEST_ALONE=1), after the
        // parallel run, so the figure is the pipeline's and not two cores shared by every other
        // test (alone: 41–49 ms; beside the whole suite: 1–2 s, hence 3 s when not alone).
        let alone = ProcessInfo.processInfo.environment["KLAXON_TEST_ALONE"] == "1"
        #expect(last - declaredAt <= (alone ? 1_000 : 3_000), "the last responder was paged \(last - declaredAt) ms after the declaration")
        print("MajorIncidentResponseTests: the plan's three responders paged within \(last - declaredAt) ms of the surge's declaration")
        let coraPage = try #require(sink.requests.compactMap(\.webhook).first { $0.user.name == "Cora" && $0.reason == "responder_request" })
        #expect(coraPage.response?["conference_url"] == "https://meet.example.com/global-outage")
        #expect(coraPage.response?["requested_role"] == "commander")
        #expect(coraPage.response?["message"] == "Global outage: join the bridge")

        // Sam declines, Cora joins from chat with a signed `/klaxon join` (and so becomes commander), Sid never answers.
        let asCora = pipeline.client(.assignment, token: try await Pipeline.issueToken(db.pool, name: "cora", role: .responder, userID: cora))
        let asSam = pipeline.client(.assignment, token: try await Pipeline.issueToken(db.pool, name: "sam", role: .responder, userID: sam))
        let _: IncidentResponse = try await asSam.call(Assignment.AnswerResponderRequest, ResponderAnswer(incidentID: majorID, join: false))
        let joinedInChat = try await chat.command("join \(majorID)", user: "UCORA")
        #expect(joinedInChat.status == 200 && joinedInChat.inChannel && joinedInChat.text == "Cora joined incident \(majorID).", "\(joinedInChat.body)")
        let joined: IncidentResponse = try await admin.call(Assignment.GetResponse, GetIncidentRequest(incidentID: majorID))
        #expect(joined.roles.map { "\($0.role):\($0.userID)" } == ["commander:\(cora)"])
        // Roles and the bridge are on the incident itself, in get and in list.
        let shown: IncidentInfo = try await admin.call(Assignment.GetIncident, GetIncidentRequest(incidentID: majorID))
        #expect(shown.roles.map { "\($0.role):\($0.userID)" } == ["commander:\(cora)"] && shown.conferenceURL == "https://meet.example.com/global-outage"
                && shown.conferencePhone == "+1 555 0100")
        let listed: ListIncidentsReply = try await admin.call(Assignment.ListIncidents, ListIncidentsRequest(pageSize: 500))
        #expect(listed.incidents.first { $0.id == majorID }?.roles.map(\.userID) == [UInt64(cora)])
        // Sam may not answer for Cora.
        #expect(await asSam.failure(Assignment.AnswerResponderRequest, ResponderAnswer(incidentID: majorID, userID: UInt64(cora), join: false))?.code == .permissionDenied)

        // The commander posts two status updates: the subscriber gets both, with the bridge.
        let fromChat = try await chat.command("status \(majorID) Identified: a bad config push in eu-west", user: "UCORA")
        #expect(fromChat.inChannel, "\(fromChat.body)")
        let _: IncidentResponse = try await asCora.call(
            Assignment.PostStatusUpdate, PostStatusUpdateRequest(incidentID: majorID, text: "Mitigated: rolled back, watching"))
        let told = await sink.waitFor(timeout: .seconds(10)) { requests in
            requests.compactMap(\.webhook).filter { $0.user.name == "Stan" && $0.reason == "status_update" }.count == 2
        }
        #expect(told)
        let updates = sink.requests.compactMap(\.webhook).filter { $0.user.name == "Stan" && $0.reason == "status_update" }
        #expect(Set(updates.compactMap { $0.response?["status_update"] }) == ["Identified: a bad config push in eu-west", "Mitigated: rolled back, watching"])
        #expect(updates.allSatisfy { $0.response?["conference_url"] == "https://meet.example.com/global-outage" && $0.response?["role.commander"] == String(cora) })
        // The plan's chat channel gets both as Slack-compatible messages, with the bridge.
        #expect(await sink.waitFor(timeout: .seconds(10)) { $0.filter { $0.uri == "/channel/inc-global" }.count == 2 })
        let posts = sink.requests.filter { $0.uri == "/channel/inc-global" }.compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.body)) as? [String: Any])?["text"] as? String
        }
        #expect(posts.count == 2 && posts.allSatisfy { $0.contains("Bridge: https://meet.example.com/global-outage · +1 555 0100") }, "\(posts)")
        #expect(posts.contains { $0.contains("Status update: Identified: a bad config push in eu-west") })
        #expect(posts.contains { $0.contains("Status update: Mitigated: rolled back, watching") })

        // Sid's request times out (5 s): no answer.
        let timedOut = await eventually(timeout: .seconds(15)) {
            let response: IncidentResponse? = try? await admin.call(Assignment.GetResponse, GetIncidentRequest(incidentID: majorID))
            return response?.requests.first { $0.userID == UInt64(sid) }?.state == "no_answer"
        }
        #expect(timedOut, "Sid's request did not become no_answer")
        let response: IncidentResponse = try await admin.call(Assignment.GetResponse, GetIncidentRequest(incidentID: majorID))
        #expect(response.responsePlan == "Global outage" && response.conferencePhone == "+1 555 0100" && response.chatChannel == "#inc-global")
        #expect(Dictionary(uniqueKeysWithValues: response.requests.map { ($0.userID, $0.state) })
            == [UInt64(cora): "joined", UInt64(sam): "declined", UInt64(sid): "no_answer"])
        #expect(response.updates.map(\.text) == ["Identified: a bad config push in eu-west", "Mitigated: rolled back, watching"])
        #expect(response.subscriberIDs == [UInt64(stan)])
        #expect(response.channelWebhooks == ["http://127.0.0.1:\(URL(string: sink.url)!.port!)/…"], "channel webhooks are shown masked")
        let timeline: GetTimelineReply = try await admin.call(Assignment.GetTimeline, GetIncidentRequest(incidentID: majorID))
        let types = timeline.entries.map(\.type)
        for type in ["major_declared", "response_plan_applied", "responder_requested", "responder_declined", "responder_joined",
                     "role_assigned", "status_update", "responder_no_answer", "channel_posted"] {
            #expect(types.contains(type), "the timeline lacks \(type)")
        }
        // A second commander hands over: one commander at a time.
        let handed: IncidentResponse = try await asCora.call(Assignment.AssignRole, AssignRoleRequest(incidentID: majorID, role: "commander", userID: UInt64(sam)))
        #expect(handed.roles.filter { $0.role == "commander" }.map(\.userID) == [UInt64(sam)])
        let badRole = await asCora.failure(Assignment.AssignRole, AssignRoleRequest(incidentID: majorID, role: "captain", userID: UInt64(sam)))
        #expect(badRole?.code == .invalidArgument && badRole?.status.violations.first?.field == "role")

        // The postmortem names who responded and who did not, in order, with the pages and updates.
        let cli = try KlaxonCLI(address: "127.0.0.1:\(pipeline.config.assignmentListen.port)", token: pipeline.adminToken)
        let show = try await cli("incident", "show", "\(majorID)")
        #expect(show.out.contains("roles commander user \(sam)") && show.out.contains("bridge https://meet.example.com/global-outage · +1 555 0100"), "\(show.out)")
        let markdown = try await cli("incident", "postmortem", "\(majorID)")
        #expect(markdown.status == 0, "\(markdown.err)")
        let text = markdown.out
        #expect(text.hasPrefix("# Postmortem: #"))
        #expect(text.contains("| time until the responders joined | not all joined (1 of 3) |"))
        #expect(text.contains("| Cora (user \(cora)) | commander |") && text.contains("| joined |"))
        #expect(text.contains("| Sam (user \(sam)) | subject_matter_expert |") && text.contains("| declined |"))
        #expect(text.contains("| Sid (user \(sid)) | scribe |") && text.contains("| **did not respond** | timed out after 5 s |"))
        #expect(text.contains("Did not respond: Sid (user \(sid))."))
        #expect(text.contains("commander handed over from user \(cora) to user \(sam)"))
        let first = try #require(text.range(of: "Identified: a bad config push in eu-west")), second = try #require(text.range(of: "Mitigated: rolled back, watching"))
        #expect(first.lowerBound < second.lowerBound, "status updates in order")
        for who in ["Cora", "Sam", "Sid"] { #expect(text.contains("| \(who) (user ") && text.contains("| responder_request | webhook |")) }
        #expect(text.components(separatedBy: "| Stan (user \(stan)) | status_update | webhook |").count == 3, "two pages to Stan")
        #expect(text.contains("## Linked incidents") && text.contains("EU down"))
        // The change that came just before it, with its link.
        #expect(text.contains("## Changes before it") && text.contains("| deployer | Config push eu-west v7 ([deploy 7](https://deploys.example/eu-west/7)) |"), "\(text)")
        let json = try await cli("incident", "postmortem", "\(majorID)", "--format", "json")
        let record = try #require(try JSONSerialization.jsonObject(with: Data(json.out.utf8)) as? [String: Any], "\(json.out.prefix(300))")
        let silent = try #require(record["did_not_respond"] as? [[String: Any]])
        #expect(silent.map { $0["name"] as? String } == ["Sid"])
        #expect((record["linked_incidents"] as? [Any])?.count == 60)
        #expect((record["changes_before"] as? [[String: Any]])?.map { $0["summary"] as? String } == ["Config push eu-west v7"])
        let notMajor = try await cli("incident", "postmortem", "\(try #require(try await db.scalar("SELECT min(id) FROM incidents WHERE NOT major")))")
        #expect(notMajor.status == 3 && notMajor.err.contains("is not a major incident"))
        for client in [ingest, admin, asCora, asSam] { await client.close() }
        await pipeline.shutdown()
    }
}

extension HTTPSink {
    /// Polls the requests received until `condition` holds (or `timeout` passes).
    func waitFor(timeout: Duration, _ condition: @escaping ([Request]) -> Bool) async -> Bool {
        await eventually(timeout: timeout) { condition(self.requests) }
    }
}
