import AsyncHTTPClient
import Foundation
import IngestService
import KlaxonTestSupport
import NIOCore
import Shared
import Testing

/// A real monitor: Prometheus Alertmanager with a `pagerduty_configs` receiver whose `url` is
/// Ingest's PagerDuty endpoint. An alert posted to Alertmanager becomes an incident; its
/// resolution resolves it. scripts/test installs the Debian package; without it this test fails.
@Suite struct AlertmanagerTests {
    static let binary = "/usr/bin/prometheus-alertmanager"

    @Test func alertmanagerAlertOpensAndResolvesAnIncident() async throws {
        try #require(
            FileManager.default.isExecutableFile(atPath: Self.binary),
            "prometheus-alertmanager is not installed (apt-get install prometheus-alertmanager; scripts/test does)")
        let pipeline = try await Pipeline(start: [.ingest])
        let service = try await pipeline.seed()
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("klaxon-am-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        let config = work.appendingPathComponent("alertmanager.yml")
        try """
            route:
              receiver: klaxon
              group_by: ['alertname']
              group_wait: 1s
              group_interval: 1s
              repeat_interval: 1h
            receivers:
              - name: klaxon
                pagerduty_configs:
                  - routing_key: \(service.routingKey)
                    url: http://127.0.0.1:\(pipeline.ingestHTTPPort)/v2/enqueue
                    send_resolved: true
            """.write(to: config, atomically: true, encoding: .utf8)
        let port = try await freePort()
        let process = ChildProcess()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = [
            "--config.file=\(config.path)", "--storage.path=\(work.path)", "--web.listen-address=127.0.0.1:\(port)",
            "--cluster.listen-address=", "--log.level=warn",
        ]
        let log = work.appendingPathComponent("alertmanager.log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        defer { process.terminate(); process.waitUntilExit() }

        let started = await eventually(timeout: .seconds(20)) {
            (try? await HTTPClient.shared.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)/-/ready"), timeout: .seconds(1)))?.status.code == 200
        }
        try #require(started, "alertmanager did not start: \((try? String(contentsOf: log, encoding: .utf8)) ?? "")")

        func post(endsAt: Date?) async throws {
            let formatter = ISO8601DateFormatter()
            var alert: [String: Any] = [
                "labels": ["alertname": "DiskFull", "instance": "db-1", "severity": "critical"],
                "annotations": ["summary": "Disk full on db-1"],
                "startsAt": formatter.string(from: Date().addingTimeInterval(-60)),
            ]
            if let endsAt { alert["endsAt"] = formatter.string(from: endsAt) }
            var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/api/v2/alerts")
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: [alert])))
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(5))
            #expect(response.status.code == 200)
        }

        try await post(endsAt: nil)
        let opened = try await eventually(timeout: .seconds(30)) {
            try await pipeline.db.scalar("SELECT count(*) FROM incidents WHERE status = 'triggered'") == 1
        }
        try #require(opened, "no incident from alertmanager: \((try? String(contentsOf: log, encoding: .utf8)) ?? "")")
        let incident = try await pipeline.db.pool.withConnection { connection in
            try connection.query("SELECT title, urgency, dedup_key FROM incidents")
        }
        #expect(incident.string(0, "title")?.contains("DiskFull") == true)
        #expect(incident.string(0, "dedup_key")?.isEmpty == false)

        try await post(endsAt: Date().addingTimeInterval(-1))
        let resolved = try await eventually(timeout: .seconds(30)) {
            try await pipeline.db.scalar("SELECT count(*) FROM incidents WHERE status = 'resolved'") == 1
        }
        #expect(resolved, "alertmanager's resolve did not resolve the incident")
        #expect(try await pipeline.db.scalar("SELECT count(*) FROM incidents") == 1)
        #expect(try await pipeline.db.scalar(
            "SELECT count(*) FROM timeline_entries WHERE type = 'resolve' AND actor = 'integration'") == 1)
        let metrics = try await MetricsTests.get(pipeline.ingestHTTPPort, "/metrics").body
        #expect(metrics.split(separator: "\n").contains { $0.hasPrefix("klaxon_events_total{") && $0.contains("dialect=\"pagerduty\"") })
        await pipeline.shutdown()
    }
}

/// Alertmanager's own webhook (issue 27, point 2), driven by the real Alertmanager: two receivers,
/// one with the routing key in the URL and one sending it as a bearer token. Two groups whose
/// alerts share a summary stay two incidents; a third alert joining a group adds a fingerprint
/// and pages nobody again; resolving the group resolves its incident; Alertmanager logs no failed
/// notification. Edge cases of the payload (a truncated one, a resolved-only first one, bad
/// bodies and keys) are posted directly.
@Suite struct AlertmanagerWebhookTests {
    /// A running Alertmanager and what it needs.
    final class Running: @unchecked Sendable {
        let port: Int
        let process = ChildProcess()
        let work: URL
        let log: URL

