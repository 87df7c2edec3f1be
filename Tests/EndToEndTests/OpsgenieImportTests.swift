import Foundation
import KlaxonTestSupport
import Shared
import Testing

/// `klaxon import opsgenie` (issue 28, points 2–4) against a local server that answers as
/// Opsgenie's REST API does (shapes from its public reference: `data`, `paging.next`, two items a
/// page), with the final timeline computed here in Python with zoneinfo, independently of
/// Klaxon's schedule code.
@Suite struct OpsgenieImportTests {
    static let server = #"""
    import json, sys, datetime as dt, os, threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import urlparse, parse_qs
    from zoneinfo import ZoneInfo

    port_file, key, integration_key = sys.argv[1], sys.argv[2], sys.argv[3]
    NY = ZoneInfo("America/New_York")
    UTC = dt.timezone.utc
    def iso(t): return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    users = [
        {"id": "u-alice", "username": "alice@example.com", "fullName": "Alice", "role": {"id": "Owner", "name": "Owner"}, "timeZone": "America/New_York"},
        {"id": "u-bob", "username": "bob@example.com", "fullName": "Bob", "role": {"id": "User", "name": "User"}, "timeZone": "America/New_York"},
        {"id": "u-carol", "username": "carol@example.com", "fullName": "Carol", "role": {"id": "Observer", "name": "Observer"}, "timeZone": "Europe/London"},
    ]
    contacts = {
        "u-alice": [{"id": "c1", "method": "email", "to": "alice@example.com", "status": {"enabled": True}},
                    {"id": "c2", "method": "sms", "to": "1-5555550100", "status": {"enabled": True}},
                    {"id": "c3", "method": "voice", "to": "1-5555550100", "status": {"enabled": True}},
                    {"id": "c4", "method": "mobile", "to": "Pixel 8", "status": {"enabled": True}}],
        "u-bob": [{"id": "c5", "method": "sms", "to": "44-7700900123", "status": {"enabled": True}}],
        "u-carol": [],
    }
    def step(method, to, minutes): return {"id": "s", "contact": {"method": method, "to": to}, "sendAfter": {"timeAmount": minutes, "timeUnit": "minutes"}, "enabled": True}
    rules = {
        "u-alice": [
            {"id": "r1", "name": "New alert", "actionType": "create-alert", "order": 1, "enabled": True, "criteria": {"type": "match-all"},
             "steps": [step("email", "alice@example.com", 0), step("sms", "1-5555550100", 4), step("mobile", "Pixel 8", 0)]},
            {"id": "r2", "name": "Nights", "actionType": "create-alert", "order": 2, "enabled": True, "criteria": {"type": "match-all"},
             "timeRestriction": {"type": "time-of-day", "restriction": {"startHour": 22, "startMin": 0, "endHour": 6, "endMin": 0}},
             "steps": [step("voice", "1-5555550100", 0)]},
            {"id": "r3", "name": "Acknowledged", "actionType": "acknowledged-alert", "order": 3, "enabled": True, "criteria": {"type": "match-all"}, "steps": []}],
        "u-bob": [{"id": "r4", "name": "New alert", "actionType": "create-alert", "order": 1, "enabled": True, "steps": [step("sms", "44-7700900123", 0)]}],
        "u-carol": [],
    }
    since = dt.datetime(2027, 10, 1, tzinfo=UTC)
    until = since + dt.timedelta(days=90)
    rotation = ["u-alice", "u-bob", "u-carol"]
    start_week = dt.date(2027, 9, 6)  # a Monday: the rotation's start, handoff Mondays 09:00 New York
    overrides = [
        (dt.datetime(2027, 10, 13, 12, tzinfo=NY), dt.datetime(2027, 10, 13, 15, tzinfo=NY), "u-carol", []),
        (dt.datetime(2027, 11, 9, 9, tzinfo=NY), dt.datetime(2027, 11, 9, 17, tzinfo=NY), "u-alice", [{"id": "rot-primary", "name": "Weekdays"}]),
    ]
    def cut(pieces, o_start, o_end, o_who):
        out = []
        for p_start, p_end, p_who in pieces:
            if o_end <= p_start or o_start >= p_end: out.append((p_start, p_end, p_who)); continue
            if p_start < o_start: out.append((p_start, o_start, p_who))
            out.append((max(p_start, o_start), min(p_end, o_end), o_who))
            if o_end < p_end: out.append((o_end, p_end, p_who))
        return out
    def period(s, e, who): return {"startDate": iso(max(s, since)), "endDate": iso(min(e, until)), "type": "default",
                                   "recipient": {"type": "user", "id": who, "name": [u["username"] for u in users if u["id"] == who][0]}}
    # Weekdays 09:00–17:00 New York (EDT, then EST from 2027-11-07), the week's user, overrides on top.
    primary = []
    day = since.astimezone(NY).date()
    while day <= until.astimezone(NY).date():
        if day.weekday() < 5:
            pieces = [(dt.datetime(day.year, day.month, day.day, 9, tzinfo=NY), dt.datetime(day.year, day.month, day.day, 17, tzinfo=NY),
                       rotation[((day - start_week).days // 7) % 3])]
            for o_start, o_end, o_who, _ in overrides: pieces = cut(pieces, o_start, o_end, o_who)
            primary += [period(s, e, w) for s, e, w in pieces if e > since and s < until]
        day += dt.timedelta(days=1)
    # Weekends, Saturday 00:00 to Monday 00:00 UTC (across Sunday → Monday): Carol.
    weekend = []
    day = since.date()
    while day <= until.date():
        if day.weekday() == 5:
            s = dt.datetime(day.year, day.month, day.day, tzinfo=UTC)
            if s + dt.timedelta(days=2) > since and s < until: weekend.append(period(s, s + dt.timedelta(days=2), "u-carol"))
        day += dt.timedelta(days=1)
    weekdays = [{"startDay": d, "startHour": 9, "startMin": 0, "endDay": d, "endHour": 17, "endMin": 0}
                for d in ["monday", "tuesday", "wednesday", "thursday", "friday"]]
    def participant(u): return {"type": "user", "id": u, "username": [x["username"] for x in users if x["id"] == u][0]}
    schedules = [
        {"id": "sch-primary", "name": "Primary", "timezone": "America/New_York", "enabled": True, "ownerTeam": {"id": "team-pay", "name": "Payments"},
         "rotations": [{"id": "rot-primary", "name": "Weekdays", "startDate": "2027-09-06T13:00:00Z", "type": "weekly", "length": 1,
                        "participants": [participant(u) for u in rotation],
                        "timeRestriction": {"type": "weekday-and-time-of-day", "restrictions": weekdays}}]},
        {"id": "sch-weekend", "name": "Weekend", "timezone": "UTC", "enabled": True, "ownerTeam": {"id": "team-pay", "name": "Payments"},
         "rotations": [{"id": "rot-sat", "name": "Saturday", "startDate": "2027-09-04T00:00:00Z", "type": "weekly", "length": 1,
                        "participants": [participant("u-carol")],
                        "timeRestriction": {"type": "weekday-and-time-of-day", "restrictions": [
                            {"startDay": "saturday", "startHour": 0, "startMin": 0, "endDay": "monday", "endHour": 0, "endMin": 0}]}},
                       {"id": "rot-gap", "name": "Gaps", "startDate": "2027-09-04T00:00:00Z", "type": "daily", "length": 1,
                        "participants": [participant("u-bob"), {"type": "none"}]}]},
    ]
    timelines = {
        "sch-primary": {"rotations": [{"id": "rot-primary", "name": "Weekdays", "order": 1, "periods": primary}]},
        "sch-weekend": {"rotations": [{"id": "rot-sat", "name": "Saturday", "order": 1, "periods": weekend},
                                      {"id": "rot-gap", "name": "Gaps", "order": 2, "periods": []}]},
    }
    schedule_overrides = {
        "sch-primary": [{"alias": "o%d" % i, "user": {"type": "user", "id": w, "username": ""}, "startDate": iso(s), "endDate": iso(e), "rotations": r}
                        for i, (s, e, w, r) in enumerate(overrides)],
        "sch-weekend": [],
    }
    escalations = [
        {"id": "esc-ops", "name": "Ops", "ownerTeam": {"id": "team-pay", "name": "Payments"},
         "rules": [
            {"condition": "if-not-acked", "notifyType": "default", "delay": {"timeAmount": 0, "timeUnit": "minutes"}, "recipient": {"type": "schedule", "id": "sch-primary", "name": "Primary"}},
            {"condition": "if-not-acked", "notifyType": "default", "delay": {"timeAmount": 4, "timeUnit": "minutes"}, "recipient": {"type": "user", "id": "u-bob", "username": "bob@example.com"}},
            {"condition": "if-not-acked", "notifyType": "default", "delay": {"timeAmount": 4, "timeUnit": "minutes"}, "recipient": {"type": "schedule", "id": "sch-weekend", "name": "Weekend"}},
            {"condition": "if-not-acked", "notifyType": "default", "delay": {"timeAmount": 14, "timeUnit": "minutes"}, "recipient": {"type": "team", "id": "team-pay", "name": "Payments"}}],
         "repeat": {"waitInterval": 10, "count": 2, "resetRecipientStates": False, "closeAlertAfterAll": False}},
    ]
    teams = [{"id": "team-pay", "name": "Payments", "description": ""}, {"id": "team-empty", "name": "Design", "description": ""}]
    routing = {"team-pay": [
        {"id": "rr1", "name": "Critical to DB", "isDefault": False, "order": 0, "criteria": {"type": "match-all-conditions"}, "notify": {"type": "schedule", "id": "sch-weekend", "name": "Weekend"}},
        {"id": "rr0", "name": "Default Routing", "isDefault": True, "order": 1, "criteria": {"type": "match-all"}, "notify": {"type": "escalation", "id": "esc-ops", "name": "Ops"}}],
        "team-empty": []}
    services = [{"id": "svc-1", "name": "Checkout", "teamId": "team-pay", "description": ""}]
    integrations = [
        {"id": "int-1", "name": "Prometheus", "type": "API", "enabled": True, "apiKey": integration_key, "ownerTeam": {"id": "team-pay", "name": "Payments"}},
        {"id": "int-2", "name": "Email", "type": "Email", "enabled": True, "emailAddress": "pay@acme.opsgenie.net", "ownerTeam": {"id": "team-pay", "name": "Payments"}},
    ]
    lists = {"v2/users": users, "v2/schedules": schedules, "v2/escalations": escalations, "v2/teams": teams, "v1/services": services,
             "v2/integrations": [{k: v for k, v in i.items() if k != "apiKey"} for i in integrations]}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args): pass
        def answer(self, code, body):
            data = json.dumps(body).encode()
            self.send_response(code); self.send_header("Content-Type", "application/json"); self.send_header("Content-Length", str(len(data)))
            self.end_headers(); self.wfile.write(data)
        def data(self, value): self.answer(200, {"data": value, "took": 0.01, "requestId": "r"})
        def do_GET(self):
            if self.headers.get("Authorization") != "GenieKey " + key:
                return self.answer(401, {"message": "Could not authenticate", "took": 0.0, "requestId": "r"})
            url = urlparse(self.path); query = parse_qs(url.query); path = url.path.strip("/"); parts = path.split("/")
            if path in lists:
                offset = int(query.get("offset", ["0"])[0]); limit = min(int(query.get("limit", ["20"])[0]), 2)
                items = lists[path]
                paging = {"first": "/%s?offset=0&limit=%d" % (path, limit)}
                if offset + limit < len(items): paging["next"] = "/%s?offset=%d&limit=%d" % (path, offset + limit, limit)
                return self.answer(200, {"data": items[offset:offset + limit], "paging": paging, "took": 0.01, "requestId": "r"})
            if parts[:2] == ["v2", "users"] and len(parts) >= 4:
                if parts[3] == "contacts": return self.data(contacts[parts[2]])
                if len(parts) == 4: return self.data([{k: v for k, v in r.items() if k != "steps"} for r in rules[parts[2]]])
                return self.data([r for r in rules[parts[2]] if r["id"] == parts[4]][0])
            if parts[:2] == ["v2", "schedules"] and len(parts) == 4:
                if parts[3] == "overrides": return self.data(schedule_overrides[parts[2]])
                if parts[3] == "timeline":
                    return self.data({"_parent": {"id": parts[2]}, "startDate": iso(since), "endDate": iso(until), "finalTimeline": timelines[parts[2]]})
            if parts[:2] == ["v2", "teams"] and len(parts) == 4: return self.data(routing[parts[2]])
            if parts[:2] == ["v2", "integrations"] and len(parts) == 3: return self.data([i for i in integrations if i["id"] == parts[2]][0])
            self.answer(404, {"message": "Not found", "took": 0.0, "requestId": "r"})

    # FixtureServer.start appends the serving (port file, exit on stdin close).
    """#

    @Test func importPlanApplyAndImportAgain() async throws {
        let pipeline = try await Pipeline()
        let cli = try KlaxonCLI(address: "127.0.0.1:\(pipeline.config.assignmentListen.port)", token: pipeline.adminToken)
        let folder = cli.folder
        let genieKey = "3f2c1b0a-9e8d-4c7b-a6f5-e4d3c2b1a098"
        let server = try await FixtureServer.start(cli, name: "opsgenie", script: Self.server, arguments: ["read-config-key", genieKey])
        defer { server.stop() }
        let api = server.url
        let team = folder.appendingPathComponent("team.yaml").path
        let saved = folder.appendingPathComponent("saved").path

        // A wrong key is Opsgenie's 401: exit 5.
        let refused = try await cli("import", "opsgenie", "--api-url", api, "--key", "wrong", "-o", team)
        #expect(refused.status == 5 && refused.err.contains("Opsgenie answered 401"), "\(refused.err)")

        let imported = try await cli(
            "import", "opsgenie", "--api-url", api, "--key", "read-config-key", "--save", saved, "-o", team, "--plan", "--since", "2027-10-01T00:00:00Z")
        #expect(imported.status == 0, "\(imported.err)")
        #expect(imported.err.contains("imported 3 users, 2 schedules, 1 escalation policies, 1 services to \(team)"), "\(imported.err)")
        // 90 days across the November DST change and ten weekends (Saturday → Monday), as Opsgenie's timeline says.
        #expect(imported.err.contains("on call, schedule Primary: the same as Opsgenie's for 90 days from 2027-10-01T00:00:00Z"), "\(imported.err)")
        #expect(imported.err.contains("on call, schedule Weekend / Saturday: the same as Opsgenie's for 90 days"), "\(imported.err)")
        for line in [
            "not mapped: user alice@example.com: contact mobile Pixel 8: Klaxon has no such channel",
            "not mapped: user alice@example.com: notification rule \"New alert\": step to mobile Pixel 8 after 0 min: its contact is not mapped",
            "not mapped: user alice@example.com: notification rule \"Nights\": a time restriction",
            "not mapped: user alice@example.com: notification rule \"Acknowledged\" (acknowledged-alert)",
            "not mapped: schedule Weekend, rotation Gaps: a \"no one\" turn",
            "not mapped: escalation Ops: rule 4 notifies a team (Payments)",
            "not mapped: team Payments: routing rule \"Critical to DB\"",
            "not mapped: team Payments: integration \"Email\" (Email)",
        ] {
            #expect(imported.err.contains(line), "missing: \(line)\n\(imported.err)")
        }
        let yaml = try String(contentsOfFile: team, encoding: .utf8)
        // A 4-minute step stays 240 s; the escalation's 0/4-minute rules are levels 240 s apart, then 10 minutes before each of 2 repeats.
        #expect(yaml.contains("start_delay_seconds: 240") && yaml.contains("escalation_delay_seconds: 240") && yaml.contains("escalation_delay_seconds: 600"), "\(yaml)")
        #expect(yaml.contains("num_loops: 2") && yaml.contains("weekday: saturday") && yaml.contains("duration_seconds: 172800"), "\(yaml)")
        #expect(yaml.contains("address: \"+15555550100\"") && yaml.contains("address: \"+447700900123\""), "\(yaml)")
        let routingKey = genieKey.replacingOccurrences(of: "-", with: "")
        #expect(yaml.contains("key: \"\(routingKey)\""), "\(yaml)")

        // A deliberate difference in Opsgenie's timeline: found, both names printed, exit 2.
        let schedulesFile = URL(fileURLWithPath: saved).appendingPathComponent("schedules.json")
        let original = try String(contentsOf: schedulesFile, encoding: .utf8)
        let marker = "\"id\" : \"u-alice\""
        let periods = try #require(original.range(of: "\"periods\""))
        let first = try #require(original.range(of: marker, range: periods.upperBound..<original.endIndex))
        try original.replacingCharacters(in: first, with: "\"id\" : \"u-bob\"").write(to: schedulesFile, atomically: true, encoding: .utf8)
        let differs = try await cli("import", "opsgenie", "--from", saved, "-o", folder.appendingPathComponent("other.yaml").path, "--plan", "--since", "2027-10-01T00:00:00Z")
        #expect(differs.status == 2, "\(differs.err)")
        #expect(differs.err.contains("on call, schedule Primary: 1 interval differ from Opsgenie's:"), "\(differs.err)")
        #expect(differs.err.contains("Opsgenie: bob@example.com  Klaxon: alice@example.com"), "\(differs.err)")
        try original.write(to: schedulesFile, atomically: true, encoding: .utf8)

        // Applied, the monitor's GenieKey (a UUID) creates an alert on the imported service: only the host changed.
        let applied = try await cli("apply", "-f", team)
        #expect(applied.status == 0, "\(applied.err)")
        let created = try await HeartbeatTests.ping(
            pipeline.ingestHTTPPort, "/v2/alerts", body: #"{"message": "Checkout latency", "alias": "moved-in"}"#,
            headers: ["Authorization": "GenieKey \(genieKey)", "Content-Type": "application/json"])
        #expect(created.status == 202, "\(created.body)")
        let opened = await eventually(timeout: .seconds(10)) {
            (try? await pipeline.db.scalar(
                "SELECT count(*) FROM incidents i JOIN services s ON s.id = i.service_id WHERE s.name = 'Checkout' AND i.dedup_key = 'moved-in'")) == 1
        }
        #expect(opened)

        // A second import — the schedule renamed in Opsgenie meanwhile — changes nothing in Klaxon.
        let renamed = original.replacingOccurrences(of: "\"name\" : \"Primary\"", with: "\"name\" : \"Primary on-call\"")
        #expect(renamed != original)
        try renamed.write(to: schedulesFile, atomically: true, encoding: .utf8)
        let again = try await cli("import", "opsgenie", "--from", saved, "-o", team)
        #expect(again.status == 0 && again.err.contains("note: schedule Primary on-call was imported as Primary: the name is kept"), "\(again.err)")
        let reapplied = try await cli("apply", "-f", team)
        #expect(reapplied.out == "no changes: Klaxon already matches \(team)\n", "\(reapplied.out)\(reapplied.err)")
        await pipeline.shutdown()
    }
}
