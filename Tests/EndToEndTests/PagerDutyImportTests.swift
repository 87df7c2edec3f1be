import Foundation
import KlaxonTestSupport
import Shared
import Testing

/// `klaxon import pagerduty` (issue 28, points 1, 3, 4) against a local server that answers as
/// PagerDuty's REST API does (shapes from its public reference; two items a page, so every list
/// is read across pages), with fixtures — the final schedule included — computed here in Python
/// with zoneinfo, independently of Klaxon's schedule code.
@Suite struct PagerDutyImportTests {
    static let server = #"""
    import json, sys, datetime as dt
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import urlparse, parse_qs
    from zoneinfo import ZoneInfo

    port_file, token = sys.argv[1], sys.argv[2]
    NY = ZoneInfo("America/New_York")
    UTC = dt.timezone.utc
    def iso(t): return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    def ref(kind, id, summary=""): return {"id": id, "type": kind, "summary": summary}

    users = [
        {"id": "PALICE1", "type": "user", "name": "Alice", "email": "alice@example.com", "time_zone": "America/New_York", "role": "admin",
         "contact_methods": [
            {"id": "PCM1", "type": "email_contact_method", "label": "Work", "address": "alice@example.com"},
            {"id": "PCM2", "type": "phone_contact_method", "label": "Mobile", "country_code": 1, "address": "555-555-0100"},
            {"id": "PCM3", "type": "push_notification_contact_method", "label": "Pixel", "address": "device-1"}],
         "notification_rules": [
            {"id": "PNR1", "type": "assignment_notification_rule", "start_delay_in_minutes": 0, "urgency": "high", "contact_method": ref("email_contact_method_reference", "PCM1")},
            {"id": "PNR2", "type": "assignment_notification_rule", "start_delay_in_minutes": 4, "urgency": "high", "contact_method": ref("phone_contact_method_reference", "PCM2")},
            {"id": "PNR3", "type": "assignment_notification_rule", "start_delay_in_minutes": 0, "urgency": "high", "contact_method": ref("push_notification_contact_method_reference", "PCM3")},
            {"id": "PNR4", "type": "assignment_notification_rule", "start_delay_in_minutes": 10, "urgency": "low", "contact_method": ref("email_contact_method_reference", "PCM1")}]},
        {"id": "PBOB001", "type": "user", "name": "Bob", "email": "bob@example.com", "time_zone": "America/New_York", "role": "user",
         "contact_methods": [{"id": "PCM4", "type": "sms_contact_method", "label": "Mobile", "country_code": 44, "address": "7700900123"}],
         "notification_rules": [{"id": "PNR5", "type": "assignment_notification_rule", "start_delay_in_minutes": 0, "urgency": "high", "contact_method": ref("sms_contact_method_reference", "PCM4")}]},
        {"id": "PCAROL1", "type": "user", "name": "Carol", "email": "carol@example.com", "time_zone": "Europe/London", "role": "limited_user",
         "contact_methods": [], "notification_rules": []},
    ]
    since = dt.datetime(2027, 10, 1, tzinfo=UTC)
    until = since + dt.timedelta(days=90)
    rotation = ["PALICE1", "PBOB001", "PCAROL1"]
    start_week = dt.date(2027, 10, 4)  # a Monday: Alice's first week, handoff Mondays 09:00 New York
    overrides = [
        (dt.datetime(2027, 10, 13, 12, tzinfo=NY), dt.datetime(2027, 10, 13, 15, tzinfo=NY), "PCAROL1"),
        (dt.datetime(2027, 11, 9, 9, tzinfo=NY), dt.datetime(2027, 11, 9, 17, tzinfo=NY), "PALICE1"),
    ]
    # PagerDuty's final schedule: weekdays 09:00–17:00 New York (EDT, then EST from 2027-11-07), the
    # week's user, overrides on top.
    entries = []
    day = since.astimezone(NY).date()
    while day <= until.astimezone(NY).date():
        if day.weekday() < 5:
            start = dt.datetime(day.year, day.month, day.day, 9, tzinfo=NY)
            end = dt.datetime(day.year, day.month, day.day, 17, tzinfo=NY)
            who = rotation[((day - start_week).days // 7) % 3]
            pieces = [(start, end, who)]
            for o_start, o_end, o_who in overrides:
                cut = []
                for p_start, p_end, p_who in pieces:
                    if o_end <= p_start or o_start >= p_end: cut.append((p_start, p_end, p_who)); continue
                    if p_start < o_start: cut.append((p_start, o_start, p_who))
                    cut.append((max(p_start, o_start), min(p_end, o_end), o_who))
                    if o_end < p_end: cut.append((o_end, p_end, p_who))
                pieces = cut
            for p_start, p_end, p_who in pieces:
                if p_end > since and p_start < until:
                    entries.append({"start": iso(max(p_start, since)), "end": iso(min(p_end, until)), "user": ref("user_reference", p_who)})
        day += dt.timedelta(days=1)
    restrictions = [{"type": "weekly_restriction", "start_time_of_day": "09:00:00", "duration_seconds": 28800, "start_day_of_week": d} for d in range(1, 6)]
    schedules = [
        {"id": "PSCHED1", "type": "schedule", "name": "Primary", "time_zone": "America/New_York",
         "schedule_layers": [{"id": "PL1", "name": "Layer 1", "start": "2027-09-01T00:00:00-04:00", "end": None,
                              "rotation_virtual_start": "2027-10-04T09:00:00-04:00", "rotation_turn_length_seconds": 604800,
                              "users": [{"user": ref("user_reference", u)} for u in rotation], "restrictions": restrictions}],
         "final_schedule": {"name": "Final Schedule", "rendered_schedule_entries": entries}},
        {"id": "PSCHED2", "type": "schedule", "name": "Secondary", "time_zone": "UTC",
         "schedule_layers": [{"id": "PL2", "name": "Layer 1", "start": "2027-09-01T00:00:00Z", "end": None,
                              "rotation_virtual_start": "2027-09-01T00:00:00Z", "rotation_turn_length_seconds": 86400,
                              "users": [{"user": ref("user_reference", "PGONE01")}], "restrictions": []}],
         "final_schedule": {"name": "Final Schedule", "rendered_schedule_entries": []}},
    ]
    # A shift-based (v3) schedule in London: weekdays 09:00–17:00 rotating weekly between Alice and
    # Bob (5 shifts each), Saturdays for Carol and Alice together, and two events Klaxon cannot express.
    def member(u): return {"type": "user_member", "user_id": u}
    schedules_v3 = [
        {"id": "PV3SCH1", "type": "schedule", "name": "Follow the sun", "time_zone": "Europe/London", "rotations": [
            {"id": "PR1", "events": [
                {"id": "PE1", "name": "Weekdays", "start_time": "2027-10-04T08:00:00Z", "end_time": "2027-10-04T16:00:00Z",
                 "effective_since": "2027-10-04T08:00:00Z", "effective_until": None, "recurrence": ["RRULE:FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR"],
                 "assignment_strategy": {"type": "rotating_member_assignment_strategy", "shifts_per_member": 5,
                                         "members": [member("PALICE1"), member("PBOB001")]}}]},
            {"id": "PR2", "events": [
                {"id": "PE2", "name": "Saturdays", "start_time": "2027-10-08T23:00:00Z", "end_time": "2027-10-09T23:00:00Z",
                 "effective_since": "2027-10-08T23:00:00Z", "effective_until": "2028-06-01T00:00:00Z", "recurrence": ["RRULE:FREQ=WEEKLY;BYDAY=SA"],
                 "assignment_strategy": {"type": "every_member_assignment_strategy", "members": [member("PCAROL1"), member("PALICE1")]}},
                {"id": "PE3", "name": "Monthly review", "start_time": "2027-10-01T08:00:00Z", "end_time": "2027-10-01T09:00:00Z",
                 "effective_since": "2027-10-01T08:00:00Z", "recurrence": ["RRULE:FREQ=MONTHLY;BYMONTHDAY=1"],
                 "assignment_strategy": {"type": "rotating_member_assignment_strategy", "shifts_per_member": 1, "members": [member("PBOB001")]}},
                {"id": "PE4", "name": "Mondays and Wednesdays", "start_time": "2027-10-04T18:00:00Z", "end_time": "2027-10-04T22:00:00Z",
                 "effective_since": "2027-10-04T18:00:00Z", "recurrence": ["RRULE:FREQ=WEEKLY;BYDAY=MO,WE"],
                 "assignment_strategy": {"type": "rotating_member_assignment_strategy", "shifts_per_member": 1,
                                         "members": [member("PALICE1"), member("PBOB001")]}}]}]},
    ]
    schedule_overrides = {"PSCHED1": [{"id": "PO%d" % i, "start": iso(s), "end": iso(e), "user": ref("user_reference", w)} for i, (s, e, w) in enumerate(overrides)], "PSCHED2": []}
    policies = [
        {"id": "PEP1", "type": "escalation_policy", "name": "Ops", "num_loops": 2, "escalation_rules": [
            {"id": "PR1", "escalation_delay_in_minutes": 4, "targets": [ref("schedule_reference", "PSCHED1")]},
            {"id": "PR2", "escalation_delay_in_minutes": 30, "targets": [ref("user_reference", "PBOB001"), ref("schedule_reference", "PV3SCH1")]},
            {"id": "PR3", "escalation_delay_in_minutes": 10, "targets": [ref("schedule_reference", "PSCHED2"), ref("user_reference", "PCAROL1")]}]},
    ]
    services = [
        {"id": "PSVC1", "type": "service", "name": "Checkout", "escalation_policy": ref("escalation_policy_reference", "PEP1"),
         "acknowledgement_timeout": 1800, "auto_resolve_timeout": None,
         "incident_urgency_rule": {"type": "constant", "urgency": "high"},
         "integrations": [
            {"id": "PI1", "type": "events_api_v2_inbound_integration", "name": "Prometheus", "integration_key": sys.argv[3]},
            {"id": "PI2", "type": "generic_email_inbound_integration", "name": "Email", "integration_email": "checkout@acme.pagerduty.com"}]},
        {"id": "PSVC2", "type": "service", "name": "Billing", "escalation_policy": ref("escalation_policy_reference", "PEP1"),
         "acknowledgement_timeout": None, "auto_resolve_timeout": 14400,
         "incident_urgency_rule": {"type": "use_support_hours", "during_support_hours": {"type": "constant", "urgency": "high"},
                                   "outside_support_hours": {"type": "constant", "urgency": "low"}}, "integrations": []},
    ]
    lists = {"users": users, "schedules": [{"id": s["id"], "type": "schedule", "name": s["name"]} for s in schedules],
             "escalation_policies": policies, "services": services}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args): pass
        def answer(self, code, body):
            data = json.dumps(body).encode()
            self.send_response(code); self.send_header("Content-Type", "application/json"); self.send_header("Content-Length", str(len(data)))
            self.end_headers(); self.wfile.write(data)
        def do_GET(self):
            if self.headers.get("Authorization") != "Token token=" + token:
                return self.answer(401, {"error": {"message": "Unauthorized", "code": 2006}})
            url = urlparse(self.path); query = parse_qs(url.query); parts = url.path.strip("/").split("/")
            if parts[:2] == ["v3", "schedules"]:
                if self.headers.get("X-Early-Access") != "flexible-schedules-early-access":
                    return self.answer(403, {"error": {"message": "Early access required", "code": 2010}})
                if len(parts) == 2:
                    offset = int(query.get("offset", ["0"])[0]); limit = min(int(query.get("limit", ["25"])[0]), 2)
                    items = [{"id": x["id"], "name": x["name"]} for x in schedules_v3]
                    return self.answer(200, {"schedules": items[offset:offset + limit], "limit": limit, "offset": offset, "more": offset + limit < len(items)})
                return self.answer(200, {"schedule": [x for x in schedules_v3 if x["id"] == parts[2]][0]})
            if len(parts) == 1 and parts[0] in lists:
                offset = int(query.get("offset", ["0"])[0]); limit = min(int(query.get("limit", ["25"])[0]), 2)
                items = lists[parts[0]]
                return self.answer(200, {parts[0]: items[offset:offset + limit], "limit": limit, "offset": offset, "more": offset + limit < len(items), "total": None})
            if len(parts) >= 2 and parts[0] == "schedules":
                found = [s for s in schedules if s["id"] == parts[1]]
                if not found: return self.answer(404, {"error": {"message": "Not Found", "code": 2100}})
                if len(parts) == 3 and parts[2] == "overrides": return self.answer(200, {"overrides": schedule_overrides[parts[1]]})
                return self.answer(200, {"schedule": found[0]})
            self.answer(404, {"error": {"message": "Not Found", "code": 2100}})

    # FixtureServer.start appends the serving (port file, exit on stdin close).
    """#

    @Test func importPlanApplyAndImportAgain() async throws {
        let pipeline = try await Pipeline()
        let cli = try KlaxonCLI(address: "127.0.0.1:\(pipeline.config.assignmentListen.port)", token: pipeline.adminToken)
        let folder = cli.folder
        let integrationKey = "R0ut1ngKeyFromPagerDuty000000042"
        let server = try await FixtureServer.start(cli, name: "pagerduty", script: Self.server, arguments: ["s3cret-token", integrationKey])
        defer { server.stop() }
        let api = server.url
        let team = folder.appendingPathComponent("team.yaml").path
        let saved = folder.appendingPathComponent("saved").path

        // A wrong token is PagerDuty's 401: exit 5, nothing written.
        let refused = try await cli("import", "pagerduty", "--api-url", api, "--token", "wrong", "-o", team)
        #expect(refused.status == 5 && refused.err.contains("PagerDuty answered 401"), "\(refused.err)")

        // Import with the plan: 90 days from 2027-10-01 across the November DST change, same as PagerDuty's.
        let imported = try await cli(
            "import", "pagerduty", "--api-url", api, "--token", "s3cret-token", "--save", saved, "-o", team, "--plan", "--since", "2027-10-01T00:00:00Z")
        #expect(imported.status == 0, "\(imported.err)")
        #expect(imported.err.contains("imported 3 users, 4 schedules, 1 escalation policies, 2 services to \(team)"), "\(imported.err)")
        #expect(imported.err.contains("on call, schedule Primary: the same as PagerDuty's for 90 days from 2027-10-01T00:00:00Z"), "\(imported.err)")
        for line in [
            "not mapped: user alice@example.com: contact method \"Pixel\" (push_notification_contact_method)",
            "not mapped: user alice@example.com: notification rule after 0 min: its contact method is not mapped",
            "not mapped: schedule Secondary: Layer 1: names user(s) PGONE01 not among PagerDuty's users (deactivated?): the layer is not imported",
            "not mapped: escalation policy Ops: rule 3 targets schedule PSCHED2, which is not imported",
            "not mapped: service Checkout: integration \"Email\" (generic_email_inbound_integration)",
            "not mapped: service Billing: urgency by support hours",
            "not mapped: schedule Follow the sun, rotation 2, event \"Monthly review\": RRULE:FREQ=MONTHLY;BYMONTHDAY=1: Klaxon takes FREQ=DAILY or WEEKLY",
            "not mapped: schedule Follow the sun, rotation 2, event \"Mondays and Wednesdays\": each member takes 1 of 2 weekly shifts",
            "note: schedule Follow the sun (shift-based): imported as Follow the sun / rotation 1, Follow the sun / rotation 2, Follow the sun / rotation 2, member 2",
        ] {
            #expect(imported.err.contains(line), "missing: \(line)\n\(imported.err)")
        }
        let yaml = try String(contentsOfFile: team, encoding: .utf8)
        // A 4-minute delay stays 240 s, both for a notification rule and an escalation level.
        #expect(yaml.contains("start_delay_seconds: 240") && yaml.contains("escalation_delay_seconds: 240"), "\(yaml)")
        #expect(yaml.contains("address: \"+15555550100\"") && yaml.contains("address: \"+447700900123\""), "\(yaml)")
        #expect(yaml.contains("key: \(integrationKey)"), "\(yaml)")
        // The shift-based schedule: weekly turns (5 weekday shifts each) from the first shift, the
        // shifts as restrictions at 09:00 London; Saturdays for two people, each their own schedule.


        // A deliberate difference in PagerDuty's rendering: found, both names printed, exit 2.
        let schedulesFile = URL(fileURLWithPath: saved).appendingPathComponent("schedules.json")
        let original = try String(contentsOf: schedulesFile, encoding: .utf8)
        let first = try #require(original.range(of: "\"PALICE1\""))
        try original.replacingCharacters(in: first, with: "\"PBOB001\"").write(to: schedulesFile, atomically: true, encoding: .utf8)
        let differs = try await cli("import", "pagerduty", "--from", saved, "-o", folder.appendingPathComponent("other.yaml").path, "--plan", "--since", "2027-10-01T00:00:00Z")
        #expect(differs.status == 2, "\(differs.err)")
        #expect(differs.err.contains("on call, schedule Primary: 1 interval differ from PagerDuty's:"), "\(differs.err)")
        #expect(differs.err.contains("PagerDuty: bob@example.com  Klaxon: alice@example.com"), "\(differs.err)")
        try original.write(to: schedulesFile, atomically: true, encoding: .utf8)

        // Applied, the integration key routes an Events v2 trigger to the imported service.
        let applied = try await cli("apply", "-f", team)
        #expect(applied.status == 0, "\(applied.err)")
        let posted = try await PagerDutyHTTPTests.post(pipeline.ingestHTTPPort, body: PagerDutyHTTPTests.trigger(integrationKey, dedup: "moved-in"))
        #expect(posted.status == 202, "\(posted.json)")
        #expect(try await pipeline.db.scalar(
            "SELECT count(*) FROM incidents i JOIN services s ON s.id = i.service_id WHERE s.name = 'Checkout' AND i.dedup_key = 'moved-in'") == 1)
        #expect(try await pipeline.db.scalar("SELECT escalation_delay_seconds FROM escalation_levels ORDER BY position LIMIT 1") == 240)

        // The shift-based schedule as Klaxon computes it: weekdays 09:00–17:00 London (GMT after
        // 2027-10-31), Alice the weeks from 4 October, 18 October, 1 November…, Bob the others;
        // Saturdays Carol and Alice, each in their own schedule.
        func onCall(_ schedule: String, _ at: String) async throws -> String {
            let id = try #require(try await pipeline.db.pool.withConnection {
                try $0.query("SELECT id FROM schedules WHERE name = $1", [schedule]).int64(0, "id")
            })
            let reply = try await cli("oncall", "--schedule", String(id), "--at", at)
            return reply.out.split(separator: ":").last.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.map { String($0.prefix(while: { $0 != " " })) } ?? "?"
        }
        #expect(try await onCall("Follow the sun / rotation 1", "2027-10-05T08:30:00Z") == "Alice")   // Tuesday 09:30 BST
        #expect(try await onCall("Follow the sun / rotation 1", "2027-10-12T15:30:00Z") == "Bob")     // Tuesday 16:30 BST
        #expect(try await onCall("Follow the sun / rotation 1", "2027-11-01T08:30:00Z") == "nobody")  // Monday 08:30 GMT
        #expect(try await onCall("Follow the sun / rotation 1", "2027-11-01T09:30:00Z") == "Alice")   // Monday 09:30 GMT
        #expect(try await onCall("Follow the sun / rotation 1", "2027-11-13T12:00:00Z") == "nobody")  // Saturday
        #expect(try await onCall("Follow the sun / rotation 2", "2027-11-13T12:00:00Z") == "Carol")
        #expect(try await onCall("Follow the sun / rotation 2, member 2", "2027-11-13T12:00:00Z") == "Alice")
        #expect(try await onCall("Follow the sun / rotation 2", "2027-11-14T12:00:00Z") == "nobody")  // Sunday

        // A second import — PagerDuty's schedule renamed meanwhile — changes nothing in Klaxon.
        let renamed = original.replacingOccurrences(of: "\"name\" : \"Primary\"", with: "\"name\" : \"Primary on-call\"")
        #expect(renamed != original)
        try renamed.write(to: schedulesFile, atomically: true, encoding: .utf8)
        let again = try await cli("import", "pagerduty", "--from", saved, "-o", team)
        #expect(again.status == 0 && again.err.contains("note: schedule Primary on-call was imported as Primary: the name is kept"), "\(again.err)")
        let reapplied = try await cli("apply", "-f", team)
        #expect(reapplied.out == "no changes: Klaxon already matches \(team)\n", "\(reapplied.out)\(reapplied.err)")
        await pipeline.shutdown()
    }
}
