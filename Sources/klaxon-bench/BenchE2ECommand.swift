import ArgumentParser
import Foundation
import Histogram
import KlaxonDomain
import KlaxonTestSupport
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Shared

#if canImport(Glibc)
import Glibc
#endif

/// What users feel, end to end: a trigger sent over the binary protocol until the page arrives
/// at a webhook sink. The services run as child processes (one `klaxon serve`, or one process
/// per service); this process is the load generator, the sink and the stopwatch, on the same
/// machine. `scripts/bench-e2e` runs it against a fresh, durable PostgreSQL.
struct BenchE2ECommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-e2e",
        abstract: "Measure trigger → page end to end, beside Alertmanager (scripts/bench-e2e runs this).")

    enum Layout: String, ExpressibleByArgument, CaseIterable { case serve, separate }

    @Option(help: "serve: all three services in one `klaxon serve`; separate: one process per service.")
    var layout: Layout = .serve
    @Option(help: "Scenarios: surge, latency, isolation, timers, alertmanager, sms (comma-separated).")
    var scenarios = "surge,latency,isolation,timers,alertmanager,sms"
    @Option(help: "Incidents in the sms scenario (each texts one person through a Twilio stand-in).")
    var smsIncidents = 200
    @Option(help: "New incidents sent at full speed in the surge (each pages two users).")
    var surge = 10_000
    @Option(help: "Open-loop trigger rates for the latency scenario (comma-separated, per second).")
    var rates = "100,1000"
    @Option(help: "Seconds each open-loop rate runs.")
    var seconds = 10
    @Option(help: "Triggers per second in the isolation scenario.")
    var isolationRate = 100
    @Option(help: "Pending ack timeouts in the timers scenario.")
    var timers = 100_000
    @Option(help: "Seconds over which those timers fall due.")
    var timerSpreadSeconds = 600
    @Option(help: "Timers due at the same instant.")
    var dueAtOnce = 10_000
    @Option(help: "Database connections per service process.")
    var poolSize = 8
    @Option(help: "Append the result table (Markdown) to this file.")
    var output: String?

    var chosen: Set<String> { Set(scenarios.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }) }

    func validate() throws {
        let unknown = chosen.subtracting(["surge", "latency", "isolation", "timers", "alertmanager", "sms"])
        guard unknown.isEmpty else { throw ValidationError("unknown scenario \(unknown.sorted().joined(separator: ", "))") }
    }

    func run() async throws {
        var logger = Logger(label: "bench-e2e")
        logger.logLevel = .error
        let config = try KlaxonConfig.fromEnvironment(ProcessInfo.processInfo.environment)
        let runID = String(UUID().uuidString.prefix(8)).lowercased()
        var table = ResultTable()

        let sink = try await ArrivalSink.start()
        defer { Task { await sink.shutdown() } }
        let blackhole = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in channel.eventLoop.makeSucceededVoidFuture() }
            .bind(host: "127.0.0.1", port: 0).get()
        let refusedPort = try await BenchIngestCommand.freePort()  // nobody listens there
        let sinkRate = try await offThread { try HTTPLoad.capacity(port: sink.port, requests: 40_000, connections: 4) }
        say(String(format: "webhook sink capacity: %.0f requests/s (4 keep-alive connections, measured before the run)", sinkRate))
        table.note("webhook sink capacity", String(format: "%.0f requests/s", sinkRate))

        let pool = PostgresPool(url: config.databaseURL, logger: logger)
        try await Migrator.migrate(pool, now: SystemWallClock().nowMs(), logger: logger)
        let services = try await seed(pool, runID: runID, sink: sink.url, blackhole: blackhole.localAddress!.port!, refused: refusedPort)

        // SMS through Twilio's API, played by the sink (it records the form posts). The throttle
        // is lifted: this measures the pipeline, not the bundling a real phone gets in a surge.
        let twilio = [
            "KLAXON_TWILIO_BASE_URL": sink.url, "KLAXON_TWILIO_ACCOUNT_SID": "AC" + String(repeating: "0", count: 32),
            "KLAXON_TWILIO_AUTH_TOKEN": "bench-twilio-token-0123456789abcdef", "KLAXON_TWILIO_FROM": "+15005550006",
            "KLAXON_PUBLIC_URL": "http://127.0.0.1:9", "KLAXON_LINK_SIGNING_KEY": "bench-link-key-0123456789abcdef0123",
            "KLAXON_NOTIFY_PHONE_GAP_SECONDS": "0", "KLAXON_NOTIFY_SMS_PER_15_MINUTES": "1000000",
        ]
        let cluster = try await ServiceCluster.start(layout: layout, databaseURL: config.databaseURL, poolSize: poolSize, extra: twilio)
        defer { cluster.stop() }
        let outbound = ProcessInfo.processInfo.environment["KLAXON_PAGES_HTTP_CLIENT"] ?? "lean"
        say("pages go out through the \(outbound) HTTP client (KLAXON_PAGES_HTTP_CLIENT)")
        say("services: \(layout.rawValue) — " + cluster.processes.map { "\($0.name) pid \($0.process.processIdentifier)" }.joined(separator: ", "))

        if chosen.contains("surge") {
            try await runSurge(services.surge, sink: sink, cluster: cluster, pool: pool, runID: runID, table: &table)
        }
        if chosen.contains("latency") {
            let klaxonPIDs = Set(cluster.processes.map(\.process.processIdentifier))
            for rate in rates.split(separator: ",").compactMap({ Int($0.trimmingCharacters(in: .whitespaces)) }) {
                let cpuStart = CPUAccount.sample()
                let started = ContinuousClock.now
                let result = try await openLoop(
                    routingKey: services.surge, rate: rate, prefix: "lat\(rate)-\(runID)", paths: nil, sink: sink, port: cluster.ingestPort)
                // Until the last page: whether the machine kept up is what the percentiles hang on.
                let wall = ContinuousClock.now - started
                let cpu = cpuStart.split(
                    to: CPUAccount.sample(), klaxon: klaxonPIDs, wall: Double(wall.components.seconds) + Double(wall.components.attoseconds) / 1e18)
                let perPage = 1000 * (cpu.klaxon + cpu.postgres) / Double(max(result.pages, 1))
                say(String(format: "  CPU: %@; Klaxon + PostgreSQL %.3f ms per page", cpu.describe(), perPage))
                table.row(
                    "… CPU at \(rate) triggers/s (until the last page)", String(format: "%@; Klaxon + PostgreSQL %.3f ms per page", cpu.describe(), perPage))
                table.figures["klaxon.p50.\(rate)"] = result.ms(50)
                table.figures["klaxon.p99.\(rate)"] = result.ms(99)
                table.row("Klaxon latency at \(rate) triggers/s (ingest reply → page)", result.describe)
                if let stages = await Self.stages(pool, prefix: "lat\(rate)-\(runID)") {
                    say("  by stage: \(stages)")
                    table.row("… where the time went at \(rate) triggers/s (incident timelines)", stages)
                }
            }
        }
        if chosen.contains("sms") {
            // 200 incidents at 20 a second, each texting one person: ingest reply → the SMS request at "Twilio".
            let result = try await openLoop(
                routingKey: services.sms, rate: 20, prefix: "sms-\(runID)", paths: nil, sink: sink, port: cluster.ingestPort,
                calls: smsIncidents, pagesPerTrigger: 1, keyInSummary: true)
            table.figures["klaxon.sms.p50"] = result.ms(50)
            table.figures["klaxon.sms.p99"] = result.ms(99)
            table.row("SMS through a Twilio-compatible API, \(smsIncidents) incidents at 20/s (ingest reply → SMS request)", result.describe)
        }
        if chosen.contains("isolation") {
            for (name, key) in [("never answers", services.isolationDead), ("refuses connections", services.isolationRefused)] {
                let result = try await openLoop(
                    routingKey: key, rate: isolationRate, prefix: "iso-\(name.prefix(5))-\(runID)", paths: ["/iso/a", "/iso/b"],
                    sink: sink, port: cluster.ingestPort)
                table.row("Isolation, a third endpoint that \(name), \(isolationRate) triggers/s: others' pages", result.describe)
            }
        }
        for process in cluster.processes {
            table.row("Peak RSS, \(process.name)", String(format: "%.0f MiB", Double(process.peakRSSKiB()) / 1024))
        }
        if chosen.contains("timers") {
            try await cluster.addAssignmentReplica()
            try await runTimers(pool, service: services.timersServiceID, users: services.timersUsers, runID: runID, table: &table)
        }
        cluster.stop()
        if chosen.contains("alertmanager") {
            try await runAlertmanager(sink: sink, runID: runID, table: &table)
        }
        await pool.shutdown()
        say("")
        say(table.markdown(layout: layout))
        if let output {
            let text = table.markdown(layout: layout) + "\n"
            if let handle = FileHandle(forWritingAtPath: output) {
                handle.seekToEndOfFile()
                handle.write(Data(text.utf8))
                try handle.close()
            } else {
                try text.write(toFile: output, atomically: true, encoding: .utf8)
            }
        }
    }

    // MARK: Scenarios

    func runSurge(
        _ routingKey: String, sink: ArrivalSink, cluster: ServiceCluster, pool: PostgresPool, runID: String, table: inout ResultTable
    ) async throws {
        let prefix = "surge-\(runID)"
        let statements = await StatementCount(pool: pool)
        say("surge: \(surge) new incidents at full speed (8 connections × 64 in flight)…")
        let klaxonPIDs = Set(cluster.processes.map(\.process.processIdentifier))
        let cpuStart = CPUAccount.sample()
        let report = try await offThread {
            try LoadGenerator(port: cluster.ingestPort, connections: 8, inFlight: 64)
                .run(calls: surge, frame: { Self.triggerFrame(routingKey, key: "\(prefix)-\($0)", index: $0) }, inspect: Self.outcome)
        }
        guard report.errors == 0 else { throw BenchError("surge: \(report.errors) calls failed: \(report.firstError ?? "")") }
        let cpuIngested = CPUAccount.sample()
        let lastReply = report.startNanos + UInt64(report.seconds * 1e9)
        let expected = surge * 2
        let arrived = await sink.wait(prefix: prefix, pages: expected, timeout: .seconds(300))
        let cpuEnd = CPUAccount.sample()
        let lastPage = arrived.max() ?? 0
        let afterLastReply = Double(Int64(lastPage) - Int64(lastReply)) / 1e9
        let pagesPerSecond = Double(arrived.count) / (Double(lastPage - report.startNanos) / 1e9)
        say(String(
            format: "surge: Ingest %.0f events/s; %d of %d pages, the last %.2f s after the last ingest reply; %.0f pages/s end to end",
            report.rate, arrived.count, expected, afterLastReply, pagesPerSecond))
        let ingestCPU = cpuStart.split(to: cpuIngested, klaxon: klaxonPIDs, wall: report.seconds)
        let wholeCPU = cpuStart.split(to: cpuEnd, klaxon: klaxonPIDs, wall: Double(lastPage - report.startNanos) / 1e9)
        let perPage = 1000 * (wholeCPU.klaxon + wholeCPU.postgres) / Double(max(arrived.count, 1))
        let klaxonPerPage = 1000 * wholeCPU.klaxon / Double(max(arrived.count, 1))
        say("surge CPU while Ingest accepted (\(String(format: "%.2f", report.seconds)) s): \(ingestCPU.describe())")
        say("surge CPU until the last page: \(wholeCPU.describe())")
        say(String(format: "surge CPU per page (Klaxon + PostgreSQL): %.3f ms (Klaxon alone %.3f ms)", perPage, klaxonPerPage))
        let perIncident = await statements.perIncident(surge)
        say("surge statements per incident (pg_stat_statements, whole pipeline): \(perIncident)")
        table.figures["klaxon.surge"] = pagesPerSecond
        table.row("Surge: Ingest's rate with the pipeline running", String(format: "%.0f events/s (%d new incidents)", report.rate, surge))
        table.row(
            "Surge: pages end to end", String(
                format: "%.0f pages/s; %d of %d pages, the last %.2f s after the last ingest reply", pagesPerSecond, arrived.count,
                expected, afterLastReply))
        table.row("Surge: CPU while Ingest accepted", ingestCPU.describe())
        table.row("Surge: CPU per page (Klaxon + PostgreSQL, until the last page)", String(format: "%.3f ms (Klaxon alone %.3f ms)", perPage, klaxonPerPage))
        table.row("Surge: statements per incident (pg_stat_statements)", perIncident)
    }

    /// Where a run's time went, from its incidents' timelines (each entry carries the instant its
    /// service began the step): Ingest's write to Assignment's step (Ingest's commit, its outbox
    /// relay, the call), Assignment's step to Notifier's intake (Assignment's commit, relay, call),
    /// the intake to the send (the intake's commit, the dispatcher's claim), p50 / p99 of each.
    static func stages(_ pool: PostgresPool, prefix: String) async -> String? {
        try? await pool.withConnection { connection -> String in
            let rows = try connection.query(
                """
                WITH t AS (
                    SELECT min(e.at_ms) FILTER (WHERE e.type = 'trigger') AS trig, min(e.at_ms) FILTER (WHERE e.type = 'assign') AS assign,
                           min(e.at_ms) FILTER (WHERE e.type = 'notify_scheduled') AS sched,
                           max(e.at_ms) FILTER (WHERE e.type = 'notify_sent') AS sent
                    FROM timeline_entries e JOIN incidents i ON i.id = e.incident_id
                    WHERE i.dedup_key LIKE $1 || '%' GROUP BY e.incident_id)
                SELECT s.name, percentile_disc(0.5) WITHIN GROUP (ORDER BY s.ms)::text AS p50,
                       percentile_disc(0.99) WITHIN GROUP (ORDER BY s.ms)::text AS p99
                FROM t, LATERAL (VALUES (1, 'Ingest → Assignment', t.assign - t.trig), (2, 'Assignment → Notifier', t.sched - t.assign),
                                        (3, 'Notifier intake → last send', t.sent - t.sched)) AS s(n, name, ms)
                GROUP BY s.n, s.name ORDER BY s.n
                """, [prefix])
            return (0..<rows.count).map { row in
                "\(rows.string(row, "name") ?? "") p50 \(rows.string(row, "p50") ?? "?") ms, p99 \(rows.string(row, "p99") ?? "?") ms"
            }.joined(separator: "; ")
        }
    }

    struct LatencyResult {
        var rate: Int
        var sent: Int
        var pages: Int
        var expected: Int
        var histogram: Histogram<UInt64>
        var describe: String {
            String(
                format: "p50 %.1f ms, p99 %.1f ms, p99.9 %.1f ms (%d of %d pages)", ms(50), ms(99), ms(99.9), pages, expected)
        }
        func ms(_ percentile: Double) -> Double { Double(histogram.valueAtPercentile(percentile)) / 1000 }
    }

    /// Triggers at `rate` per second for `seconds`; latency from each ingest reply to each page of
    /// that incident (only those sent to `paths`, when given).
    func openLoop(
        routingKey: String, rate: Int, prefix: String, paths: Set<String>?, sink: ArrivalSink, port: Int,
        calls count: Int? = nil, pagesPerTrigger: Int = 2, keyInSummary: Bool = false
    ) async throws -> LatencyResult {
        let calls = count ?? rate * seconds
        say("open loop: \(rate) triggers/s, \(calls) triggers (\(prefix))…")
        let report = try await offThread {
            try LoadGenerator(port: port, connections: 4, inFlight: 64, rate: Double(rate))
                .run(calls: calls, frame: { Self.triggerFrame(routingKey, key: "\(prefix)-\($0)", index: $0, keyInSummary: keyInSummary) }, inspect: Self.outcome)
        }
        guard report.errors == 0 else { throw BenchError("\(prefix): \(report.errors) calls failed: \(report.firstError ?? "")") }
        let expected = calls * pagesPerTrigger
        _ = await sink.wait(prefix: prefix, pages: expected, timeout: .seconds(60), paths: paths)
        var histogram = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
        var pages = 0
        for (key, arrivals) in sink.arrivals(prefix: prefix, paths: paths) {
            guard let index = Int(key.split(separator: "-").last ?? ""), index < calls else { continue }
            let reply = report.replyNanos[index]
            for arrival in arrivals {
                pages += 1
                _ = histogram.record(UInt64(max(Int64(arrival) - Int64(reply), 1_000) / 1000))
            }
        }
        let result = LatencyResult(rate: rate, sent: calls, pages: pages, expected: expected, histogram: histogram)
        say("  \(result.describe)")
        return result
    }

    func runTimers(_ pool: PostgresPool, service: Int64, users: [Int64], runID: String, table: inout ResultTable) async throws {
        let start = SystemWallClock().nowMs() + 10_000
        let spreadMs = Int64(timerSpreadSeconds) * 1000
        let timers = self.timers, dueAtOnce = self.dueAtOnce
        say("timers: seeding \(timers) acknowledged incidents with ack timeouts over \(timerSpreadSeconds) s, and \(dueAtOnce) due at once…")
        try await pool.transaction { connection in
            try Seed.acknowledgedIncidents(connection, service: service, users: users, prefix: "spread-\(runID)", count: timers, firstDue: start, spreadMs: spreadMs)
            try Seed.acknowledgedIncidents(connection, service: service, users: users, prefix: "once-\(runID)", count: dueAtOnce, firstDue: start + 5_000, spreadMs: 0)
        }
        say("timers: two Assignment replicas fire them; waiting \(timerSpreadSeconds + 15) s…")
        let deadline = start + spreadMs + 15_000
        while SystemWallClock().nowMs() < deadline {
            try await Task.sleep(for: .seconds(5))
            let fired = try await pool.withConnection { connection in
                try connection.query(
                    "SELECT count(*) AS n FROM incidents WHERE service_id = $1 AND status = 'triggered'", [service]).int(0, "n")!
            }
            if fired >= timers + dueAtOnce { break }
        }
        for (label, prefix) in [("spread", "spread-\(runID)"), ("once", "once-\(runID)")] {
            let rows = try await pool.withConnection { connection in
                try connection.query(
                    """
                    SELECT i.id, (i.details->>'due')::bigint AS due, count(t.id) AS fired, min(t.at_ms) AS at
                    FROM incidents i LEFT JOIN timeline_entries t ON t.incident_id = i.id AND t.type = 'ack_timeout'
                    WHERE i.service_id = $1 AND i.dedup_key LIKE $2 GROUP BY i.id
                    """, [service, prefix + "-%"])
            }
            var histogram = Histogram<UInt64>(highestTrackableValue: 3_600_000, numberOfSignificantValueDigits: .three)
            var twice = 0, never = 0, last: Int64 = 0
            for row in 0..<rows.count {
                let fired = rows.int(row, "fired")!
                if fired == 0 { never += 1; continue }
                if fired > 1 { twice += 1 }
                let lag = rows.int64(row, "at")! - rows.int64(row, "due")!
                last = max(last, lag)
                _ = histogram.record(UInt64(max(lag, 0)))
            }
            if label == "spread" {
                table.row(
                    "Timers: \(timers) ack timeouts over \(timerSpreadSeconds) s, two Assignment replicas",
                    "lag p50 \(histogram.valueAtPercentile(50)) ms, p99 \(histogram.valueAtPercentile(99)) ms, max \(histogram.max) ms; fired twice: \(twice); not fired: \(never)")
            } else {
                table.row(
                    "Timers: \(dueAtOnce) due at the same instant", "all fired within \(last) ms of due; fired twice: \(twice); not fired: \(never)")
            }
            say("timers \(label): p99 lag \(histogram.valueAtPercentile(99)) ms, max \(last) ms, twice \(twice), never \(never)")
        }
    }

    func runAlertmanager(sink: ArrivalSink, runID: String, table: inout ResultTable) async throws {
        let binary = "/usr/bin/prometheus-alertmanager"
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw BenchError("\(binary) is not installed (apt-get install prometheus-alertmanager)")
        }
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("klaxon-am-\(runID)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        let port = try await BenchIngestCommand.freePort()
        try """
        route:
          receiver: sink
          group_by: ['...']
          group_wait: 0s
          group_interval: 1s
          repeat_interval: 24h
        receivers:
          - name: sink
            webhook_configs:
              - url: \(sink.url)/am
                send_resolved: false
        """.write(to: work.appendingPathComponent("alertmanager.yml"), atomically: true, encoding: .utf8)
        let process = ChildProcess()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = [
            "--config.file=\(work.path)/alertmanager.yml", "--storage.path=\(work.path)/data",
            "--web.listen-address=127.0.0.1:\(port)", "--cluster.listen-address=", "--log.level=error",
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer { process.terminate(); process.waitUntilExit() }
        try await ServiceCluster.waitForPort(port, what: "alertmanager")
        try await Task.sleep(for: .seconds(1))

        // Surge: alerts posted at full speed by 8 connections.
        let surgePrefix = "amsurge-\(runID)"
        let surge = try await offThread {
            try HTTPLoad.post(port: port, path: "/api/v2/alerts", count: self.surge, connections: 8, rate: nil) {
                Self.alertBody(key: "\(surgePrefix)-\($0)")
            }
        }
        let arrived = await sink.wait(prefix: surgePrefix, pages: self.surge, timeout: .seconds(120))
        let lastPage = arrived.max() ?? surge.startNanos
        let lastReply = surge.startNanos + UInt64(surge.seconds * 1e9)
        table.row(
            "Alertmanager surge: accepted alerts", String(format: "%.0f alerts/s (%d alerts, %d errors)", surge.rate, self.surge, surge.errors))
        table.row(
            "Alertmanager surge: webhooks end to end", String(
                format: "%.0f webhooks/s; %d of %d, the last %.2f s after the last accepted alert", Double(arrived.count) / (Double(lastPage - surge.startNanos) / 1e9),
                arrived.count, self.surge, Double(Int64(lastPage) - Int64(lastReply)) / 1e9))
        let amSurge = Double(arrived.count) / (Double(lastPage - surge.startNanos) / 1e9)
        if let klaxon = table.figures["klaxon.surge"] {
            table.row("Klaxon ÷ Alertmanager surge throughput", String(format: "%.2f× (pages/s ÷ webhooks/s)", klaxon / amSurge))
        }
        for rate in rates.split(separator: ",").compactMap({ Int($0.trimmingCharacters(in: .whitespaces)) }) {
            let prefix = "am\(rate)-\(runID)"
            let calls = rate * seconds
            let report = try await offThread {
                try HTTPLoad.post(port: port, path: "/api/v2/alerts", count: calls, connections: 8, rate: Double(rate)) {
                    Self.alertBody(key: "\(prefix)-\($0)")
                }
            }
            _ = await sink.wait(prefix: prefix, pages: calls, timeout: .seconds(60))
            var histogram = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
            var pages = 0
            for (key, arrivals) in sink.arrivals(prefix: prefix, paths: nil) {
                guard let index = Int(key.split(separator: "-").last ?? ""), index < calls, report.replyNanos[index] > 0 else { continue }
                for arrival in arrivals {
                    pages += 1
                    _ = histogram.record(UInt64(max(Int64(arrival) - Int64(report.replyNanos[index]), 1_000) / 1000))
                }
            }
            let result = LatencyResult(rate: rate, sent: calls, pages: pages, expected: calls, histogram: histogram)
            say("alertmanager at \(rate)/s: \(result.describe)")
            table.row("Alertmanager latency at \(rate) alerts/s (accepted → webhook)", result.describe)
            if let p50 = table.figures["klaxon.p50.\(rate)"], let p99 = table.figures["klaxon.p99.\(rate)"] {
                table.row(
                    "Klaxon ÷ Alertmanager latency at \(rate)/s", String(
                        format: "p50 %.1f×, p99 %.1f× (Klaxon commits every step and pages two people per incident)",
                        p50 / max(result.ms(50), 0.001), p99 / max(result.ms(99), 0.001)))
            }
        }
    }

    static func alertBody(key: String) -> String {
        #"[{"labels":{"alertname":"BenchSurge","seq":"\#(key)","severity":"critical"},"annotations":{"summary":"Benchmark alert \#(key)"}}]"#
    }

    // MARK: Setup

    struct Services {
        var surge: String
        var isolationDead: String
        var isolationRefused: String
        var timersServiceID: Int64
        var timersUsers: [Int64]
        var sms: String
    }

    /// Services for each scenario, each with its own users (two per incident, one zero-delay
    /// webhook rule each). Rate limits off: the benchmark sends far more than 120 events/min.
    func seed(_ pool: PostgresPool, runID: String, sink: String, blackhole: Int, refused: Int) async throws -> Services {
        func person(_ name: String, _ url: String) -> BenchConfig.Person {
            BenchConfig.Person(name: "\(name) \(runID)", email: "\(name.lowercased())-\(runID)@bench.invalid", webhook: url)
        }
        let made = try await BenchConfig.apply(pool, services: [
            ("surge \(runID)", [person("Ann", "\(sink)/surge/a"), person("Bob", "\(sink)/surge/b")], 1800),
            ("isolation-dead \(runID)", [
                person("Ada", "\(sink)/iso/a"), person("Ben", "\(sink)/iso/b"), person("Cat", "http://127.0.0.1:\(blackhole)/never"),
            ], 1800),
            ("isolation-refused \(runID)", [
                person("Ava", "\(sink)/iso/a"), person("Bea", "\(sink)/iso/b"), person("Cid", "http://127.0.0.1:\(refused)/refused"),
            ], 1800),
            ("timers \(runID)", [person("Tia", "\(sink)/timers/a"), person("Tom", "\(sink)/timers/b")], 300),
            ("sms \(runID)", [person("Sam", "\(sink)/sms/unused")], 1800),
        ], now: SystemWallClock().nowMs())
        let timers = made["timers \(runID)"]!
        // Sam is texted: his one contact method becomes an SMS number.
        let sam = made["sms \(runID)"]!.userIDs[0]
        try await pool.withConnection { connection in
            try connection.query("UPDATE contact_methods SET type = 'sms', address = '+49 170 0000001', verified_at_ms = 0 WHERE user_id = $1", [sam])
        }
        return Services(
            surge: made["surge \(runID)"]!.routingKey, isolationDead: made["isolation-dead \(runID)"]!.routingKey,
            isolationRefused: made["isolation-refused \(runID)"]!.routingKey, timersServiceID: timers.serviceID, timersUsers: timers.userIDs,
            sms: made["sms \(runID)"]!.routingKey)
    }

    /// With `keyInSummary` the title starts "k:<key> " (an SMS carries the title, not the dedup key).
    static func triggerFrame(_ routingKey: String, key: String, index: Int, keyInSummary: Bool = false) -> [UInt8] {
        let event = Event(
            routingKey: routingKey, eventAction: .trigger, dedupKey: key,
            payload: Payload(summary: (keyInSummary ? "k:\(key) " : "") + "Benchmark incident \(index)", source: "bench-\(index % 50)", severity: .critical))
        var frame = ByteBuffer()
        Framing.writeFrame(Envelope(id: UInt64(index + 1), method: Ingest.SendEvent.name, body: event.wireBytes()).wireBytes(), into: &frame)
        return Array(frame.readableBytesView)
    }

    static let outcome: @Sendable ([UInt8]) -> String = { body in
        (try? EventResult(wire: body))?.outcome.map { "\($0)" } ?? "undecodable"
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Runs blocking work on its own thread, never on one of Swift's cooperative threads.
func offThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try work() }) }
        thread.stackSize = 1 << 22
        thread.start()
    }
}

