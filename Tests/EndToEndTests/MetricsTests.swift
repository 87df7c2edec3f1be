import AsyncHTTPClient
import Foundation
import KlaxonTestSupport
import Shared
import Testing

/// Every service's HTTP listener answers /healthz, /readyz and /metrics (issue 13, point 3, in
/// part: the RPC layer's metrics — calls by method and status, durations, connections, refusals).
@Suite struct MetricsTests {
    static func get(_ port: Int, _ path: String) async throws -> (status: UInt, body: String) {
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)"), timeout: .seconds(10))
        let bytes = try await response.body.collect(upTo: 8 << 20)
        return (response.status.code, String(buffer: bytes))
    }

    @Test func everyListenerServesHealthReadinessAndMetrics() async throws {
        let pipeline = try await Pipeline()
        let service = try await pipeline.seed(users: ["Alice"])
        let ingest = pipeline.client(.ingest, token: nil)
        let _: EventResult = try await ingest.call(Ingest.SendEvent, Pipeline.trigger(service.routingKey, dedupKey: "metrics"))
        #expect(await ingest.failure(Ingest.SendEvent, Pipeline.trigger("short"))?.code == .invalidArgument)
        _ = await pipeline.sink.waitForRequests(1, timeout: .seconds(10))
        let sendEvent = "method=\"klaxon.ingest.v1.Ingest/SendEvent\""
        for port in [pipeline.ingestHTTPPort, pipeline.assignmentHTTPPort, pipeline.notifierHTTPPort] {
            // One shape on every listener, the README's: text `ok` and `ready`.
            let health = try await Self.get(port, "/healthz"), ready = try await Self.get(port, "/readyz")
            #expect(health.status == 200 && health.body == "ok\n", "port \(port): \(health.body)")
            #expect(ready.status == 200 && ready.body == "ready\n", "port \(port): \(ready.body)")
            let metrics = try await Self.get(port, "/metrics")
            #expect(metrics.status == 200)
            let lines = metrics.body.split(separator: "\n").map(String.init)
            #expect(lines.contains { $0.hasPrefix("klaxon_rpc_calls_total{") && $0.contains(sendEvent) && $0.contains("code=\"OK\"") })
            #expect(lines.contains { $0.hasPrefix("klaxon_rpc_calls_total{") && $0.contains(sendEvent) && $0.contains("code=\"INVALID_ARGUMENT\"") })
            #expect(lines.contains { $0.hasPrefix("klaxon_rpc_duration_seconds_bucket{") && $0.contains(sendEvent) })
            // Service-to-service calls are counted too (the relays' batch calls).
            #expect(lines.contains { $0.hasPrefix("klaxon_rpc_calls_total{") && $0.contains("klaxon.assignment.v1.Assignment/Incident") })
            #expect(lines.contains { $0.hasPrefix("klaxon_rpc_connections_open{") })
        }
        await ingest.close()
        await pipeline.shutdown()
    }

    /// The domain metrics (issue 13, point 3): events by outcome, incidents created, notifications
    /// by channel and outcome, page latency and timer lag histograms, outbox depth and oldest age
    /// per destination, pool usage, refusals — on all three /metrics endpoints, during a real run.
    @Test func domainMetricsAppearOnEveryEndpoint() async throws {
        let pipeline = try await Pipeline(clock: ManualClock())
        // Two levels one second apart: the escalation is a timer the test's clock fires.
        let url = "\(pipeline.sink.url)/hooks"
        let service = try await pipeline.db.pool.transaction { connection in
            try Seed.service(
                connection, name: "Metrics", routingKey: Seed.newRoutingKey(),
                users: ["Alice", "Bob"].map { Seed.User(name: $0, email: "\($0.lowercased())@example.com", webhookURL: url) },
                levels: [[0], [1]], escalationDelaySeconds: 1)
        }
        let ingest = pipeline.client(.ingest, token: nil)
        let created: EventResult = try await ingest.call(Ingest.SendEvent, Pipeline.trigger(service.routingKey, dedupKey: "m-1"))
        #expect(created.outcome == .created)
        let again: EventResult = try await ingest.call(Ingest.SendEvent, Pipeline.trigger(service.routingKey, dedupKey: "m-1"))
        #expect(again.outcome == .deduplicated)
        let unknown = Pipeline.trigger(Seed.newRoutingKey(), dedupKey: "m-2")
        #expect(await ingest.failure(Ingest.SendEvent, unknown)?.code == .invalidArgument)
        // Over SendEvent's size limit: refused before decoding, counted as a refusal.
        var huge = Pipeline.trigger(service.routingKey, dedupKey: "m-3")
        huge.payload?.customDetails = ["blob": String(repeating: "x", count: 600 * 1024)]
        #expect(await ingest.failure(Ingest.SendEvent, huge)?.code == .invalidArgument)
        // Alice at once, then Bob when the escalation timer fires a second later.
        // The clock runs to the escalation; settled, every outcome is written.
        #expect(await pipeline.runClock { pipeline.sink.requests.count >= 2 }, "the escalation did not page Bob")
        await pipeline.settle()
        for port in [pipeline.ingestHTTPPort, pipeline.assignmentHTTPPort, pipeline.notifierHTTPPort] {
            let body = try await Self.get(port, "/metrics").body
            let lines = body.split(separator: "\n").map(String.init)
            func has(_ prefix: String, _ parts: String...) -> Bool {
                lines.contains { line in line.hasPrefix(prefix) && parts.allSatisfy { line.contains($0) } }
            }
            #expect(has("klaxon_events_total{", "outcome=\"created\"") && has("klaxon_events_total{", "dialect=\"binary\""), "port \(port)")
            #expect(has("klaxon_events_total{", "outcome=\"deduplicated\""))
            #expect(has("klaxon_events_total{", "outcome=\"invalid_argument\""))
            #expect(has("klaxon_incidents_created_total"))
            #expect(has("klaxon_notifications_total{", "channel=\"webhook\"", "outcome=\"sent\""))
            #expect(has("klaxon_page_latency_seconds_bucket{", "channel=\"webhook\""))
            #expect(has("klaxon_page_latency_seconds_count{", "channel=\"webhook\""))
            #expect(has("klaxon_timer_lag_seconds_bucket{"))
            #expect(has("klaxon_timer_lag_seconds_count"))
            #expect(has("klaxon_outbox_depth{", "destination=\"assignment\""))
            #expect(has("klaxon_outbox_depth{", "destination=\"notifier\""))
            #expect(has("klaxon_outbox_oldest_age_seconds{", "destination=\"notifier\""))
            #expect(has("klaxon_database_pool_connections{", "state=\"open\""))
            #expect(has("klaxon_database_pool_waiting"))
            #expect(has("klaxon_rpc_refusals_total{", "reason=\"request_size\""))
        }
        await ingest.close()
        await pipeline.shutdown()
    }
}
