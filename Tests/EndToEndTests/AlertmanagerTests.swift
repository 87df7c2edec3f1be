import AsyncHTTPClient
import Foundation
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
        let process = Process()
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
        await pipeline.shutdown()
    }
}