/// The result table, printed and written to docs/PERFORMANCE.md.
struct ResultTable {
    var rows: [(String, String)] = []
    /// Figures kept for the Klaxon ÷ Alertmanager ratios.
    var figures: [String: Double] = [:]
    var notes: [(String, String)] = []
    mutating func row(_ name: String, _ value: String) { rows.append((name, value)) }
    mutating func note(_ name: String, _ value: String) { notes.append((name, value)) }

    func markdown(layout: BenchE2ECommand.Layout) -> String {
        var lines = [
            "Layout: \(layout == .serve ? "one `klaxon serve` process" : "one process per service") · "
                + notes.map { "\($0.0): \($0.1)" }.joined(separator: " · "),
            "", "| Measure | Result |", "|---|---|",
        ]
        lines += rows.map { "| \($0.0) | \($0.1) |" }
        return lines.joined(separator: "\n")
    }
}

/// Statements PostgreSQL executed for the benchmark's database, from pg_stat_statements (scripts/bench-e2e
/// loads it): reset at the start of a scenario, summed at its end. BEGIN and COMMIT sent through the
/// extended protocol are not in PostgreSQL 15's view; transactions come from pg_stat_database.
struct StatementCount {
    let pool: PostgresPool
    let available: Bool
    var commitsBefore: Int64 = 0
    static let database = "(SELECT oid FROM pg_database WHERE datname = current_database())"

