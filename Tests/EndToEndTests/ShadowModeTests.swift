import Foundation
import KlaxonDomain
import KlaxonTestSupport
import Shared
import Testing

/// Shadow mode (issue 28, point 6): a service in shadow mode does everything but deliver; each
/// page it would have sent is recorded, and `klaxon shadow report` sets them beside PagerDuty's
/// notify log entries or Opsgenie's alert logs (served by a local server in their shapes, two a
/// page) and marks every difference. Going live is one YAML field.
@Suite struct ShadowModeTests {
    static let server = #"""
    import json, sys, os, threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import urlparse, parse_qs

    port_file, token, entries_file, alerts_file = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    users = [{"id": "PALICE1", "type": "user", "name": "Alice", "email": "alice@example.com"},
             {"id": "PBOB001", "type": "user", "name": "Bob", "email": "bob@example.com"},
             {"id": "PCAROL1", "type": "user", "name": "Carol", "email": "carol@example.com"}]

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args): pass
        def answer(self, code, body):
            data = json.dumps(body).encode()
            self.send_response(code); self.send_header("Content-Type", "application/json"); self.send_header("Content-Length", str(len(data)))
            self.end_headers(); self.wfile.write(data)
        def do_GET(self):
            if self.path.startswith("/v2/"):  # Opsgenie's API
                if self.headers.get("Authorization") != "GenieKey " + token:
                    return self.answer(401, {"message": "Could not authenticate", "took": 0.0, "requestId": "r"})
                url = urlparse(self.path); query = parse_qs(url.query); parts = url.path.strip("/").split("/")
                alerts = json.load(open(alerts_file))
                if parts == ["v2", "alerts"]: items = [{k: v for k, v in a.items() if k != "logs"} for a in alerts]
                elif parts[:2] == ["v2", "alerts"] and parts[3:] == ["logs"]:
                    assert query.get("identifierType") == ["id"], query
                    items = [a for a in alerts if a["id"] == parts[2]][0]["logs"]
                elif parts == ["v2", "users"]: items = [{"id": u["id"], "username": u["email"], "fullName": u["name"]} for u in users]
                else: return self.answer(404, {"message": "Not found", "took": 0.0, "requestId": "r"})
                offset = int(query.get("offset", ["0"])[0]); limit = min(int(query.get("limit", ["20"])[0]), 2)
                paging = {"next": "/x?offset=%d" % (offset + limit)} if offset + limit < len(items) else {}
                return self.answer(200, {"data": items[offset:offset + limit], "paging": paging, "took": 0.01, "requestId": "r"})
            if self.headers.get("Authorization") != "Token token=" + token:
                return self.answer(401, {"error": {"message": "Unauthorized", "code": 2006}})
            url = urlparse(self.path); query = parse_qs(url.query); name = url.path.strip("/")
            if name == "log_entries":
                assert "incidents" in query.get("include[]", []) and "since" in query and "until" in query, query
                items = json.load(open(entries_file))
            elif name == "users": items = users
            else: return self.answer(404, {"error": {"message": "Not Found", "code": 2100}})
            offset = int(query.get("offset", ["0"])[0]); limit = min(int(query.get("limit", ["25"])[0]), 2)
            self.answer(200, {name: items[offset:offset + limit], "limit": limit, "offset": offset, "more": offset + limit < len(items), "total": None})

    # FixtureServer.start appends the serving (port file, exit on stdin close).
    """#

    static func instant(_ at: Millis) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: Date(timeIntervalSince1970: Double(at) / 1000))
    }

    static func notify(_ id: String, user: String, channel: String, at: Millis, key: String) -> [String: Any] {
        [
            "id": id, "type": "notify_log_entry", "created_at": Self.instant(at), "summary": "Notified by \(channel)",
            "user": ["id": user, "type": "user_reference"], "notification": ["type": "\(channel)_notification", "status": "success"],
            "incident": ["id": "Q1", "type": "incident", "incident_key": key, "title": "Disk full"],
        ]
    }

    @Test func shadowRecordsInsteadOfDeliveringAndTheReportFindsTheDifference() async throws {
        let pipeline = try await Pipeline()
        let service = try await pipeline.seed(users: ["Alice", "Bob"])
        let cli = try KlaxonCLI(address: "127.0.0.1:\(pipeline.config.assignmentListen.port)", token: pipeline.adminToken)
        let shadowed = try await cli("service", "update", "\(service.serviceID)", "--mode", "shadow")
        #expect(shadowed.status == 0 && shadowed.out.contains("shadow mode: pages are recorded, not delivered"), "\(shadowed.out)\(shadowed.err)")
        let badMode = try await cli("service", "update", "\(service.serviceID)", "--mode", "quiet")
        #expect(badMode.status == 3 && badMode.err.contains("mode: must be live or shadow"), "\(badMode.err)")

        // A trigger in shadow mode: assigned, escalation running, both minute-zero pages decided —
        // and recorded, not sent.
        let ingest = pipeline.client(.ingest)
        let incident: EventResult = try await ingest.call(Ingest.SendEvent, Pipeline.trigger(service.routingKey, dedupKey: "disk-full"))
        let recorded = await eventually(timeout: .seconds(15)) { (try? await pipeline.db.scalar("SELECT count(*) FROM shadow_pages")) == 2 }
        #expect(recorded)
        #expect(pipeline.sink.requests.filter { $0.uri == "/hooks" }.isEmpty, "a shadow-mode page was delivered")
        let state = try await pipeline.db.pool.withConnection { connection in
            let rows = try connection.query(
                "SELECT status, last_error FROM notifications WHERE incident_id = $1", [Int64(incident.incidentID)])
            return (0..<rows.count).map { "\(rows.string($0, "status")!): \(rows.string($0, "last_error") ?? "")" }
        }
        #expect(state == Array(repeating: "skipped: shadow mode: recorded, not delivered", count: 2), "\(state)")
        #expect(try await pipeline.db.scalar(
            "SELECT count(*) FROM incident_assignments WHERE incident_id = \(incident.incidentID)") == 2)
        #expect(try await pipeline.db.scalar(
            "SELECT count(*) FROM timeline_entries WHERE incident_id = \(incident.incidentID) AND type = 'notify_skipped' AND details->>'shadow' = 'true'") == 2)
        let pagesAt = try await pipeline.db.pool.withConnection { connection in
            let rows = try connection.query("SELECT u.email, p.at_ms FROM shadow_pages p JOIN users u ON u.id = p.user_id")
            return Dictionary(uniqueKeysWithValues: (0..<rows.count).map { (rows.string($0, "email")!, rows.int64($0, "at_ms")!) })
        }
        let aliceAt = try #require(pagesAt["alice@example.com"])
        let bobAt = try #require(pagesAt["bob@example.com"])

        // Klaxon's pages alone.
        let alone = try await cli("shadow", "report", "--service", "Checkout")
        #expect(alone.status == 0 && alone.lines.filter { $0.contains("disk-full") && $0.contains("assigned (minute zero)") }.count == 2, "\(alone.out)\(alone.err)")

        // PagerDuty's log: Alice by SMS 5 s after Klaxon's page (the same), Bob 3 minutes later
        // (the deliberate difference), and another service's incident (not this one's).
        let folder = cli.folder
        let entriesFile = folder.appendingPathComponent("log_entries.json")
        let entries = [
            Self.notify("R1", user: "PALICE1", channel: "sms", at: aliceAt + 5_000, key: "disk-full"),
            Self.notify("R2", user: "PALICE1", channel: "email", at: aliceAt + 6_000, key: "disk-full"),
            Self.notify("R3", user: "PBOB001", channel: "phone", at: bobAt + 180_000, key: "disk-full"),
            Self.notify("R4", user: "PCAROL1", channel: "sms", at: aliceAt, key: "other-service"),
            ["id": "R5", "type": "trigger_log_entry", "created_at": Self.instant(aliceAt), "incident": ["incident_key": "disk-full"]],
        ]
        try JSONSerialization.data(withJSONObject: entries).write(to: entriesFile)
        // Opsgenie's alert logs for the same alias (the monitor sent both the same events): Alice
        // by SMS 3 s after Klaxon, Bob called 90 s after.
        let alertsFile = folder.appendingPathComponent("alerts.json")
        let alerts: [[String: Any]] = [[
            "id": "og-alert-1", "alias": "disk-full", "message": "Disk full", "createdAt": Self.instant(aliceAt - 1_000),
            "logs": [
                ["log": "Alert created via API", "type": "system", "owner": "System", "createdAt": Self.instant(aliceAt - 1_000), "offset": "1"],
                ["log": "Sent [SMS] notification to [alice@example.com]", "type": "system", "owner": "System", "createdAt": Self.instant(aliceAt + 3_000), "offset": "2"],
                ["log": "Sent [Email] notification to [alice@example.com]", "type": "system", "owner": "System", "createdAt": Self.instant(aliceAt + 4_000), "offset": "3"],
                ["log": "Sent [Voice] notification to [bob@example.com]", "type": "system", "owner": "System", "createdAt": Self.instant(bobAt + 90_000), "offset": "4"],
                ["log": "alice@example.com acknowledged alert via SMS", "type": "system", "owner": "alice@example.com", "createdAt": Self.instant(aliceAt + 60_000), "offset": "5"],
            ],
        ]]
        try JSONSerialization.data(withJSONObject: alerts).write(to: alertsFile)
        let server = try await FixtureServer.start(cli, name: "pagerduty", script: Self.server, arguments: ["pd-token", entriesFile.path, alertsFile.path])
        defer { server.stop() }
        let api = server.url
        let report = try await cli(
            "shadow", "report", "--service", "Checkout", "--since", "1h", "--pagerduty-api-url", api, "--pagerduty-token", "pd-token",
            "--save", folder.appendingPathComponent("saved").path)
        #expect(report.status == 2, "\(report.out)\(report.err)")
        let alice = report.lines.first { $0.contains("alice@example.com") } ?? ""
        let bob = report.lines.first { $0.contains("bob@example.com") } ?? ""
        #expect(alice.contains("disk-full") && alice.contains("sms") && alice.hasSuffix("same"), "\(report.out)")
        // PagerDuty's log has whole seconds: 180 s after Bob's page, its second.
        let later = ((bobAt + 180_000) / 1000 * 1000 - bobAt + 500) / 1000
        #expect(bob.contains("DIFFERENT: PagerDuty \(later) s later"), "\(report.out)")
        #expect(!report.out.contains("carol@example.com") && report.out.contains("1 difference"), "\(report.out)")
        // The saved answers give the same report offline.
        let offline = try await cli("shadow", "report", "--service", "Checkout", "--since", "1h", "--pagerduty-from", folder.appendingPathComponent("saved").path)
        #expect(offline.status == 2 && offline.out == report.out, "\(offline.out)")

        // The same against Opsgenie's alert logs: Alice the same, Bob called 90 s later.
        let opsgenie = try await cli(
            "shadow", "report", "--service", "Checkout", "--since", "1h", "--opsgenie-api-url", api, "--opsgenie-key", "pd-token")
        #expect(opsgenie.status == 2, "\(opsgenie.out)\(opsgenie.err)")
        let ogAlice = opsgenie.lines.first { $0.contains("alice@example.com") } ?? ""
        let ogBob = opsgenie.lines.first { $0.contains("bob@example.com") } ?? ""
        let ogLater = ((bobAt + 90_000) / 1000 * 1000 - bobAt + 500) / 1000
        #expect(opsgenie.out.contains("OPSGENIE") && ogAlice.contains("sms, ") && ogAlice.hasSuffix("same"), "\(opsgenie.out)")
        #expect(ogBob.contains("phone") && ogBob.contains("DIFFERENT: Opsgenie \(ogLater) s later") && opsgenie.out.contains("1 difference"), "\(opsgenie.out)")

        // Going live is one field: export says `mode: shadow`; `mode: live` (or none) makes the service live.
        let exported = try await cli("export")
        #expect(exported.status == 0 && exported.out.contains("mode: shadow"), "\(exported.out)")
        let team = folder.appendingPathComponent("team.yaml").path
        try exported.out.replacingOccurrences(of: "mode: shadow", with: "mode: live").write(toFile: team, atomically: true, encoding: .utf8)
        let applied = try await cli("apply", "-f", team)
        #expect(applied.status == 0 && applied.out.contains("mode shadow → live"), "\(applied.out)\(applied.err)")
        let _: EventResult = try await ingest.call(Ingest.SendEvent, Pipeline.trigger(service.routingKey, dedupKey: "live-now"))
        let delivered = await pipeline.sink.waitForRequests(2, timeout: .seconds(15))
        #expect(delivered.filter { $0.uri == "/hooks" }.count == 2)
        #expect(try await pipeline.db.scalar("SELECT count(*) FROM shadow_pages") == 2)
        await pipeline.shutdown()
    }
}
