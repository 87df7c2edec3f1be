import Foundation
import KlaxonDomain
import KlaxonTestSupport
import Shared
import Testing

/// Event rules per service (issue 27, point 5) end to end over both front doors (the binary
/// protocol and PagerDuty's Events API v2), set with `klaxon rules set`, dry-run with
/// `klaxon rules test`; and the YAML round trip of rules, heartbeats and maintenance windows.
@Suite struct EventRuleTests {
    static let rules = """
        event_rules:
          - name: test hosts
            conditions: [{field: source, op: "=~", value: "^test-"}]
            actions: {suppress: true}
          - name: database alerts
            conditions: [{field: custom_details.team, op: "=", value: db}]
            actions: {route: Databases, priority: P2, note: "routed from {{source}}"}
          - name: disk per host
            conditions: [{field: summary, op: "=~", value: "(?i)disk"}]
            actions: {dedup_key: "disk-{{source}}", severity: warning}
            continue: true
          - conditions: [{field: severity, op: "=", value: warning}]
            actions: {urgency: low}
          - name: stuck queues
            conditions: [{field: labels.alertname, op: "=", value: QueueStuck}]
            actions: {priority: P1}
        """

    static func event(
        _ key: String, summary: String, source: String, details: [String: String] = [:], action: EventAction = .trigger, dedup: String = ""
    ) -> Event {
        Event(routingKey: key, eventAction: action, dedupKey: dedup, payload: Payload(summary: summary, source: source, severity: .critical, customDetails: details))
    }

    static func http(_ key: String, summary: String, source: String, details: String = "{}", action: String = "trigger") -> String {
        """
        {"routing_key": "\(key)", "event_action": "\(action)",
         "payload": {"summary": "\(summary)", "source": "\(source)", "severity": "critical", "custom_details": \(details)}}
        """
    }