        init(config: String) async throws {
            try #require(
                FileManager.default.isExecutableFile(atPath: AlertmanagerTests.binary),
                "prometheus-alertmanager is not installed (apt-get install prometheus-alertmanager; scripts/test does)")
            work = FileManager.default.temporaryDirectory.appendingPathComponent("klaxon-am-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
            let file = work.appendingPathComponent("alertmanager.yml")
            try config.write(to: file, atomically: true, encoding: .utf8)
            port = try await freePort()
            process.executableURL = URL(fileURLWithPath: AlertmanagerTests.binary)
            process.arguments = [
                "--config.file=\(file.path)", "--storage.path=\(work.path)", "--web.listen-address=127.0.0.1:\(port)",
                "--cluster.listen-address=", "--log.level=debug",
            ]
            log = work.appendingPathComponent("alertmanager.log")
            _ = FileManager.default.createFile(atPath: log.path, contents: nil)
            let handle = try FileHandle(forWritingTo: log)
            process.standardOutput = handle
            process.standardError = handle
            try process.run()
            let port = port
            let started = await eventually(timeout: .seconds(20)) {
                (try? await HTTPClient.shared.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)/-/ready"), timeout: .seconds(1)))?.status.code == 200
            }
            try #require(started, "alertmanager did not start: \(output)")
        }

        var output: String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }

        func stop() {
            process.signal(SIGKILL)
            try? FileManager.default.removeItem(at: work)
        }

