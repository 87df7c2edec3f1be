import ArgumentParser
import Foundation
import HTTPOperations
import Histogram
import Hummingbird
import IngestService
import KlaxonDomain
import KlaxonTestSupport
import Logging
import NIOConcurrencyHelpers
import NIOCore
import Shared

/// Ingest throughput and reply latency: an in-process Ingest on a real TCP port and PostgreSQL,
/// driven by pipelined binary-protocol clients. Every reply counted means committed.
struct BenchIngestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-ingest", abstract: "Measure Ingest: events/s and reply latency (scripts/bench runs this).")

    @Option(help: "Events per scenario.")
    var events = 100_000
    @Option(help: "Client connections.")
    var connections = 8
    @Option(help: "Calls in flight per connection.")
    var inFlight = 64
    @Option(help: "Distinct dedup keys in the deduplicated scenario.")
    var dedupKeys = 100
    @Option(help: "Scenarios to run: new, dedup (comma-separated).")
    var scenarios = "new,dedup"
    @Flag(help: "Measure the RPC layer alone: a handler that answers at once, no database.")
    var echo = false
    @Flag(help: "Measure Ingest's write path alone: call the event processor directly, no RPC.")
    var direct = false
    @Flag(help: "TLS's cost: each scenario over Klaxon's own client, plain and over TLS (a throwaway certificate), in alternating rounds.")
    var tlsCompare = false
    @Option(help: "Rounds of plain + TLS with --tls-compare.")
    var rounds = 2
    @Flag(help: "Every monitor dialect over HTTP: PagerDuty Events v2, the Opsgenie Alert API and Alertmanager's webhook, the same new-incident triggers through each, in turn.")
    var dialects = false
    @Option(help: "Events per dialect with --dialects.")
    var dialectEvents = 20_000

    func validate() throws {
        let unknown = scenarios.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !["new", "dedup"].contains($0) }
        guard unknown.isEmpty else { throw ValidationError("unknown scenario \(unknown.joined(separator: ", ")); use new, dedup") }
    }

    func run() async throws {
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        if echo { return try await runEcho(logger: logger) }
        var config = try KlaxonConfig.fromEnvironment(ProcessInfo.processInfo.environment)
        config.maxInFlightPerConnection = inFlight
        config.databasePoolSize = 4
        let clock = SystemWallClock()
        var poolConfiguration = PostgresConfiguration(url: config.databaseURL)
        poolConfiguration.maxConnections = config.databasePoolSize
        let pool = PostgresPool(configuration: poolConfiguration, logger: logger)
        try await Migrator.migrate(pool, now: clock.nowMs(), logger: logger)
        let benchID = Secrets.text(count: 6)
        let routingKey = try await BenchConfig.apply(pool, services: [
            ("bench \(benchID)", [BenchConfig.Person(name: "Bench", email: "bench-\(benchID)@bench.invalid", webhook: nil)], 1800),
        ], now: clock.nowMs())["bench \(benchID)"]!.routingKey
        let port = try await Self.freePort()
        config.ingestListen = HostPort(host: "127.0.0.1", port: port)
        config.assignmentAddress = HostPort(host: "127.0.0.1", port: 1)  // Assignment is not part of this measurement
        let ingest = IngestService(config: config, pool: pool, clock: clock, logger: logger)
        let server = Task { try await ingest.server.run() }
        _ = try await ingest.server.localAddress()

        if dialects {
            try await runDialects(ingest: ingest, pool: pool, config: config, routingKey: routingKey, logger: logger)
            server.cancel()
            _ = await server.result
            await pool.shutdown()
            return
        }
        print("Ingest benchmark: \(events) events per scenario, \(connections) connections × \(inFlight) in flight, PostgreSQL \(Self.describe(config.databaseURL))")
        let runID = UUID().uuidString.prefix(8)
        let chosen = Set(scenarios.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
        for scenario in ["new-incident triggers", "deduplicated triggers"] where chosen.contains(scenario.hasPrefix("new") ? "new" : "dedup") {
            let before = ingest.processor.batchStatistics
            let dedup = scenario.hasPrefix("dedup")
            let processor = ingest.processor
            let event: @Sendable (Int) -> Event = { index in
                let key = dedup ? "dup-\(runID)-\(index % dedupKeys)" : "new-\(runID)-\(scenario.count)-\(index)"
                return Event(
                    routingKey: routingKey, eventAction: .trigger, dedupKey: key,
                    payload: Payload(summary: "Benchmark event \(index)", source: "bench-\(index % 50)", severity: .error,
                                     customDetails: ["index": String(index)]))
            }
            if tlsCompare {
                try await compareTLS(scenario: scenario, config: config, processor: processor, logger: logger, event: event)
                continue
            }
            let result: Figures
            if direct {
                result = try await drive { index in
                    let _: EventResult = try await processor.process(event(index), encodedSize: 300)
                }
            } else {
                result = try await load(port: port, method: Ingest.SendEvent.name) { event($0).wireBytes() }
            }
            let after = ingest.processor.batchStatistics
            let transactions = after.transactions - before.transactions
            let perTransaction = Double(after.events - before.events) / Double(max(transactions, 1))
            let busyMs = Double(after.transactionNanoseconds - before.transactionNanoseconds) / 1e6
            print(String(
                format: "%@: %.0f events/s; reply latency p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms; %d transactions (%.1f events each, %.2f ms each); %d errors%@",
                scenario, result.rate, result.p50, result.p99, result.p999, result.max, transactions, perTransaction,
                busyMs / Double(max(transactions, 1)), result.errors, result.describeOutcomes))
        }
        server.cancel()
        _ = await server.result
        await pool.shutdown()
    }

    /// Each HTTP dialect in turn (twice, alternating, the best of each kept), the same kind of
    /// new-incident trigger through each, `connections` keep-alive connections one request at a
    /// time: events/s, reply latency, and each dialect's rate against PagerDuty's.
    func runDialects(ingest: IngestService, pool: PostgresPool, config: KlaxonConfig, routingKey: String, logger: Logger) async throws {
        let port = try await Self.freePort()
        let http = IngestHTTP.application(
            processor: ingest.processor, readiness: Readiness(pool: pool, listeners: []),
            listen: HostPort(host: "127.0.0.1", port: port), logger: logger)
        let serving = Task { try await http.run() }
        defer { serving.cancel() }
        try await ServiceCluster.waitForPort(port, what: "Ingest HTTP")
        let runID = UUID().uuidString.prefix(8)
        typealias Dialect = (name: String, path: String, headers: String, body: @Sendable (String) -> String)
        let all: [Dialect] = [
            ("PagerDuty Events v2", "/v2/enqueue", "", { key in
                #"{"routing_key":"\#(routingKey)","event_action":"trigger","dedup_key":"\#(key)","payload":{"summary":"Disk full on db-1","source":"db-1","severity":"critical","custom_details":{"free":"0%"}}}"#
            }),
            ("Opsgenie Alert API", "/v2/alerts", "Authorization: GenieKey \(routingKey)\r\n", { key in
                #"{"message":"Disk full on db-1","alias":"\#(key)","source":"db-1","priority":"P1","details":{"free":"0%"}}"#
            }),
            ("Alertmanager webhook", "/alertmanager/\(routingKey)", "", { key in
                #"{"version":"4","groupKey":"{}:{alertname=\"\#(key)\"}","truncatedAlerts":0,"status":"firing","receiver":"klaxon","groupLabels":{"alertname":"\#(key)"},"commonLabels":{"alertname":"\#(key)","instance":"db-1","severity":"critical"},"commonAnnotations":{"summary":"Disk full on db-1"},"externalURL":"http://am:9093","alerts":[{"status":"firing","labels":{"alertname":"\#(key)","instance":"db-1","severity":"critical"},"annotations":{"summary":"Disk full on db-1"},"startsAt":"2026-12-05T10:00:00Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://prom:9090/graph","fingerprint":"\#(key.suffix(16))"}]}"#
            }),
        ]
        print("Ingest dialects: \(dialectEvents) new-incident triggers per dialect and round, \(connections) HTTP/1.1 keep-alive connections, one request at a time each; PostgreSQL \(Self.describe(config.databaseURL))")
        var best: [String: Double] = [:]
        for round in 1...2 {
            for dialect in all {
                let prefix = "\(runID)-\(round)-\(dialect.name.prefix(4))"
                let report = try await offCooperativePool { [dialectEvents, connections] in
                    try HTTPLoad.post(
                        port: port, path: dialect.path, count: dialectEvents, connections: connections, rate: nil, headers: dialect.headers
                    ) { dialect.body("\(prefix)-\($0)") }
                }
                guard report.errors == 0 else { throw BenchError("\(dialect.name): \(report.errors) requests failed") }
                print(String(format: "  round %d, %@: %.0f events/s", round, dialect.name, report.rate))
                best[dialect.name] = max(best[dialect.name] ?? 0, report.rate)
            }
        }
        let baseline = best["PagerDuty Events v2"] ?? 1
        for dialect in all {
            let rate = best[dialect.name] ?? 0
            print(String(format: "%@: %.0f events/s (best of 2 rounds), %.0f %% of PagerDuty Events v2's", dialect.name, rate, 100 * rate / baseline))
        }
    }

    /// The same events through the same Ingest, over Klaxon's own RPC client: plain TCP, then TLS
    /// (TLS 1.3, a P-256 certificate made with openssl), alternating `rounds` times; the best
    /// round of each and TLS's cost in rate.
    func compareTLS(
        scenario: String, config: KlaxonConfig, processor: EventProcessor, logger: Logger, event: @escaping @Sendable (Int) -> Event
    ) async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("klaxon-bench-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let process = ChildProcess()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                             "-keyout", dir.appendingPathComponent("key.pem").path, "-out", dir.appendingPathComponent("cert.pem").path,
                             "-days", "1", "-subj", "/CN=bench", "-addext", "subjectAltName=IP:127.0.0.1"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw ValidationError("openssl could not make a certificate") }
        var tlsConfig = config
        tlsConfig.tlsCertFile = dir.appendingPathComponent("cert.pem").path
        tlsConfig.tlsKeyFile = dir.appendingPathComponent("key.pem").path
        tlsConfig.ingestListen = HostPort(host: "127.0.0.1", port: try await Self.freePort())
        let tlsServer = RPCServer(configuration: tlsConfig.rpcServerConfiguration(.ingest), router: IngestService.router(processor), logger: logger)
        let serving = Task { try await tlsServer.run() }
        _ = try await tlsServer.localAddress()
        defer { serving.cancel() }

        let next = NIOLockedValueBox(0)
        func round(_ tls: Bool) async throws -> Figures {
            var configuration = RPCClientConfiguration(host: "127.0.0.1", port: (tls ? tlsConfig : config).ingestListen.port)
            configuration.defaultTimeout = .seconds(60)
            if tls { configuration.tls = ClientTLS(caFile: tlsConfig.tlsCertFile) }
            let clients = (0..<connections).map { _ in RPCClient(configuration: configuration) }
            let offset = next.withLockedValue { value -> Int in
                defer { value += events }
                return value
            }
            let figures = try await drive { index in
                let _: EventResult = try await clients[index % clients.count].call(Ingest.SendEvent, event(offset + index))
            }
            for client in clients { await client.close() }
            return figures
        }
        var plain: [Figures] = [], encrypted: [Figures] = []
        for _ in 0..<max(1, rounds) {
            plain.append(try await round(false))
            encrypted.append(try await round(true))
        }
        func line(_ name: String, _ runs: [Figures]) -> String {
            let best = runs.max { $0.rate < $1.rate }!
            return String(
                format: "  %@: %@ events/s (best %.0f: p50 %.2f ms, p99 %.2f ms); %d errors", name,
                runs.map { String(format: "%.0f", $0.rate) }.joined(separator: " / "), best.rate, best.p50, best.p99,
                runs.reduce(0) { $0 + $1.errors })
        }
        let bestPlain = plain.map(\.rate).max()!, bestTLS = encrypted.map(\.rate).max()!
        print("\(scenario), Klaxon's RPC client, \(connections) connections × \(inFlight) in flight, \(rounds) alternating rounds:")
        print(line("plain TCP", plain))
        print(line("TLS      ", encrypted))
        print(String(format: "  TLS costs %.1f %% of the rate (best against best)", (1 - bestTLS / bestPlain) * 100))
    }

    func runEcho(logger: Logger) async throws {
        var router = RPCRouter()
        router.registerOnLoop(Ingest.SendEvent) { (event: Event, _, loop) in
            loop.makeSucceededFuture(EventResult(dedupKey: event.dedupKey, incidentID: 1, outcome: .created))
        }
        var configuration = RPCServerConfiguration(host: "127.0.0.1", port: 0)
        configuration.maxInFlightPerConnection = inFlight
        let server = RPCServer(configuration: configuration, router: router, logger: logger)
        let task = Task { try await server.run() }
        let port = try await server.localAddress().port!
        let result = try await load(port: port, method: Ingest.SendEvent.name) { index in
            Event(routingKey: String(repeating: "k", count: 32), eventAction: .trigger, dedupKey: "echo-\(index)",
                  payload: Payload(summary: "Benchmark event \(index)", source: "bench", severity: .error)).wireBytes()
        }
        print(String(format: "RPC echo: %.0f calls/s; latency p50 %.2f ms, p99 %.2f ms; %d errors", result.rate, result.p50, result.p99, result.errors))
        task.cancel()
        _ = await task.result
    }

    struct Figures {
        var rate: Double
        var p50: Double
        var p99: Double
        var p999: Double
        var max: Double
        var errors: Int
        var firstError: String? = nil
        var outcomes: [String: Int] = [:]

        /// "; outcomes: created 30000" — every reply is decoded, so the figure shows what was done.
        var describeOutcomes: String {
            var text = outcomes.isEmpty ? "" : "; outcomes: " + outcomes.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            if let firstError { text += "; first error: \(firstError)" }
            return text
        }
    }

    /// Over the binary protocol, with the lean load generator (pre-encoded frames, one thread per connection).
    func load(port: Int, method: String, body: @escaping @Sendable (Int) -> [UInt8]) async throws -> Figures {
        // The generator blocks its threads; it must not hold one of Swift's cooperative threads meanwhile.
        try await withCheckedThrowingContinuation { continuation in
            let thread = Thread {
                continuation.resume(with: Result { try self.loadBlocking(port: port, method: method, body: body) })
            }
            thread.start()
        }
    }

    private func loadBlocking(port: Int, method: String, body: (Int) -> [UInt8]) throws -> Figures {
        let generator = LoadGenerator(port: port, connections: connections, inFlight: inFlight)
        let report = try generator.run(
            calls: events,
            frame: { index in
                var frame = ByteBuffer()
                Framing.writeFrame(Envelope(id: UInt64(index + 1), method: method, body: body(index)).wireBytes(), into: &frame)
                return Array(frame.readableBytesView)
            },
            inspect: { body in (try? EventResult(wire: body))?.outcome.map { "\($0)" } ?? "undecodable" })
        return Figures(
            rate: report.rate, p50: report.ms(50), p99: report.ms(99), p999: report.ms(99.9), max: report.maxMs,
            errors: report.errors, firstError: report.firstError, outcomes: report.outcomes)
    }

    /// In process, without the RPC layer: `inFlight` × `connections` tasks calling `call`.
    func drive(_ call: @escaping @Sendable (Int) async throws -> Void) async throws -> Figures {
        let next = NIOLockedValueBox(0)
        let histogram = NIOLockedValueBox(Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three))
        let errors = NIOLockedValueBox(0)
        let total = events
        let start = ContinuousClock.now
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<(connections * inFlight) {
                group.addTask {
                    while true {
                        let index = next.withLockedValue { value -> Int in
                            defer { value += 1 }
                            return value
                        }
                        guard index < total else { return }
                        let sent = ContinuousClock.now
                        do {
                            try await call(index)
                            let micros = UInt64((ContinuousClock.now - sent) / .microseconds(1))
                            histogram.withLockedValue { _ = $0.record(max(micros, 1)) }
                        } catch {
                            errors.withLockedValue { $0 += 1 }
                        }
                    }
                }
            }
        }
        let seconds = Double((ContinuousClock.now - start) / .milliseconds(1)) / 1000
        let h = histogram.withLockedValue { $0 }
        func ms(_ percentile: Double) -> Double { Double(h.valueAtPercentile(percentile)) / 1000 }
        return Figures(
            rate: Double(total) / seconds, p50: ms(50), p99: ms(99), p999: ms(99.9), max: Double(h.max) / 1000,
            errors: errors.withLockedValue { $0 })
    }

    static func freePort() async throws -> Int {
        var quiet = Logger(label: "probe")
        quiet.logLevel = .error
        let probe = RPCServer(configuration: .init(host: "127.0.0.1", port: 0), router: RPCRouter(), logger: quiet)
        let task = Task { try await probe.run() }
        let port = try await probe.localAddress().port!
        task.cancel()
        _ = await task.result
        return port
    }

    static func describe(_ url: String) -> String {
        url.split(separator: "@").last.map(String.init) ?? "?"
    }
}
