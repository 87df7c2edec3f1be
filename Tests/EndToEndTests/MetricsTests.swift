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
            #expect(try await Self.get(port, "/healthz").status == 200)
            #expect(try await Self.get(port, "/readyz").status == 200)
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
}