        /// Posts alerts to Alertmanager's API (as Prometheus does).
        func post(_ alerts: [[String: Any]]) async throws {
            var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/api/v2/alerts")
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: alerts)))
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(5))
            #expect(response.status.code == 200)
        }
    }

    static func alert(_ labels: [String: String], summary: String, ended: Bool = false) -> [String: Any] {
        let formatter = ISO8601DateFormatter()
        var alert: [String: Any] = [
            "labels": labels, "annotations": ["summary": summary],
            "startsAt": formatter.string(from: Date().addingTimeInterval(-60)),
            "generatorURL": "http://prometheus.example:9090/graph?g0.expr=up",
        ]
        if ended { alert["endsAt"] = formatter.string(from: Date().addingTimeInterval(-1)) }
        return alert
    }

    @Test func realAlertmanagerGroupsBecomeIncidentsAndFingerprintsJoinThem() async throws {
        let pipeline = try await Pipeline()
        let service = try await pipeline.seed(users: ["Alice"])
        let ingest = "http://127.0.0.1:\(pipeline.ingestHTTPPort)"
        let alertmanager = try await Running(config: """
            route:
              receiver: klaxon-path
              group_by: ['alertname']
              group_wait: 1s
              group_interval: 1s
              repeat_interval: 1h
              routes:
                - matchers: ['team="storage"']
                  receiver: klaxon-bearer
                  group_by: ['alertname']
                  group_wait: 1s
                  group_interval: 1s
            receivers:
              - name: klaxon-path
                webhook_configs:
                  - url: \(ingest)/alertmanager/\(service.routingKey)
                    send_resolved: true
              - name: klaxon-bearer
                webhook_configs:
                  - url: \(ingest)/alertmanager
                    send_resolved: true
                    http_config:
                      authorization:
                        credentials: \(service.routingKey)
            """)
        defer { alertmanager.stop() }
        // Two groups (alertname DiskFull, and VolumeFull through the bearer receiver) whose alerts
        // share one summary text: two incidents, never merged on the text.
        try await alertmanager.post([
            Self.alert(["alertname": "DiskFull", "instance": "db-1", "severity": "critical"], summary: "Storage almost full"),
            Self.alert(["alertname": "VolumeFull", "instance": "nfs-1", "team": "storage", "severity": "warning"], summary: "Storage almost full"),
        ])
        let two = try await eventually(timeout: .seconds(30)) {
            try await pipeline.db.scalar("SELECT count(*) FROM incidents WHERE status = 'triggered'") == 2
        }
        try #require(two, "two incidents expected: \(alertmanager.output.suffix(3000))")
        let firstPages = await pipeline.sink.waitForRequests(2, timeout: .seconds(20))
        #expect(firstPages.count == 2, "Alice is paged once per incident")
        let diskFull = try #require(try await pipeline.db.scalar(
            "SELECT id FROM incidents WHERE dedup_key LIKE 'alertmanager-%' AND title = 'Storage almost full' AND severity = 'critical'"))
        // A third alert joins DiskFull's group: a second fingerprint, no second page.
        try await alertmanager.post([Self.alert(["alertname": "DiskFull", "instance": "db-2", "severity": "critical"], summary: "Storage almost full")])
        let joined = try await eventually(timeout: .seconds(30)) {
            try await pipeline.db.scalar("SELECT count(*) FROM alerts WHERE incident_id = \(diskFull) AND fingerprint IS NOT NULL") == 2
        }
        #expect(joined, "the third alert did not join its group's incident: \(alertmanager.output.suffix(2000))")
        let admin = pipeline.client(.assignment)
        let shown: IncidentInfo = try await admin.call(Assignment.GetIncident, GetIncidentRequest(incidentID: UInt64(diskFull)))
        #expect(shown.alerts.map { $0.labels["instance"] } == ["db-1", "db-2"])
        #expect(shown.alerts.allSatisfy { $0.status == "firing" && $0.fingerprint.count == 16 && $0.startsAtMs > 0 && $0.generatorURL.hasPrefix("http://prometheus") })
        let timeline: GetTimelineReply = try await admin.call(Assignment.GetTimeline, GetIncidentRequest(incidentID: UInt64(diskFull)))
        #expect(timeline.entries.filter { $0.type == "alert_added" }.map { $0.details["labels"] ?? "" }.contains { $0.contains("instance=db-2") })
        try await Task.sleep(for: .seconds(2))
        #expect(pipeline.sink.count == 2, "the joining alert paged again")

        // The group resolves: its incident resolves; the other stays open.
        try await alertmanager.post([
            Self.alert(["alertname": "DiskFull", "instance": "db-1", "severity": "critical"], summary: "Storage almost full", ended: true),
            Self.alert(["alertname": "DiskFull", "instance": "db-2", "severity": "critical"], summary: "Storage almost full", ended: true),
        ])
        let resolved = try await eventually(timeout: .seconds(30)) {
            try await pipeline.db.scalar("SELECT count(*) FROM incidents WHERE id = \(diskFull) AND status = 'resolved'") == 1
        }
        #expect(resolved, "the resolved group did not resolve its incident: \(alertmanager.output.suffix(2000))")
        #expect(try await pipeline.db.scalar("SELECT count(*) FROM incidents WHERE status = 'triggered'") == 1)
        #expect(try await pipeline.db.scalar("SELECT count(*) FROM alerts WHERE incident_id = \(diskFull) AND status = 'resolved'") == 2)
        // Alertmanager itself saw every notification succeed.
        let log = alertmanager.output
        #expect(log.contains("Notify success"), "no successful notification in Alertmanager's log: \(log.suffix(2000))")
        #expect(!log.contains("Notify for alerts failed") && !log.contains("level=error"), "\(log.suffix(3000))")
        let metrics = try await MetricsTests.get(pipeline.ingestHTTPPort, "/metrics").body
        #expect(metrics.split(separator: "\n").contains { $0.hasPrefix("klaxon_events_total{") && $0.contains("dialect=\"alertmanager\"") })
        await admin.close()
        await pipeline.shutdown()
    }

    static func post(_ url: String, _ body: String, bearer: String? = nil) async throws -> (status: UInt, body: String) {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        if let bearer { request.headers.add(name: "Authorization", value: "Bearer \(bearer)") }
        request.body = .bytes(ByteBuffer(string: body))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        return (response.status.code, String(buffer: try await response.body.collect(upTo: 1 << 20)))
    }

    static func notification(status: String, groupKey: String, alerts: [(fingerprint: String, status: String)], truncated: Int = 0) -> String {
        let items = alerts.map { alert in
            """
            {"status":"\(alert.status)","labels":{"alertname":"QueueStuck","queue":"\(alert.fingerprint)"},"annotations":{},
             "startsAt":"2026-12-05T10:00:00Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"","fingerprint":"\(alert.fingerprint)"}
            """
        }
        return """
            {"version":"4","groupKey":"\(groupKey)","truncatedAlerts":\(truncated),"status":"\(status)","receiver":"klaxon",
             "groupLabels":{"alertname":"QueueStuck"},"commonLabels":{"alertname":"QueueStuck"},"commonAnnotations":{},
             "externalURL":"http://alertmanager.example:9093","alerts":[\(items.joined(separator: ","))]}
            """
    }

    @Test func truncatedResolvedOnlyAndBadNotifications() async throws {
        let pipeline = try await Pipeline(start: [.ingest])
        let service = try await pipeline.seed()
        let url = "http://127.0.0.1:\(pipeline.ingestHTTPPort)/alertmanager/\(service.routingKey)"
        // A resolved-only first notification opens nothing.
        let ignored = try await Self.post(url, Self.notification(status: "resolved", groupKey: "{}:{alertname=\\\"Gone\\\"}", alerts: [("aa01", "resolved")]))
        #expect(ignored.status == 200 && ignored.body.contains("\"ignored\""), "\(ignored)")
        #expect(try await pipeline.db.scalar("SELECT count(*) FROM incidents") == 0)
        // Two alerts fire; then a truncated notification lists only the first, resolved: the
        // second (left out) is not resolved with it, and the incident stays open.
        let key = "{}:{alertname=\\\"QueueStuck\\\"}"
        let opened = try await Self.post(url, Self.notification(status: "firing", groupKey: key, alerts: [("f1", "firing"), ("f2", "firing")]))
        #expect(opened.status == 200 && opened.body.contains("\"success\""), "\(opened)")
        let truncated = try await Self.post(url, Self.notification(status: "firing", groupKey: key, alerts: [("f1", "resolved")], truncated: 1))
        #expect(truncated.status == 200, "\(truncated)")
        let states = try await pipeline.db.pool.withConnection { connection in
            let rows = try connection.query("SELECT fingerprint || '=' || status AS s FROM alerts ORDER BY fingerprint")
            return (0..<rows.count).map { rows.string($0, "s")! }
        }
        #expect(states == ["f1=resolved", "f2=firing"])
        #expect(try await pipeline.db.scalar("SELECT count(*) FROM incidents WHERE status = 'triggered'") == 1)
        // The bearer form, and what is refused: 401 for no or an unknown key, 400 for a bad body.
        let viaBearer = try await Self.post(
            "http://127.0.0.1:\(pipeline.ingestHTTPPort)/alertmanager",
            Self.notification(status: "resolved", groupKey: key, alerts: [("f1", "resolved"), ("f2", "resolved")]), bearer: service.routingKey)
        #expect(viaBearer.status == 200 && viaBearer.body.contains("\"success\""), "\(viaBearer)")
        #expect(try await pipeline.db.scalar("SELECT count(*) FROM incidents WHERE status = 'resolved'") == 1)
        let noKey = try await Self.post("http://127.0.0.1:\(pipeline.ingestHTTPPort)/alertmanager", Self.notification(status: "firing", groupKey: "x", alerts: []))
        #expect(noKey.status == 401, "\(noKey)")
        let unknown = try await Self.post(
            "http://127.0.0.1:\(pipeline.ingestHTTPPort)/alertmanager/\(String(repeating: "z", count: 32))",
            Self.notification(status: "firing", groupKey: "x", alerts: [("f9", "firing")]))
        #expect(unknown.status == 401 && unknown.body.contains("unknown routing key"), "\(unknown)")
        let badJSON = try await Self.post(url, "{\"version\":\"4\",")
        #expect(badJSON.status == 400, "\(badJSON)")
        let wrongVersion = try await Self.post(url, Self.notification(status: "firing", groupKey: "x", alerts: []).replacingOccurrences(of: "\"version\":\"4\"", with: "\"version\":\"3\""))
        #expect(wrongVersion.status == 400 && wrongVersion.body.contains("version"), "\(wrongVersion)")
        #expect(try await pipeline.db.scalar("SELECT count(*) FROM incidents") == 1, "a refused notification wrote something")
        await pipeline.shutdown()
    }

    @Test func titleAndDedupKeyFollowTheGroupNotTheText() {
        let base = AlertmanagerWebhook.Notification(
            groupKey: "{}:{alertname=\"DiskFull\"}", status: "firing", receiver: "klaxon", groupLabels: ["alertname": "DiskFull", "cluster": "eu-1"],
            commonLabels: ["alertname": "DiskFull", "severity": "warning"], commonAnnotations: [:], externalURL: "", truncatedAlerts: 0, alerts: [])
        #expect(base.title == "DiskFull eu-1")
        #expect(base.severity == .warning)
        var summarised = base
        summarised.commonAnnotations = ["summary": "Disk almost full"]
        #expect(summarised.title == "Disk almost full")
        var other = summarised
        other.groupKey = "{}:{alertname=\"VolumeFull\"}"
        #expect(other.dedupKey != summarised.dedupKey && other.title == summarised.title)
        #expect(summarised.dedupKey == AlertmanagerWebhook.dedupKey(groupKey: base.groupKey) && summarised.dedupKey.count == "alertmanager-".count + 32)
    }
}
