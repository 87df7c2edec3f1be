import Foundation
import KlaxonDomain
import KlaxonTestSupport
import Shared
import Testing

/// Priorities, major incidents, links and merges, surge settings (issue 14, points 1, 2 and 10 in
/// part), over the binary protocol with role checks, and through the `klaxon` CLI.
@Suite struct MajorIncidentTests {
    @Test func declareLinkMergeAndPriorityWithRoles() async throws {
        let pipeline = try await Pipeline()
        let service = try await pipeline.seed(users: ["Alice"])
        let ingest = pipeline.client(.ingest, token: nil)
        var ids: [UInt64] = []
        for key in ["db-1", "db-2", "db-3", "db-4"] {
            let result: EventResult = try await ingest.call(Ingest.SendEvent, Pipeline.trigger(service.routingKey, dedupKey: key, summary: "\(key) down"))
            ids.append(result.incidentID)
        }
        // A second alert on db-4: merging moves both alerts.
        let again: EventResult = try await ingest.call(Ingest.SendEvent, Pipeline.trigger(service.routingKey, dedupKey: "db-4", summary: "db-4 down"))
        #expect(again.outcome == .deduplicated)

        let responderToken = try await Pipeline.issueToken(pipeline.db.pool, name: "alice", role: .responder, userID: Int64(service.userIDs[0]))
        let observerToken = try await Pipeline.issueToken(pipeline.db.pool, name: "watcher", role: .observer, userID: nil)
        let asAlice = pipeline.client(.assignment, token: responderToken)
        let asObserver = pipeline.client(.assignment, token: observerToken)

        // Priority: P1–P5 or none; a responder may set it, an observer may not.
        let prioritized: IncidentInfo = try await asAlice.call(Assignment.SetPriority, SetPriorityRequest(incidentID: ids[1], priority: "P2"))
        #expect(prioritized.priority == "P2")
        let bad = await asAlice.failure(Assignment.SetPriority, SetPriorityRequest(incidentID: ids[1], priority: "P9"))
        #expect(bad?.code == .invalidArgument && bad?.status.violations.first?.field == "priority")
        #expect(await asObserver.failure(Assignment.SetPriority, SetPriorityRequest(incidentID: ids[1], priority: "P3"))?.code == .permissionDenied)
        #expect(await asAlice.failure(Assignment.SetPriority, SetPriorityRequest(incidentID: 999_999, priority: "P3"))?.code == .notFound)

        // Declare the first incident major (P1 by default), once.
        let major: IncidentInfo = try await asAlice.call(Assignment.DeclareMajor, DeclareMajorRequest(incidentID: ids[0]))
        #expect(major.major && major.priority == "P1" && major.childCount == 0)
        let twice = await asAlice.failure(Assignment.DeclareMajor, DeclareMajorRequest(incidentID: ids[0]))
        #expect(twice?.code == .failedPrecondition && twice?.message == "incident \(ids[0]) is already major")

        // Link two, merge one: children keep their timelines; a merged child's alerts move and it is resolved.
        let linked: IncidentInfo = try await asAlice.call(Assignment.LinkIncidents, LinkIncidentsRequest(majorIncidentID: ids[0], incidentIDs: [ids[1], ids[2]]))
        #expect(linked.childCount == 2)
        let merged: IncidentInfo = try await asAlice.call(
            Assignment.LinkIncidents, LinkIncidentsRequest(majorIncidentID: ids[0], incidentIDs: [ids[3]], merge: true))
        #expect(merged.childCount == 3)
        #expect(merged.alertCount == 3, "its own alert and db-4's two")
        let child: IncidentInfo = try await asAlice.call(Assignment.GetIncident, GetIncidentRequest(incidentID: ids[3]))
        #expect(child.majorIncidentID == ids[0] && child.state?.status == .resolved && child.alertCount == 0)
        let childTimeline: GetTimelineReply = try await asAlice.call(Assignment.GetTimeline, GetIncidentRequest(incidentID: ids[1]))
        #expect(childTimeline.entries.contains { $0.type == "linked" && $0.details["major_incident"] == String(ids[0]) })
        #expect(childTimeline.entries.first?.type == "trigger", "the child keeps its own timeline")

        // A second major incident, new, with a title: on Klaxon's own service, not listed.
        let bridge: IncidentInfo = try await asAlice.call(Assignment.DeclareMajor, DeclareMajorRequest(title: "Checkout down in every region", priority: "P2"))
        #expect(bridge.major && bridge.priority == "P2" && bridge.serviceName == "Major incidents")
        let taken = await asAlice.failure(Assignment.LinkIncidents, LinkIncidentsRequest(majorIncidentID: bridge.id, incidentIDs: [ids[1]]))
        #expect(taken?.code == .failedPrecondition && taken?.message == "incident \(ids[1]) is linked to major incident \(ids[0])")
        let notMajor = await asAlice.failure(Assignment.LinkIncidents, LinkIncidentsRequest(majorIncidentID: ids[1], incidentIDs: [ids[2]]))
        #expect(notMajor?.code == .failedPrecondition)
        let services: ServiceListMessage = try await pipeline.client(.assignment).call(Admin.ListServices, Empty())
        #expect(services.services.map(\.name) == ["Checkout"])

        // Surge settings: anyone may read them; only an admin changes them, within bounds.
        let defaults: SurgeSettingsMessage = try await asObserver.call(Admin.GetSurgeSettings, Empty())
        #expect(defaults == SurgeSettingsMessage(
            enabled: true, windowSeconds: 300, minIncidents: 50, rateFactor: 10, minServices: 3, quietPeriodSeconds: 600))
        var changed = defaults
        changed.minIncidents = 20
        #expect(await asAlice.failure(Admin.UpdateSurgeSettings, changed)?.code == .permissionDenied)
        let admin = pipeline.client(.assignment)
        let updated: SurgeSettingsMessage = try await admin.call(Admin.UpdateSurgeSettings, changed)
        #expect(updated.minIncidents == 20)
        var invalid = defaults
        invalid.windowSeconds = 5
        invalid.minServices = 0
        let refused = await admin.failure(Admin.UpdateSurgeSettings, invalid)
        #expect(refused?.code == .invalidArgument && refused?.status.violations.map(\.field) == ["window_seconds", "min_services"])
        let stored: SurgeSettingsMessage = try await admin.call(Admin.GetSurgeSettings, Empty())
        #expect(stored.minIncidents == 20 && stored.windowSeconds == 300, "a refused update writes nothing")

        for client in [ingest, asAlice, asObserver, admin] { await client.close() }
        await pipeline.shutdown()
    }

    @Test func theCLIDeclaresLinksAndSetsSurgeDetection() async throws {
        let pipeline = try await Pipeline()
        let service = try await pipeline.seed(users: ["Alice"])
        let ingest = pipeline.client(.ingest, token: nil)
        let first: EventResult = try await ingest.call(Ingest.SendEvent, Pipeline.trigger(service.routingKey, dedupKey: "a"))
        let second: EventResult = try await ingest.call(Ingest.SendEvent, Pipeline.trigger(service.routingKey, dedupKey: "b"))
        let cli = try KlaxonCLI(address: "127.0.0.1:\(pipeline.config.assignmentListen.port)", token: pipeline.adminToken)

        let declared = try await cli("incident", "declare", "--title", "EU outage")
        #expect(declared.status == 0, "\(declared.err)")
        let majorID = try #require(declared.out.split(separator: " ").dropFirst(2).first.flatMap { UInt64($0) }, "\(declared.out)")
        let number = try await Self.number(pipeline, majorID)
        #expect(declared.out == "major incident \(majorID) (#\(number), P1): EU outage\n")
        let linked = try await cli("incident", "link", "\(majorID)", "\(first.incidentID)", "\(second.incidentID)")
        #expect(linked.out == "linked 2 into major incident \(majorID) (2 linked, 0 alerts)\n", "\(linked.err)")
        let priority = try await cli("incident", "priority", "\(first.incidentID)", "p3")
        #expect(priority.out == "incident \(first.incidentID): priority P3\n")
        let list = try await cli("incident", "list")
        #expect(list.lines.contains { $0.contains("P1 MAJOR") && $0.contains("EU outage") })
        #expect(list.lines.contains { $0.hasPrefix("\(first.incidentID) ") && $0.contains("P3 → \(majorID)") })
        let usage = try await cli("incident", "declare")
        #expect(usage.status == 64)

        let set = try await cli("surge", "set", "--min-incidents", "20", "--window", "120")
        #expect(set.status == 0, "\(set.err)")
        #expect(set.out.contains("surge detection on: ≥ 20 new incidents and ≥ 10× the trailing hour's rate, in 120 s across ≥ 3 services"))
        let wrong = try await cli("surge", "set", "--window", "5")
        #expect(wrong.status == 3 && wrong.err.contains("window_seconds"))
        let shown = try await cli("surge", "show", "--json")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(shown.out.utf8)) as? [String: Any], "\(shown.out)")
        #expect(json["window_seconds"] as? Int == 120 && json["min_incidents"] as? Int == 20 && json["surging"] as? Bool == false)
        await ingest.close()
        await pipeline.shutdown()
    }

    /// The response from the CLI: a plan, a declaration running it, join / decline as each
    /// responder's own token, roles, a status update reaching the subscriber, the response shown.
    @Test func theCLIRunsAResponse() async throws {
        let pipeline = try await Pipeline()
        let people = try await pipeline.seed(users: ["Cora", "Sam", "Stan"])
        let (cora, sam, stan) = (people.userIDs[0], people.userIDs[1], people.userIDs[2])
        let address = "127.0.0.1:\(pipeline.config.assignmentListen.port)"
        let cli = try KlaxonCLI(address: address, token: pipeline.adminToken)
        let created = try await cli(
            "plan", "create", "--name", "Checkout down", "--responder", "user:\(cora):commander", "--responder", "user:\(sam):scribe",
            "--subscriber", "\(stan)", "--bridge", "https://meet.example.com/checkout", "--phone", "+1 555 0101", "--timeout", "600")
        #expect(created.status == 0 && created.out.hasSuffix("\"Checkout down\": 2 responders, 1 subscriber, 0 channels\n"), "\(created.out)\(created.err)")
        let plans = try await cli("plan", "list")
        #expect(plans.lines.contains { $0.contains("Checkout down") && $0.contains("user:\(cora):commander user:\(sam):scribe") && $0.contains("600s") })
        #expect(try await cli("plan", "create", "--name", "x", "--responder", "team:1").status == 64)

        let declared = try await cli("incident", "declare", "--title", "Checkout down everywhere", "--plan", "Checkout down")
        #expect(declared.status == 0, "\(declared.err)")
        let majorID = try #require(declared.out.split(separator: " ").dropFirst(2).first.map(String.init))
        // Both responders are paged with reason responder_request.
        let paged = await pipeline.sink.waitFor(timeout: .seconds(10)) { requests in
            requests.compactMap(\.webhook).filter { $0.reason == "responder_request" }.count == 2
        }
        #expect(paged)

        let coraToken = try #require(try await cli("token", "create", "--name", "cora", "--role", "responder", "--user", "\(cora)").lines.last)
        let samToken = try #require(try await cli("token", "create", "--name", "sam", "--role", "responder", "--user", "\(sam)").lines.last)
        let asCora = try KlaxonCLI(address: address, token: coraToken)
        let asSam = try KlaxonCLI(address: address, token: samToken)
        let joined = try await asCora("incident", "join", majorID)
        #expect(joined.status == 0 && joined.out.contains("roles: commander user \(cora)") && joined.out.contains("user \(cora) as commander: joined"), "\(joined.out)\(joined.err)")
        let declined = try await asSam("incident", "decline", majorID)
        #expect(declined.out.contains("user \(sam) as scribe: declined"))
        let role = try await asCora("incident", "role", majorID, "scribe", "\(stan)")
        #expect(role.out.contains("scribe user \(stan)"), "\(role.out)\(role.err)")
        let status = try await asCora("incident", "status", majorID, "Payments restored; watching")
        #expect(status.status == 0 && status.out.contains("Payments restored; watching"))
        let told = await pipeline.sink.waitFor(timeout: .seconds(10)) { requests in
            requests.compactMap(\.webhook).contains { $0.reason == "status_update" && $0.user.name == "Stan" }
        }
        #expect(told, "the subscriber was not told")
        let shown = try await cli("incident", "response", majorID)
        #expect(shown.out.contains("plan Checkout down") && shown.out.contains("bridge https://meet.example.com/checkout, +1 555 0101")
            && shown.out.contains("subscribers: \(stan)"), "\(shown.out)")
        let notMajor = try await cli("incident", "response", "999999")
        #expect(notMajor.status == 3)
        await pipeline.shutdown()
    }

    /// Surge detection's settings in the YAML file (issue 14, point 2: "settings by API and
    /// YAML"): a field given replaces the current one, with a `~ surge` plan line; the plan must
    /// exist; export writes them and re-applies as no change.
    @Test func surgeSettingsAsCode() async throws {
        let pipeline = try await Pipeline()
        let cora = try await pipeline.seed(users: ["Cora"]).userIDs[0]
        let cli = try KlaxonCLI(address: "127.0.0.1:\(pipeline.config.assignmentListen.port)", token: pipeline.adminToken)
        let missingPlan = try cli.write("surge.yaml", "surge:\n  min_incidents: 100\n  response_plan: Global outage\n")
        let refused = try await cli("apply", "-f", missingPlan)
        #expect(refused.status == 3 && refused.err.contains("surge.yaml:3: surge.response_plan: response plan \"Global outage\" does not exist"), "\(refused.err)")
        #expect(try await cli("plan", "create", "--name", "Global outage", "--responder", "user:\(cora):commander").status == 0)
        let applied = try await cli("apply", "-f", missingPlan)
        #expect(applied.lines.contains("~ surge surge detection (min_incidents, response_plan)"), "\(applied.out)\(applied.err)")
        let settings: SurgeSettingsMessage = try await pipeline.client(.assignment).call(Admin.GetSurgeSettings, Empty())
        #expect(settings.minIncidents == 100 && settings.responsePlan == "Global outage" && settings.windowSeconds == 300)
        #expect(try await cli("apply", "-f", missingPlan).out.hasPrefix("no changes"))
        let bad = try cli.write("bad.yaml", "surge:\n  enabled: maybe\n  window_seconds: 5\n  colour: red\n")
        let invalid = try await cli("apply", "-f", bad)
        #expect(invalid.status == 3 && invalid.err.contains("surge.enabled: must be true or false") && invalid.err.contains("surge.colour: unknown field"), "\(invalid.err)")
        let exported = try await cli("export")
        #expect(exported.out.contains("surge:\n  enabled: true\n  window_seconds: 300\n  min_incidents: 100\n  rate_factor: 10\n  min_services: 3\n  quiet_period_seconds: 600\n  response_plan: Global outage\n"), "\(exported.out)")
        let file = try cli.write("export.yaml", exported.out)
        let again = try await cli("apply", "-f", file)
        #expect(again.out.hasPrefix("no changes"), "\(again.out)\(again.err)")
        let off = try cli.write("off.yaml", "surge:\n  enabled: false\n")
        #expect(try await cli("apply", "-f", off).lines.contains("~ surge surge detection (enabled)"))
        await pipeline.shutdown()
    }

    /// Response plans and chat ids in the YAML file (issue 14, point 3 as code): apply creates
    /// them (responders by email, schedule or policy name, with roles; subscribers by email;
    /// channel webhooks), again is no change, a changed bridge is one `~` line, export → apply is no
    /// change, errors name their line, `--prune` deletes a plan the document no longer names.
    @Test func responsePlansAsCode() async throws {
        let pipeline = try await Pipeline(start: [.assignment])
        let cli = try KlaxonCLI(address: "127.0.0.1:\(pipeline.config.assignmentListen.port)", token: pipeline.adminToken)
        let base = """
            users:
              - name: Cora
                email: cora@example.com
                chat_id: UCORA
              - name: Sam
                email: sam@example.com
              - name: Stan
                email: stan@example.com
                role: observer
            escalation_policies:
              - name: Platform
                levels:
                  - escalation_delay_seconds: 300
                    targets:
                      - user: sam@example.com
            services:
              - name: Checkout
                escalation_policy: Platform
                routing_keys:
                  - name: main
            response_plans:
              - name: Global outage
                message: Join the bridge
                conference_url: https://meet.example.com/global
                conference_phone: +1 555 0100
                chat_channel: "#inc-global"
                request_timeout_seconds: 120
                responders:
                  - user: cora@example.com
                    role: commander
                  - escalation_policy: Platform
                    role: subject_matter_expert
                subscribers:
                  - stan@example.com
                channel_webhooks:
                  - https://hooks.example.com/services/T0/B0/secret

            """
        let file = try cli.write("plans.yaml", base)
        let first = try await cli("apply", "-f", file)
        #expect(first.status == 0 && first.lines.contains("+ response plan Global outage (2 responders)"), "\(first.out)\(first.err)")
        #expect(try await cli("apply", "-f", file).out.hasPrefix("no changes"))
        let plans: ResponsePlanList = try await pipeline.client(.assignment).call(Admin.ListResponsePlans, Empty())
        let plan = try #require(plans.plans.first)
        #expect(plan.responders.map(\.role) == ["commander", "subject_matter_expert"] && plan.responders[1].policyID != 0)
        #expect(plan.subscriberIDs.count == 1 && plan.requestTimeoutSeconds == 120 && plan.chatChannel == "#inc-global")
        #expect(plan.channelWebhooks == ["https://hooks.example.com/…"], "listed masked")
        let user: UserListMessage = try await pipeline.client(.assignment).call(People.ListUsers, Empty())
        #expect(user.users.first { $0.name == "Cora" }?.chatID == "UCORA")

        let moved = try cli.write("moved.yaml", base.replacingOccurrences(of: "meet.example.com/global", with: "meet.example.com/global-2"))
        #expect(try await cli("apply", "-f", moved).lines.contains("~ response plan Global outage (bridge)"))
        let exported = try await cli("export")
        #expect(exported.out.contains("chat_id: UCORA") && exported.out.contains("response_plans:")
                && exported.out.contains("https://hooks.example.com/services/T0/B0/secret"), "\(exported.out)")
        let again = try await cli("apply", "-f", try cli.write("export.yaml", exported.out))
        #expect(again.out.hasPrefix("no changes"), "\(again.out)\(again.err)")

        let badRole = try cli.write("bad.yaml", base.replacingOccurrences(of: "role: commander", with: "role: captain"))
        let refused = try await cli("apply", "-f", badRole)
        #expect(refused.status == 3 && refused.err.contains("bad.yaml:30: response_plans[0].responders[0].role: must be commander, deputy"), "\(refused.err)")
        let unknownUser = try cli.write("unknown.yaml", base.replacingOccurrences(of: "  - stan@example.com", with: "  - nobody@example.com"))
        let missing = try await cli("apply", "-f", unknownUser)
        #expect(missing.status == 3 && missing.err.contains("response_plans[0].subscribers[0]: user \"nobody@example.com\" is neither in the document nor in Klaxon"),
                "\(missing.err)")
        let badHook = try cli.write("hook.yaml", base.replacingOccurrences(of: "https://hooks.example.com/services/T0/B0/secret", with: "ftp://hooks"))
        #expect(try await cli("apply", "-f", badHook).err.contains("response_plans[0].channel_webhooks[0]: must be an http or https URL"))

        let without = try cli.write("without.yaml", String(base[..<base.range(of: "response_plans:")!.lowerBound]))
        #expect(try await cli("apply", "-f", without).out.hasPrefix("no changes"), "not named is kept without --prune")
        let pruned = try await cli("apply", "-f", without, "--prune")
        #expect(pruned.lines.contains("− response plan Global outage"), "\(pruned.out)\(pruned.err)")
        await pipeline.shutdown()
    }

    static func number(_ pipeline: Pipeline, _ id: UInt64) async throws -> UInt64 {
        UInt64(try #require(try await pipeline.db.scalar("SELECT number FROM incidents WHERE id = \(id)")))
    }
}
