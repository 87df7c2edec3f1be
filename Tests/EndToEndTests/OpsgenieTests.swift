import AsyncHTTPClient
import Foundation
import IngestService
import KlaxonTestSupport
import NIOCore
import Shared
import Testing

/// The Opsgenie Alert API (issue 27, point 1), checked by the clients that speak it: Opsgenie's
/// own Python SDK (`opsgenie-sdk` from PyPI, given the host) and the real Alertmanager with
/// `opsgenie_configs` (given the API URL, to which it appends `v2/alerts`).
@Suite struct OpsgenieTests {
    static let sdkClient = #"""
    import json, sys
    import opsgenie_sdk
    host, key = sys.argv[1], sys.argv[2]
    conf = opsgenie_sdk.configuration.Configuration()
    conf.host = host
    conf.api_key["Authorization"] = key
    alerts = opsgenie_sdk.AlertApi(api_client=opsgenie_sdk.api_client.ApiClient(configuration=conf))
    out = {}

    def status(name, response):
        data = alerts.get_request_status(request_id=response.request_id).data
        out[name] = {"result": response.result, "success": data.is_success, "status": data.status,
                     "alert_id": data.alert_id, "alias": data.alias, "action": data.action}

    status("create", alerts.create_alert(create_alert_payload=opsgenie_sdk.CreateAlertPayload(
        message="Disk full on db-1", alias="disk-db-1", description="90% used on /var", priority="P1",
        source="zabbix", details={"free": "10%"}, note="opened by Zabbix")))
    status("create_again", alerts.create_alert(create_alert_payload=opsgenie_sdk.CreateAlertPayload(
        message="Disk full on db-1", alias="disk-db-1", priority="P1")))
    status("acknowledge", alerts.acknowledge_alert(identifier="disk-db-1", identifier_type="alias",
        acknowledge_alert_payload=opsgenie_sdk.AcknowledgeAlertPayload(user="alice", note="looking")))
    status("unacknowledge", alerts.un_acknowledge_alert(identifier="disk-db-1", identifier_type="alias",
        un_acknowledge_alert_payload=opsgenie_sdk.UnAcknowledgeAlertPayload(user="alice")))
    status("note", alerts.add_note(identifier="disk-db-1", identifier_type="alias",
        add_note_to_alert_payload=opsgenie_sdk.AddNoteToAlertPayload(note="freed 5 GB", user="alice")))
    status("message", alerts.update_alert_message(identifier="disk-db-1", identifier_type="alias",
        update_alert_message_payload=opsgenie_sdk.UpdateAlertMessagePayload(message="Disk 95% full on db-1")))
    status("close", alerts.close_alert(identifier="disk-db-1", identifier_type="alias",
        close_alert_payload=opsgenie_sdk.CloseAlertPayload(user="alice", note="done")))
    status("close_again", alerts.close_alert(identifier="disk-db-1", identifier_type="alias",
        close_alert_payload=opsgenie_sdk.CloseAlertPayload(user="alice")))
    status("close_unknown", alerts.close_alert(identifier="never-created", identifier_type="alias",
        close_alert_payload=opsgenie_sdk.CloseAlertPayload(user="alice")))
    status("ack_by_tiny", alerts.acknowledge_alert(identifier=sys.argv[3], identifier_type="tiny",
        acknowledge_alert_payload=opsgenie_sdk.AcknowledgeAlertPayload(user="bob")))
    try:
        alerts.create_alert(create_alert_payload=opsgenie_sdk.CreateAlertPayload(message="   "))
        out["blank_message"] = "accepted"
    except Exception as error:  # the SDK raises ConfigurationException for a 422
        out["blank_message"] = str(error)
    bad = opsgenie_sdk.configuration.Configuration()
    bad.host = host
    bad.api_key["Authorization"] = "z" * 32
    try:
        opsgenie_sdk.AlertApi(api_client=opsgenie_sdk.api_client.ApiClient(configuration=bad)).create_alert(
            create_alert_payload=opsgenie_sdk.CreateAlertPayload(message="x"))
        out["bad_key"] = "accepted"
    except Exception as error:  # AuthenticationException for a 401
        out["bad_key"] = type(error).__name__ + ": " + str(error)
    print(json.dumps(out))
    """#

    @Test func opsgeniesOwnPythonSDK() async throws {
        let pipeline = try await Pipeline()
        let service = try await pipeline.seed(users: ["Alice"])
        // The second incident, acknowledged by its tiny id (its number) below.
        let other: EventResult = try await pipeline.client(.ingest, token: nil).call(
            Ingest.SendEvent, Pipeline.trigger(service.routingKey, dedupKey: "other"))
        let number = try #require(try await pipeline.db.scalar("SELECT number FROM incidents WHERE id = \(other.incidentID)"))
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("klaxon-og-\(UUID().uuidString).py")
        try Self.sdkClient.write(to: work, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: work) }
        let arguments = [work.path, "http://127.0.0.1:\(pipeline.ingestHTTPPort)", service.routingKey, String(number)]
        let run = try await offCooperativePool { try ThirdPartyClientTests.runBlocking("python3", arguments) }
        try #require(run.status == 0, "opsgenie-sdk failed: \(run.output)")
        let line = try #require(run.output.split(separator: "\n").last { $0.hasPrefix("{") })
        let out = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        func step(_ name: String) -> [String: Any] { out[name] as? [String: Any] ?? [:] }
        let incidentID = try #require(try await pipeline.db.scalar("SELECT id FROM incidents WHERE dedup_key = 'disk-db-1'"))
        #expect(step("create")["result"] as? String == "Request will be processed")
        #expect(step("create")["success"] as? Bool == true && step("create")["status"] as? String == "Created alert")
        #expect(step("create")["alert_id"] as? String == String(incidentID) && step("create")["alias"] as? String == "disk-db-1")
        #expect(step("create_again")["status"] as? String == "Alert count incremented")
        for name in ["acknowledge", "unacknowledge", "note", "message", "close", "close_again", "ack_by_tiny"] {
            #expect(step(name)["success"] as? Bool == true, "\(name): \(step(name))")
        }
        #expect(step("close_unknown")["success"] as? Bool == false && step("close_unknown")["status"] as? String == "Alert does not exist")
        #expect(step("close")["action"] as? String == "Close")
        #expect((out["blank_message"] as? String)?.contains("(422)") == true, "\(out)")
        #expect((out["bad_key"] as? String)?.contains("401") == true, "\(out)")

        // What Klaxon holds: one incident, P1, retitled, acknowledged then not, a note, closed.
        let row = try await pipeline.db.pool.withConnection { connection in
            try connection.query("SELECT title, status, priority, severity, details ->> 'description' AS description FROM incidents WHERE id = $1", [incidentID])
        }
        #expect(row.string(0, "title") == "Disk 95% full on db-1" && row.string(0, "status") == "resolved" && row.string(0, "priority") == "P1")
        #expect(row.string(0, "severity") == "critical" && row.string(0, "description") == "90% used on /var")
        let timeline = try await pipeline.db.pool.withConnection { connection in
            let rows = try connection.query("SELECT type FROM timeline_entries WHERE incident_id = $1 ORDER BY id", [incidentID])
            return (0..<rows.count).map { rows.string($0, "type")! }
        }
        for type in ["trigger", "alert_deduplicated", "acknowledge", "unacknowledge", "note", "resolve"] {
            #expect(timeline.contains(type), "\(type) missing from \(timeline)")
        }
        #expect(try await pipeline.db.scalar("SELECT count(*) FROM incidents WHERE status = 'acknowledged' AND id = \(other.incidentID)") == 1)
        #expect(try await pipeline.db.scalar("SELECT count(*) FROM incidents") == 2, "the unknown alias's close created something")
        // Counted by dialect: the creates, acknowledges and closes that went through the event path.
        let metrics = try await MetricsTests.get(pipeline.ingestHTTPPort, "/metrics").body
        #expect(metrics.split(separator: "\n").contains { $0.hasPrefix("klaxon_events_total{") && $0.contains("dialect=\"opsgenie\"") && $0.contains("outcome=\"created\"") })
        await pipeline.shutdown()
    }

    @Test func alertmanagersOpsgenieConfigs() async throws {
        let pipeline = try await Pipeline()
        let service = try await pipeline.seed(users: ["Alice"])
        let alertmanager = try await AlertmanagerWebhookTests.Running(config: """
            route:
              receiver: klaxon
              group_by: ['alertname']
              group_wait: 1s
              group_interval: 1s
              repeat_interval: 1h
            receivers:
              - name: klaxon
                opsgenie_configs:
                  - api_key: \(service.routingKey)
                    api_url: http://127.0.0.1:\(pipeline.ingestHTTPPort)/
                    send_resolved: true
                    update_alerts: true
                    message: '{{ .CommonAnnotations.summary }} ({{ len .Alerts }} alerts)'
                    description: 'instances: {{ range .Alerts }}{{ .Labels.instance }} {{ end }}'
                    priority: P2
            """)
        defer { alertmanager.stop() }
        try await alertmanager.post([AlertmanagerWebhookTests.alert(["alertname": "DiskFull", "instance": "db-1"], summary: "Disk full")])
        let opened = try await eventually(timeout: .seconds(30)) {
            try await pipeline.db.scalar("SELECT count(*) FROM incidents WHERE status = 'triggered'") == 1
        }
        try #require(opened, "no incident from Alertmanager's opsgenie_configs: \(alertmanager.output.suffix(3000))")
        let (title, alias) = try await pipeline.db.pool.withConnection { connection in
            let row = try connection.query("SELECT title, dedup_key FROM incidents")
            return (row.string(0, "title")!, row.string(0, "dedup_key")!)
        }
        #expect(title == "Disk full (1 alerts)")
        // Alertmanager's alias: the hash of its group key (64 hex digits), not the text.
        #expect(alias.count == 64 && alias.allSatisfy(\.isHexDigit), "\(alias)")
        _ = await pipeline.sink.waitForRequests(1, timeout: .seconds(20))
        // A second alert joins: update_alerts retitles it and rewrites the description; no new incident, no page.
        try await alertmanager.post([AlertmanagerWebhookTests.alert(["alertname": "DiskFull", "instance": "db-2"], summary: "Disk full")])
        let updated = try await eventually(timeout: .seconds(30)) {
            try await pipeline.db.scalar("SELECT count(*) FROM incidents WHERE title = 'Disk full (2 alerts)'") == 1
        }
        #expect(updated, "update_alerts did not retitle the incident: \(alertmanager.output.suffix(2000))")
        // Alertmanager sends the description right after the message.
        let described = try await eventually(timeout: .seconds(10)) {
            try await pipeline.db.scalar("SELECT count(*) FROM incidents WHERE details ->> 'description' LIKE '%db-2%'") == 1
        }
        #expect(described, "update_alerts did not rewrite the description")
        #expect(try await pipeline.db.scalar("SELECT count(*) FROM incidents") == 1)
        try await Task.sleep(for: .seconds(1))
        #expect(pipeline.sink.count == 1, "the update paged again")
        // The group resolves: Alertmanager closes the alert by alias.
        try await alertmanager.post([
            AlertmanagerWebhookTests.alert(["alertname": "DiskFull", "instance": "db-1"], summary: "Disk full", ended: true),
            AlertmanagerWebhookTests.alert(["alertname": "DiskFull", "instance": "db-2"], summary: "Disk full", ended: true),
        ])
        let closed = try await eventually(timeout: .seconds(30)) {
            try await pipeline.db.scalar("SELECT count(*) FROM incidents WHERE status = 'resolved'") == 1
        }
        #expect(closed, "the resolved group did not close the alert: \(alertmanager.output.suffix(2000))")
        let log = alertmanager.output
        #expect(log.contains("Notify success") && !log.contains("Notify for alerts failed"), "\(log.suffix(3000))")
        await pipeline.shutdown()
    }
}
