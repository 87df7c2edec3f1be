import Foundation
import KlaxonDomain
import KlaxonTestSupport
import Shared
import Testing

/// SIGTERM under load (issue 13, point 5), on the real binary as a container runtime stops it:
/// `klaxon serve` takes triggers from concurrent monitors, gets SIGTERM in the middle, and must
/// exit 0 within its grace; every event it acknowledged must be durable; no page may be left
/// behind a stale claim (pages in flight finish, the rest stay claimable at once); and once
/// restarted, every acknowledged event's pages arrive.
@Suite struct ShutdownTests {
    /// `klaxon serve` as a child process with the Pipeline's database and ports.
    final class Server: @unchecked Sendable {
        let process = ChildProcess()
        let log: URL

        init(_ pipeline: Pipeline, grace: Int, arguments: [String] = ["serve"], environment extra: [String: String] = [:]) throws {
            log = FileManager.default.temporaryDirectory.appendingPathComponent("klaxon-serve-\(UUID().uuidString).log")
            _ = FileManager.default.createFile(atPath: log.path, contents: nil)
            var environment = ProcessInfo.processInfo.environment.merging(pipeline.config.environment) { _, new in new }
                .merging(extra) { _, new in new }
            environment["KLAXON_SHUTDOWN_GRACE_SECONDS"] = "\(grace)"
            environment["KLAXON_LOG_LEVEL"] = "info"
            process.executableURL = URL(fileURLWithPath: KlaxonCLI.binary)
            process.arguments = arguments
            process.environment = environment
            let handle = try FileHandle(forWritingTo: log)
            process.standardOutput = handle
            process.standardError = handle
            try process.run()
        }

        var output: String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }

        /// Waits for the exit; nil if it outlives `timeout`.
        func exitStatus(within timeout: Duration) async throws -> Int32? {
            await process.exited(within: timeout) ? process.terminationStatus : nil
        }

