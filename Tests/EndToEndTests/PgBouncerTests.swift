import Foundation
import KlaxonDomain
import KlaxonTestSupport
import Shared
import Testing

/// pgbouncer in transaction mode in front of PostgreSQL (issue 26, point 4): the real `klaxon
/// serve` binary, its every connection through a real pgbouncer (Debian's, 1.18: no named
/// prepared statements across transactions), with KLAXON_DATABASE_PREPARED_STATEMENTS=false.
/// Migrations (transaction-scoped locks), triggers, pages and an acknowledgement all go through.
@Suite struct PgBouncerTests {
    final class Bouncer: @unchecked Sendable {
        let port: Int
        let work: URL
        let process = ChildProcess()
        init(port: Int, work: URL) {
            self.port = port
            self.work = work
        }
        var log: String { (try? String(contentsOf: work.appendingPathComponent("pgbouncer.log"), encoding: .utf8)) ?? "" }

        /// pgbouncer in transaction mode on a free port, in front of `target` (host, port).
        static func start(target: HostPort) async throws -> Bouncer {
            let binary = ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"].first { FileManager.default.isExecutableFile(atPath: $0) }
            let pgbouncer = try #require(binary, "pgbouncer is not installed (scripts/test installs it)")
            let work = URL(fileURLWithPath: "/tmp/klaxon-pgbouncer-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o777])
            let bouncer = Bouncer(port: try await freePort(), work: work)
            try "\"klaxon\" \"\"\n".write(to: work.appendingPathComponent("users.txt"), atomically: true, encoding: .utf8)
            try """
                [databases]
                * = host=\(target.host) port=\(target.port)
                [pgbouncer]
                listen_addr = 127.0.0.1
                listen_port = \(bouncer.port)
                unix_socket_dir =
                auth_type = trust
                auth_file = \(work.path)/users.txt
                pool_mode = transaction
                default_pool_size = 4
                max_client_conn = 100
                ignore_startup_parameters = extra_float_digits
                logfile = \(work.path)/pgbouncer.log
                log_connections = 1

                """.write(to: work.appendingPathComponent("pgbouncer.ini"), atomically: true, encoding: .utf8)
            for file in ["users.txt", "pgbouncer.ini"] {
                try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: work.appendingPathComponent(file).path)
            }
            // pgbouncer refuses to run as root: as root, it switches to the postgres user itself (-u).
            bouncer.process.executableURL = URL(fileURLWithPath: pgbouncer)
            bouncer.process.arguments = (getuid() == 0 ? ["-u", "postgres"] : []) + [work.appendingPathComponent("pgbouncer.ini").path]
            bouncer.process.standardOutput = FileHandle.nullDevice
            bouncer.process.standardError = FileHandle.nullDevice
            try bouncer.process.run()
            let up = await eventually(timeout: .seconds(10)) { (try? PGConnection(url: "postgresql://klaxon@127.0.0.1:\(bouncer.port)/postgres")) != nil }
            guard up else { throw TestPKI.CLIFailure("pgbouncer did not start: \(bouncer.log)") }
            return bouncer
        }

        /// SIGKILL (the test process ignores SIGTERM, and so do its children), then a bounded wait.
        func stop() {
            kill(process.processIdentifier, SIGKILL)
            for _ in 0..<200 where process.isRunning { usleep(10_000) }
            try? FileManager.default.removeItem(at: work)
        }
    }

    @Test func theWholePipelineThroughPgBouncerInTransactionMode() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: KlaxonCLI.binary), "build the CLI first: swift build --build-tests")
        let (pipeline, ports) = try await ShutdownTests.servedPipeline()
        let service = try await pipeline.seed(users: ["Alice", "Bob"])
        let url = try #require(URLComponents(string: pipeline.db.url))
        let bouncer = try await Bouncer.start(target: HostPort(host: url.host ?? "127.0.0.1", port: url.port ?? 5432))
        defer { bouncer.stop() }
        let throughBouncer = "postgresql://klaxon@127.0.0.1:\(bouncer.port)\(url.path)"
        let server = try ShutdownTests.Server(
            pipeline, grace: 5, environment: ["KLAXON_DATABASE_URL": throughBouncer, "KLAXON_DATABASE_PREPARED_STATEMENTS": "false"])
        defer { server.kill() }
        #expect(await ShutdownTests.ready(ports.ingest), "klaxon serve did not become ready: \(server.output)")

        let ingest = pipeline.client(.ingest, token: nil)
        var incidents: [UInt64] = []
        for index in 0..<20 {
            let result: EventResult = try await ingest.call(Ingest.SendEvent, Pipeline.trigger(service.routingKey, dedupKey: "bouncer-\(index)"))
            incidents.append(result.incidentID)
        }
        let pages = await pipeline.sink.waitForRequests(40, timeout: .seconds(20))
        #expect(pages.count == 40, "\(pages.count) of 40 pages through pgbouncer: \(server.output.suffix(2000))")
        #expect(Set(pages.compactMap { $0.webhook?.incident.id }) == Set(incidents))
        let assignment = pipeline.client(.assignment)
        let view: IncidentView = try await assignment.call(
            Assignment.Acknowledge, IncidentActionRequest(incidentID: incidents[0], userID: UInt64(service.userIDs[0])))
        #expect(view.status == .acknowledged)
        // Every connection went through pgbouncer, in transaction mode.
        #expect(bouncer.log.contains("login attempt: db=\(url.path.dropFirst()) user=klaxon"), "\(bouncer.log.suffix(1000))")
        #expect(!server.output.contains("prepared statement"), "\(server.output.suffix(2000))")
        await ingest.close()
        await assignment.close()
        await pipeline.shutdown()
    }
}