    init(pool: PostgresPool) async {
        self.pool = pool
        let reset = try? await pool.withConnection { connection -> Int64 in
            try connection.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            try connection.query("SELECT pg_stat_statements_reset(0, \(Self.database), 0)")
            return try connection.query("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()").int64(0, "xact_commit") ?? 0
        }
        available = reset != nil
        commitsBefore = reset ?? 0
    }

    func perIncident(_ incidents: Int) async -> String {
        guard available else { return "n/a (pg_stat_statements is not loaded: shared_preload_libraries)" }
        try? await Task.sleep(for: .milliseconds(1_500))  // backends flush their transaction counts within a second
        let figures = try? await pool.withConnection { connection -> (Int64, Int64) in
            let calls = try connection.query(
                "SELECT coalesce(sum(calls), 0)::bigint AS calls FROM pg_stat_statements WHERE dbid = \(Self.database) AND toplevel"
            ).int64(0, "calls") ?? 0
            let commits = try connection.query("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()").int64(0, "xact_commit") ?? 0
            return (calls, commits)
        }
        guard let (calls, commits) = figures else { return "n/a" }
        // Where PostgreSQL's executor time went: the statements that took most of it.
        if let top = try? await pool.withConnection({ connection -> [String] in
            let rows = try connection.query(
                """
                SELECT calls, total_exec_time::numeric(12,1)::text AS ms,
                       (100 * total_exec_time / nullif(sum(total_exec_time) OVER (), 0))::numeric(5,1)::text AS share,
                       (1000 * total_exec_time / calls)::numeric(10,1)::text AS us_per_call,
                       regexp_replace(left(query, 90), '\\s+', ' ', 'g') AS query
                FROM pg_stat_statements WHERE dbid = \(Self.database) AND toplevel ORDER BY total_exec_time DESC LIMIT 8
                """)
            return (0..<rows.count).map { row in
                "  \(rows.string(row, "share") ?? "")% \(rows.string(row, "ms") ?? "") ms, \(rows.string(row, "calls") ?? "") calls, "
                    + "\(rows.string(row, "us_per_call") ?? "") µs each: \(rows.string(row, "query") ?? "")"
            }
        }) {
            say("statements by executor time (pg_stat_statements; parse, plan and commit not included):")
            for line in top { say(line) }
        }
        return String(
            format: "%.2f (%lld statements; %.2f transactions per incident)", Double(calls) / Double(incidents), calls,
            Double(commits - commitsBefore) / Double(incidents))
    }
}

/// A progress line, written at once (print buffers when stdout is a pipe or a file).
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