        func kill() {
            process.signal(SIGKILL)
            try? FileManager.default.removeItem(at: log)
        }
    }

    /// A Pipeline whose services `klaxon serve` runs (none in-process), its HTTP listeners on
    /// known ports (readiness is polled there); `configure` adds to the configuration.
    static func servedPipeline(
        _ configure: @escaping (inout KlaxonConfig) -> Void = { _ in }
    ) async throws -> (pipeline: Pipeline, ports: (ingest: Int, assignment: Int, notifier: Int)) {
        let ports = (ingest: try await freePort(), assignment: try await freePort(), notifier: try await freePort())
        let pipeline = try await Pipeline(start: []) { config, _ in
            config.ingestHTTPListen = HostPort(host: "127.0.0.1", port: ports.ingest)
            config.assignmentHTTPListen = HostPort(host: "127.0.0.1", port: ports.assignment)
            config.notifierHTTPListen = HostPort(host: "127.0.0.1", port: ports.notifier)
            configure(&config)
        }
        return (pipeline, ports)
    }

    static func ready(_ port: Int) async -> Bool {
        await eventually(timeout: .seconds(30)) {
            (try? await MetricsTests.get(port, "/readyz").status) == 200
        }
    }

    @Test func sigtermUnderLoadLosesNothingAndExitsZero() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: KlaxonCLI.binary), "build the CLI first: swift build --build-tests")
        let (pipeline, ports) = try await Self.servedPipeline()
        let service = try await pipeline.seed(users: ["Alice", "Bob"])
        // A load test, not a rate-limit test: no per-key limit (the default is 120 a minute).
        try await pipeline.db.pool.withConnection { try $0.query("UPDATE services SET events_per_minute = 0") }
        let first = try Server(pipeline, grace: 20)
        defer { first.kill() }
        #expect(await Self.ready(ports.ingest), "klaxon serve did not become ready: \(first.output)")
        #expect(await Self.ready(ports.notifier))

        // Eight monitors send distinct triggers as fast as they are answered; SIGTERM lands after
        // 300 of them were answered, while they are still sending. What was answered OK must be durable.
        let acknowledged = NIOLockedKeys()
        let refusedAfterStop = NIOLockedKeys()
        let load = Task {
            await withTaskGroup(of: Void.self) { group in
                for monitor in 0..<8 {
                    group.addTask {
                        let client = pipeline.client(.ingest, token: nil)
                        defer { Task { await client.close() } }
                        var failuresInARow = 0
                        for sequence in 0..<100_000 where failuresInARow < 20 {
                            let key = "m\(monitor)-\(sequence)"
                            do {
                                let result = try await client.call(Ingest.SendEvent, Pipeline.trigger(service.routingKey, dedupKey: key), timeout: .seconds(5))
                                if result.outcome == .created { acknowledged.insert(key) }
                                failuresInARow = 0
                            } catch {
                                refusedAfterStop.insert(key)
                                failuresInARow += 1
                                try? await Task.sleep(for: .milliseconds(10))
                            }
                        }
                    }
                }
            }
        }
        // SIGTERM once 300 events were acknowledged (however busy the machine), mid-load.
        _ = await eventually(timeout: .seconds(60)) { acknowledged.count >= 300 }
        let countBefore = acknowledged.count
        let started = ContinuousClock.now
        kill(first.process.processIdentifier, SIGTERM)
        let status = try await first.exitStatus(within: .seconds(30))
        let took = ContinuousClock.now - started
        await load.value
        #expect(countBefore >= 300, "the load was too light to mean anything: \(countBefore) events before SIGTERM")
        #expect(acknowledged.count > countBefore || !refusedAfterStop.all.isEmpty, "SIGTERM did not land mid-load")
        #expect(status == 0, "klaxon serve exited \(String(describing: status)) after SIGTERM:\n\(first.output.suffix(3000))")
        #expect(took < .seconds(20), "the shutdown took \(took), over KLAXON_SHUTDOWN_GRACE_SECONDS=20")
        #expect(!first.output.contains("Waiting on child channel"), "shutdown noise in the log:\n\(first.output.suffix(2000))")

        // Every acknowledged event is an incident, and no notification is held by a claim.
        let keys = acknowledged.all
        print("ShutdownTests: SIGTERM after \(countBefore) acknowledged triggers; \(keys.count) acknowledged in all; exit \(String(describing: status)) after \(took)")
        let stored = try await pipeline.db.pool.withConnection { connection in
            let rows = try connection.query(
                "SELECT count(*)::bigint AS n FROM incidents WHERE service_id = $1 AND dedup_key = ANY($2::text[])",
                [service.serviceID, PGArray(keys)])
            return rows.int(0, "n")!
        }
        #expect(stored == keys.count, "\(keys.count) triggers were acknowledged, \(stored) incidents are stored")
        let held = try await pipeline.db.pool.withConnection { connection in
            try connection.query(
                "SELECT count(*)::bigint AS n FROM notifications WHERE status = 'pending' AND lease_until_ms > $1",
                [SystemWallClock().nowMs()]
            ).int(0, "n")!
        }
        #expect(held == 0, "\(held) pages are held back by a claim that outlived the process")

        // Restarted, it pages everyone for every acknowledged incident: nothing was lost.
        let second = try Server(pipeline, grace: 20)
        defer { second.kill() }
        #expect(await Self.ready(ports.ingest), "the second start did not become ready: \(second.output)")
        let expected = keys.count * 2
        let delivered = try await eventually(timeout: .seconds(60)) {
            let paged = try await pipeline.db.pool.withConnection { connection in
                try connection.query(
                    """
                    SELECT count(DISTINCT (n.incident_id, n.user_id))::bigint AS n FROM notifications n JOIN incidents i ON i.id = n.incident_id
                    WHERE i.service_id = $1 AND i.dedup_key = ANY($2::text[]) AND n.status = 'sent'
                    """, [service.serviceID, PGArray(keys)]
                ).int(0, "n")!
            }
            return paged == expected
        }
        #expect(delivered, "not every acknowledged incident paged Alice and Bob after the restart")
        kill(second.process.processIdentifier, SIGTERM)
        #expect(try await second.exitStatus(within: .seconds(30)) == 0)
        await pipeline.shutdown()
    }
}

/// A set of strings shared by concurrent tasks.
final class NIOLockedKeys: @unchecked Sendable {
    private let lock = NSLock()
    private var keys: [String] = []
    func insert(_ key: String) { lock.lock(); keys.append(key); lock.unlock() }
    var all: [String] { lock.lock(); defer { lock.unlock() }; return keys }
    var count: Int { lock.lock(); defer { lock.unlock() }; return keys.count }
}
