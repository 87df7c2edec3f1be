import Foundation
import IngestService
import KlaxonDomain
import KlaxonTestSupport
import Shared
import Testing

/// The pager watches itself (issue 26, point 8): the three services as three `klaxon serve`
/// processes, the canary every 2 s, the watchdog URL on the test's HTTP sink. Round trips go
/// Ingest → Assignment → Notifier → the loopback receiver and each completed one pings the
/// watchdog; no person is paged and no real incident's metric or list shows them. Then Notifier is
/// stalled — SIGSTOP: the process is alive and its port open, it just does nothing — and the pings
/// stop within two intervals while `/readyz?deep=1` turns 503; SIGCONT, and they resume.
@Suite struct CanaryTests {
    static let interval = 2  // seconds

    @Test func watchdogPingsStopWithinTwoIntervalsOfAStalledNotifierAndResume() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: KlaxonCLI.binary), "build the CLI first: swift build --build-tests")
        let ports = (ingest: try await freePort(), assignment: try await freePort(), notifier: try await freePort())
        let pipeline = try await Pipeline(start: []) { config, sink in
            config.ingestHTTPListen = HostPort(host: "127.0.0.1", port: ports.ingest)
            config.assignmentHTTPListen = HostPort(host: "127.0.0.1", port: ports.assignment)
            config.notifierHTTPListen = HostPort(host: "127.0.0.1", port: ports.notifier)
            config.canaryIntervalSeconds = Self.interval
            config.watchdogURL = "\(sink)/watchdog"
        }
        // A real person on a real service: the canary must never page them.
        _ = try await pipeline.seed(users: ["Alice"])
        let servers = try ["notifier", "assignment", "ingest"].map { try ShutdownTests.Server(pipeline, grace: 5, arguments: ["serve", $0]) }
        defer { for server in servers { server.kill() } }
        let notifier = servers[0]
        for port in [ports.ingest, ports.assignment, ports.notifier] {
            #expect(await ShutdownTests.ready(port), "not ready on \(port): \(servers.map(\.output).joined().suffix(3000))")
        }
        let sink = pipeline.sink
        @Sendable func pings() -> Int { sink.requests.filter { $0.uri == "/watchdog" }.count }

        // Round trips complete, one every interval, each pinging the watchdog.
        let running = await eventually(timeout: .seconds(30)) { pings() >= 3 }
        #expect(running, "\(pings()) watchdog pings; logs:\n\(servers.map(\.output).joined().suffix(4000))")
        #expect(sink.requests.allSatisfy { $0.uri == "/watchdog" && $0.method == "GET" }, "\(sink.requests.map { "\($0.method) \($0.uri)" })")

        // Reported: the round trip on Ingest's /metrics, and /readyz?deep=1 on every listener.
        let metrics = try await MetricsTests.get(ports.ingest, "/metrics").body.split(separator: "\n").map(String.init)
        let roundTrip = metrics.first { $0.hasPrefix("klaxon_canary_round_trip_seconds ") }.flatMap { Double($0.split(separator: " ")[1]) }
        #expect(roundTrip.map { $0 > 0 && $0 <= Double(Self.interval) + 0.5 } == true, "klaxon_canary_round_trip_seconds: \(String(describing: roundTrip))")
        #expect(metrics.contains { $0.hasPrefix("klaxon_canary_rounds_total{outcome=\"completed\"}") })
        for port in [ports.ingest, ports.assignment, ports.notifier] {
            let deep = try await MetricsTests.get(port, "/readyz?deep=1")
            #expect(deep.status == 200 && deep.body.hasPrefix("ready; canary round trip "), "port \(port): \(deep.status) \(deep.body)")
            #expect(try await MetricsTests.get(port, "/readyz").body == "ready\n")
        }

        // Never counted as real: no event or incident counted on Ingest, no page on Notifier …
        #expect(!metrics.contains { $0.hasPrefix("klaxon_events_total") || $0.hasPrefix("klaxon_incidents_created_total") }, "\(metrics.filter { $0.contains("events") || $0.contains("incidents") })")
        let notifierMetrics = try await MetricsTests.get(ports.notifier, "/metrics").body
        #expect(!notifierMetrics.contains("klaxon_notifications_total") && !notifierMetrics.contains("klaxon_page_latency_seconds"))
        // … and listed nowhere: incidents, services, users, policies, export.
        let admin = pipeline.client(.assignment)
        let listed: ListIncidentsReply = try await admin.call(Assignment.ListIncidents, ListIncidentsRequest())
        #expect(listed.incidents.isEmpty, "\(listed.incidents.map(\.title))")
        let services: ServiceListMessage = try await admin.call(Admin.ListServices, Empty())
        #expect(services.services.map(\.name) == ["Checkout"])
        let policies: PolicyListMessage = try await admin.call(Admin.ListEscalationPolicies, Empty())
        #expect(!policies.policies.map(\.name).contains(Canary.serviceName))
        let exported: ConfigDocument = try await admin.call(Admin.ExportConfiguration, Empty())
        #expect(!exported.json.contains("anary"), "\(exported.json)")
        await admin.close()
        let people = pipeline.client(.notifier)
        let users: UserListMessage = try await people.call(People.ListUsers, Empty())
        #expect(users.users.map(\.name) == ["Alice"])
        await people.close()
        // The canary's incidents are numbered apart from real ones and resolved after each round.
        let (canaryIncidents, lowestNumber) = try await pipeline.db.pool.withConnection { connection in
            let row = try connection.query("SELECT count(*)::bigint AS n, min(number) AS lowest FROM incidents WHERE canary")
            return (row.int(0, "n")!, row.int64(0, "lowest") ?? 0)
        }
        #expect(canaryIncidents >= 3 && lowestNumber > 1_000_000_000_000_000_000)
        let resolved = await eventually(timeout: .seconds(10)) {
            (try? await pipeline.db.scalar("SELECT count(*) FROM incidents WHERE canary AND status <> 'resolved'")) ?? 1 <= 1
        }
        #expect(resolved, "canary incidents are resolved after their round")

        // Notifier stalls: alive, listening, doing nothing.
        kill(notifier.process.processIdentifier, SIGSTOP)
        try await Task.sleep(for: .seconds(2 * Self.interval))
        let afterTwoIntervals = pings()
        try await Task.sleep(for: .seconds(4 * Self.interval))
        let later = pings()
        print("CanaryTests: \(afterTwoIntervals) pings two intervals after the stall, \(later) four intervals later")
        #expect(later == afterTwoIntervals, "the watchdog kept being pinged while Notifier was stalled")
        let stalled = try await MetricsTests.get(ports.ingest, "/readyz?deep=1")
        #expect(stalled.status == 503 && stalled.body.contains("stalled"), "\(stalled.status) \(stalled.body)")
        #expect(try await MetricsTests.get(ports.ingest, "/readyz").status == 200, "shallow readiness is about this process, not the pipeline")
        let timedOut = try await MetricsTests.get(ports.ingest, "/metrics").body
        #expect(timedOut.contains("klaxon_canary_rounds_total{outcome=\"timed_out\"}"))

        // Restored: the pings resume, deep readiness passes again.
        kill(notifier.process.processIdentifier, SIGCONT)
        let resumed = await eventually(timeout: .seconds(15)) { pings() >= later + 2 }
        #expect(resumed, "\(pings() - later) pings since Notifier was resumed")
        let healthy = await eventually(timeout: .seconds(10)) {
            (try? await MetricsTests.get(ports.ingest, "/readyz?deep=1").status) == 200
        }
        #expect(healthy)
        #expect(sink.requests.allSatisfy { $0.uri == "/watchdog" }, "a person was paged")
    }
}