    @Test func rulesSuppressRouteSetFieldsAndDedupOverBothFrontDoors() async throws {
        let clock = ManualClock()
        let pipeline = try await Pipeline(clock: clock)
        let url = "\(pipeline.sink.url)/hooks"
        let (checkout, databases) = try await pipeline.db.pool.transaction { connection in
            (try Seed.service(connection, name: "Checkout", routingKey: Seed.newRoutingKey(),
                              users: [Seed.User(name: "Alice", email: "alice@example.com", webhookURL: url)], urgencyRule: .severity),
             try Seed.service(connection, name: "Databases", routingKey: Seed.newRoutingKey(),
                              users: [Seed.User(name: "Bob", email: "bob@example.com", webhookURL: url)]))
        }
        let ingest = pipeline.client(.ingest)
        // Ingest knows the service (cached) before the rules exist.
        let before: EventResult = try await ingest.call(Ingest.SendEvent, Self.event(checkout.routingKey, summary: "before", source: "test-0"))
        #expect(before.outcome == .created)

        let cli = try KlaxonCLI(address: "127.0.0.1:\(pipeline.config.assignmentListen.port)", token: pipeline.adminToken)
        let set = try await cli("rules", "set", "--service", "Checkout", "-f", try cli.write("rules.yaml", Self.rules))
        #expect(set.status == 0, "\(set.err)")
        #expect(set.lines.first == "service \(checkout.serviceID): 5 event rules (every Ingest applies them within 5 s)")
        #expect(set.lines.contains("2. database alerts: custom_details.team = db → priority P2, route to Databases, note \"routed from {{source}}\""), "\(set.out)")

        // The dry run: which rule, the event after it; nothing written.
        let incidents = try await pipeline.db.scalar("SELECT count(*) FROM incidents")
        let diskEvent = try cli.write("disk.json", Self.http(checkout.routingKey, summary: "Disk 91% on web-1", source: "web-1"))
        let tested = try await cli("rules", "test", "--service", "Checkout", diskEvent)
        #expect(tested.lines.contains("matched 3. disk per host: summary =~ (?i)disk → severity warning, dedup key disk-{{source}}, continue"), "\(tested.out)")
        #expect(tested.lines.contains("matched 4. severity = warning → urgency low") && tested.lines.contains("  dedup_key: disk-web-1"), "\(tested.out)")
        let suppressedTest = try await cli("rules", "test", "--service", "Checkout", try cli.write("t.json", Self.http("k", summary: "x", source: "test-9")))
        #expect(suppressedTest.out.contains("suppressed by rule 1"), "\(suppressedTest.out)")
        #expect(try await pipeline.db.scalar("SELECT count(*) FROM incidents") == incidents)

        // Every Ingest picks the change up within 5 s (its cache of the routing key).
        await pipeline.letTimePass(5_001)
        let port = pipeline.ingestHTTPPort

        // 1. Suppressed, on both doors: answered, kept in the audit trail, no incident.
        let binarySuppressed: EventResult = try await ingest.call(Ingest.SendEvent, Self.event(checkout.routingKey, summary: "canary check", source: "test-7"))
        #expect(binarySuppressed.outcome == .ignored && binarySuppressed.message.contains("suppressed by event rule 1 (test hosts)"), "\(binarySuppressed.message)")
        let httpSuppressed = try await PagerDutyHTTPTests.post(port, body: Self.http(checkout.routingKey, summary: "canary check", source: "test-8"))
        #expect(httpSuppressed.status == 202)
        #expect(try await pipeline.db.scalar("SELECT count(*) FROM incidents WHERE title = 'canary check'") == 0)
        // And through the Opsgenie door: the request's status (what Zabbix polls) says why no alert.
        let genie = ["Authorization": "GenieKey \(checkout.routingKey)", "Content-Type": "application/json"]
        let created = try await HeartbeatTests.ping(port, "/v2/alerts", body: #"{"message": "canary check", "source": "test-9", "alias": "c9"}"#, headers: genie)
        #expect(created.status == 202, "\(created.body)")
        let requestID = try #require((try? JSONSerialization.jsonObject(with: Data(created.body.utf8)) as? [String: Any])?["requestId"] as? String)
        let status = try await HeartbeatTests.ping(port, "/v2/alerts/requests/\(requestID)", headers: genie)
        #expect(status.status == 200 && status.body.contains(#""success":true"#) && status.body.contains("suppressed by event rule 1"), "\(status.body)")
        let audit = try await cli("service", "audit", "Checkout")
        #expect(audit.lines.filter { $0.contains("suppressed") && $0.contains("event rule 1 (test hosts)") }.count == 3, "\(audit.out)")

        // 2. A dedup key from a template: two events about web-1's disk, one per door, one incident;
        // severity set to warning, so low urgency (the rule after it, with continue).
        let disk1 = try await PagerDutyHTTPTests.post(port, body: Self.http(checkout.routingKey, summary: "Disk 91% on web-1", source: "web-1"))
        #expect(disk1.status == 202 && disk1.json["dedup_key"] as? String == "disk-web-1", "\(disk1.json)")
        let disk2: EventResult = try await ingest.call(Ingest.SendEvent, Self.event(checkout.routingKey, summary: "DISK 95% on web-1", source: "web-1"))
        #expect(disk2.outcome == .deduplicated && disk2.dedupKey == "disk-web-1")
        let diskRow = try await pipeline.db.pool.withConnection { connection in
            try connection.query("SELECT severity, urgency, service_id FROM incidents WHERE dedup_key = 'disk-web-1'")
        }
        #expect(diskRow.count == 1 && diskRow.string(0, "severity") == "warning" && diskRow.string(0, "urgency") == "low")
        let timeline: GetTimelineReply = try await pipeline.client(.assignment).call(Assignment.GetTimeline, GetIncidentRequest(incidentID: disk2.incidentID))
        #expect(timeline.entries.first { $0.type == "event_rule" }?.details["matched"]?.contains("3. disk per host") == true)
        // A resolve goes through the same rules: its dedup key becomes the template's.
        let resolved: EventResult = try await ingest.call(
            Ingest.SendEvent, Self.event(checkout.routingKey, summary: "Disk ok on web-1", source: "web-1", action: .resolve, dedup: "monitor-42"))
        #expect(resolved.outcome == .resolved && resolved.incidentID == disk2.incidentID)

        // 3. Routed to another service (its people paged), priority and a note, over HTTP.
        let routed = try await PagerDutyHTTPTests.post(
            port, body: Self.http(checkout.routingKey, summary: "Replication broken", source: "pg-3", details: #"{"team": "db", "lag_s": 40}"#))
        #expect(routed.status == 202)
        // Alice's page for the first event; the disk incident is low urgency (her rules page high only).
        let pages = await pipeline.sink.waitForRequests(2, timeout: .seconds(10))
        let bobPage = try #require(pages.compactMap(\.webhook).first { $0.incident.title == "Replication broken" })
        #expect(bobPage.user.name == "Bob" && bobPage.incident.service.id == UInt64(databases.serviceID))
        let routedRow = try await pipeline.db.pool.withConnection { connection in
            try connection.query("SELECT id, priority FROM incidents WHERE title = 'Replication broken'")
        }
        #expect(routedRow.string(0, "priority") == "P2")
        let routedTimeline: GetTimelineReply = try await pipeline.client(.assignment).call(
            Assignment.GetTimeline, GetIncidentRequest(incidentID: UInt64(routedRow.int64(0, "id")!)))
        #expect(routedTimeline.entries.contains { $0.type == "note" && $0.details["text"] == "routed from pg-3" })

        // Alertmanager's labels are fields too (its own webhook, the fourth door).
        let notification = AlertmanagerWebhookTests.notification(status: "firing", groupKey: "{}:{queue}", alerts: [("q1", "firing")])
        let posted = try await AlertmanagerWebhookTests.post("http://127.0.0.1:\(port)/alertmanager/\(checkout.routingKey)", notification)
        #expect(posted.status == 200, "\(posted.body)")
        #expect(try await pipeline.db.scalar("SELECT count(*) FROM incidents WHERE priority = 'P1' AND dedup_key LIKE 'alertmanager-%'") == 1)

        // Bad rules are refused, every problem named by its path, and nothing changes.
        let bad = try await cli("rules", "set", "--service", "Checkout", "-f", try cli.write("bad.yaml", """
            - conditions: [{field: severity, op: "~", value: x}]
              actions: {route: Nowhere, priority: P7}
            """))
        #expect(bad.status == 3, "\(bad.out)")
        for field in ["rules[0].conditions[0].op", "rules[0].actions.priority"] { #expect(bad.err.contains(field), "\(bad.err)") }
        let shown = try await cli("rules", "show", "--service", "Checkout")
        #expect(shown.lines.count == 5, "\(shown.out)")
        await ingest.close()
        await pipeline.shutdown()
    }

    /// `klaxon apply` takes rules, heartbeats and maintenance windows; `klaxon export` writes them
    /// back, and applying the export changes nothing. A weekly window across the March DST change
    /// keeps its local hour.
    @Test func yamlRoundTripsRulesHeartbeatsAndWindows() async throws {
        let pipeline = try await Pipeline(start: [.assignment])
        let cli = try KlaxonCLI(address: "127.0.0.1:\(pipeline.config.assignmentListen.port)", token: pipeline.adminToken)
        let document = """
            users:
              - name: Alice
                email: alice@example.com
            escalation_policies:
              - name: Ops
                levels:
                  - escalation_delay_seconds: 600
                    targets: [{user: alice@example.com}]
            services:
              - name: Checkout
                escalation_policy: Ops
                event_rules:
                  - name: staging is quiet
                    conditions: [{field: custom_details.env, op: "=", value: staging}]
                    actions: {suppress: true}
              - name: Batch
                escalation_policy: Ops
            heartbeats:
              - name: nightly-backup
                service: Batch
                cron: "0 3 * * *"
                time_zone: Europe/Paris
                grace_seconds: 1800
                start_timeout_seconds: 7200
              - name: queue-drain
                service: Batch
                period_seconds: 300
                grace_seconds: 60
            maintenance_windows:
              - description: Saturday deploys
                services: [Checkout, Batch]
                start: 2027-03-06T23:00:00-05:00
                end: 2027-03-07T01:00:00-05:00
                rrule: FREQ=WEEKLY;BYDAY=SA
                time_zone: America/New_York
                matchers: [{field: severity, op: "!=", value: critical}]
            """
        let file = try cli.write("monitors.yaml", document)
        let applied = try await cli("apply", "-f", file)
        #expect(applied.status == 0, "\(applied.err)")
        for line in ["+ heartbeat nightly-backup", "+ heartbeat queue-drain", "+ maintenance_window Saturday deploys"] {
            #expect(applied.lines.contains { $0.hasPrefix(line) }, "\(applied.out)")
        }
        #expect(applied.lines.contains("~ event_rules Checkout (1 rule)"), "\(applied.out)")
        #expect(try await cli("apply", "-f", file).out == "no changes: Klaxon already matches \(file)\n")
        let exported = try await cli("export")
        #expect(exported.out.contains("nightly-backup") && exported.out.contains("FREQ=WEEKLY;BYDAY=SA") && exported.out.contains("staging is quiet"), "\(exported.out)")
        let exportFile = try cli.write("export.yaml", exported.out)
        let again = try await cli("apply", "-f", exportFile)
        #expect(again.out == "no changes: Klaxon already matches \(exportFile)\n", "\(again.out)\(again.err)\n\(exported.out)")
        // The window's occurrences keep 23:00 in New York across 2027-03-14 (EST → EDT).
        let windows: MaintenanceList = try await pipeline.client(.assignment).call(Admin.ListMaintenance, ListMaintenanceRequest())
        let window = try #require(windows.windows.first)
        let rule = try Recurrence.parse(window.rrule).get()
        let occurrences = MaintenanceWindow(
            id: 1, startsAt: window.startsAtMs, endsAt: window.endsAtMs, recurrence: rule, timeZone: window.timeZone
        ).occurrences(from: window.startsAtMs, to: window.startsAtMs + 20 * 86_400_000).map { RFC3339.string(millis: $0.start) }
        #expect(occurrences == ["2027-03-07T04:00:00.000Z", "2027-03-14T04:00:00.000Z", "2027-03-21T03:00:00.000Z"], "\(occurrences)")
        // A changed heartbeat is a change; --prune deletes one the file does not name.
        let changed = try cli.write("changed.yaml", document.replacingOccurrences(of: "period_seconds: 300", with: "period_seconds: 600"))
        #expect(try await cli("apply", "-f", changed).lines.contains("~ heartbeat queue-drain (schedule)"))
        let pruned = try cli.write("pruned.yaml", document.components(separatedBy: "  - name: queue-drain")[0]
            + document.components(separatedBy: "grace_seconds: 60\n")[1])
        let prune = try await cli("apply", "-f", pruned, "--prune")
        #expect(prune.lines.contains("− heartbeat queue-drain"), "\(prune.out)\(prune.err)")
        await pipeline.shutdown()
    }
}
