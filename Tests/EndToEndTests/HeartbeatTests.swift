import AssignmentService
import AsyncHTTPClient
import Foundation
import IncidentEngine
import KlaxonDomain
import KlaxonTestSupport
import Logging
import NIOCore
import Shared
import Testing

/// Heartbeat monitors (issue 27, point 3): pings on Ingest's HTTP listener, deadlines fired by
/// Assignment from PostgreSQL, on the manual clock; one test with `curl` in real time.
@Suite struct HeartbeatTests {
    static func ping(_ port: Int, _ path: String, body: String? = nil, headers: [String: String] = [:]) async throws -> (status: UInt, body: String) {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        if let body {
            request.method = .POST
            request.body = .bytes(ByteBuffer(string: body))
        }
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        return (response.status.code, String(buffer: try await response.body.collect(upTo: 1 << 20)))
    }

    static func heartbeatIncidents(_ pipeline: Pipeline, status: String? = nil) async throws -> Int64 {
        try await pipeline.db.scalar(
            "SELECT count(*) FROM incidents WHERE dedup_key LIKE 'heartbeat:%' AND ($1::text IS NULL OR status = $1::text)", [status]) ?? 0
    }

    /// Lets `ms` pass in steps of at most 30 s, as a running Klaxon sees time go by (a jump longer
    /// than a minute is an outage of Klaxon itself, which moves deadlines).
    static func pass(_ pipeline: Pipeline, _ ms: Millis) async {
        var left = ms
        while left > 0 {
            let step = min(left, 30_000)
            await pipeline.letTimePass(step)
            left -= step
        }
    }

    @Test func aMissedHeartbeatPagesAndTheNextSuccessResolvesIt() async throws {
        let clock = ManualClock()
        let pipeline = try await Pipeline(clock: clock)
        let service = try await pipeline.seed(users: ["Alice"])
        let admin = pipeline.client(.assignment)
        let monitor: Heartbeat = try await admin.call(
            Admin.CreateHeartbeat, Heartbeat(name: "nightly-backup", serviceID: UInt64(service.serviceID), periodSeconds: 60, graceSeconds: 10))
        #expect(monitor.status == "new" && monitor.id.count >= 16 && monitor.deadlineAtMs == 0)
        let port = pipeline.ingestHTTPPort

        // A new monitor alerts only after its first ping: five minutes of silence page nobody.
        await Self.pass(pipeline, 300_000)
        #expect(try await Self.heartbeatIncidents(pipeline) == 0)

        let first = try await Self.ping(port, "/heartbeat/\(monitor.id)", body: "backup 1 ok: 3.2 GB")
        #expect(first.status == 200 && first.body == "OK\n")
        let pingedAt = clock.nowMs()
        // Down at last success + period + grace = 70 s: nothing at 69 s.
        await Self.pass(pipeline, 69_000)
        #expect(try await Self.heartbeatIncidents(pipeline) == 0)
        #expect(pipeline.sink.requests.isEmpty)
        await Self.pass(pipeline, 2_000)
        let pages = await pipeline.sink.waitForRequests(1, timeout: .seconds(10))
        let page = try #require(pages.first?.webhook)
        #expect(page.incident.dedupKey == "heartbeat:\(monitor.id)" && page.reason == "assigned" && page.user.name == "Alice")
        #expect(page.incident.title.hasPrefix("Heartbeat nightly-backup is down: no success ping since"), "\(page.incident.title)")
        // The incident carries the last ping's time and body.
        let details = try await pipeline.db.pool.withConnection { connection in
            try connection.query("SELECT details::text AS d FROM incidents WHERE dedup_key = $1", ["heartbeat:\(monitor.id)"]).string(0, "d") ?? ""
        }
        let map = JSON.stringMap(details)
        #expect(map["last_ping_body"] == "backup 1 ok: 3.2 GB" && map["last_ping_at"] == RFC3339.string(millis: pingedAt), "\(details)")
        let shown: Heartbeat = try await admin.call(Admin.GetHeartbeat, HeartbeatRequest(idOrName: "nightly-backup"))
        #expect(shown.status == "down" && shown.deadlineAtMs == 0)

        // Still down: no second page however long it stays silent; `log` changes nothing.
        await Self.pass(pipeline, 120_000)
        #expect(try await Self.ping(port, "/heartbeat/\(monitor.id)/log", body: "retrying").status == 200)
        #expect(try await Self.heartbeatIncidents(pipeline) == 1)
        // The next success resolves it.
        #expect(try await Self.ping(port, "/heartbeat/\(monitor.id)").status == 200)
        #expect(try await Self.heartbeatIncidents(pipeline, status: "resolved") == 1)

        // A failure pages at once: a non-zero exit code, with its output.
        let failed = try await Self.ping(port, "/heartbeat/\(monitor.id)/3", body: "pg_dump: disk full")
        #expect(failed.status == 200)
        #expect(try await Self.heartbeatIncidents(pipeline, status: "triggered") == 1)
        let reason = try await pipeline.db.pool.withConnection { connection in
            try connection.query("SELECT title FROM incidents WHERE dedup_key = $1 AND status = 'triggered'", ["heartbeat:\(monitor.id)"]).string(0, "title")
        }
        #expect(reason == "Heartbeat nightly-backup is down: the job exited with code 3")
        #expect(try await Self.ping(port, "/heartbeat/\(monitor.id)/0").status == 200)  // exit 0 is a success
        #expect(try await Self.heartbeatIncidents(pipeline, status: "resolved") == 2)

        // Unknown monitors and signals; the name is not the secret.
        #expect(try await Self.ping(port, "/heartbeat/nightly-backup").status == 404)
        #expect(try await Self.ping(port, "/heartbeat/\(monitor.id)/reboot").status == 404)
        #expect(try await Self.ping(port, "/heartbeat/\(monitor.id)/256").status == 404)
        await admin.close()
        await pipeline.shutdown()
    }

    /// Klaxon down longer than a period (here Assignment, which fires deadlines, for 5 minutes
    /// past 20 monitors' deadlines): when it is back no incident opens until a full period plus
    /// grace passes unpinged after the restart — and then each monitor opens exactly one.
    @Test func afterAnOutageDeadlinesMoveForwardInsteadOfPagingEveryMonitor() async throws {
        let clock = ManualClock()
        let pipeline = try await Pipeline(clock: clock)
        let service = try await pipeline.seed(users: ["Alice"])
        let admin = pipeline.client(.assignment)
        var ids: [String] = []
        for index in 0..<20 {
            let monitor: Heartbeat = try await admin.call(
                Admin.CreateHeartbeat, Heartbeat(name: "job-\(index)", serviceID: UInt64(service.serviceID), periodSeconds: 60, graceSeconds: 10))
            ids.append(monitor.id)
            #expect(try await Self.ping(pipeline.ingestHTTPPort, "/heartbeat/\(monitor.id)").status == 200)
        }
        await admin.close()
        await Self.pass(pipeline, 20_000)
        await pipeline.stop(.assignment)
        await pipeline.jump(to: clock.nowMs() + 300_000)  // every deadline (70 s) passed while it was down
        let restart = clock.nowMs()
        try await pipeline.start(.assignment)
        await pipeline.settle()
        await Self.pass(pipeline, 69_000)
        #expect(try await Self.heartbeatIncidents(pipeline) == 0)
        #expect(pipeline.sink.requests.isEmpty)
        await Self.pass(pipeline, 2_000)
        #expect(clock.nowMs() - restart == 71_000)
        let pages = await pipeline.sink.waitForRequests(20, timeout: .seconds(20))
        let state = try await pipeline.db.pool.withConnection { connection in
            let rows = try connection.query("SELECT name, status, deadline_at_ms - $1::bigint AS d, (SELECT checked_at_ms - $1::bigint FROM heartbeat_watch) AS w FROM heartbeats ORDER BY name LIMIT 3", [restart])
            return (0..<rows.count).map { "\(rows.string($0, "name")!) \(rows.string($0, "status")!) \(rows.string($0, "d") ?? "-") \(rows.string($0, "w") ?? "-")" }.joined(separator: "; ")
        }
        #expect(pages.count == 20, "\(state)")
        #expect(try await Self.heartbeatIncidents(pipeline) == 20)
        #expect(try await pipeline.db.scalar(
            "SELECT count(DISTINCT dedup_key) FROM incidents WHERE dedup_key = ANY($1::text[])", [PGArray(ids.map { "heartbeat:\($0)" })]) == 20)
        await pipeline.shutdown()
    }

    /// Two Assignment replicas fire the same due deadlines at once: each monitor triggers once.
    @Test func replicasShareDeadlinesAndNoneFiresTwice() async throws {
        let db = try await TestDatabase.create()
        let service = try await db.pool.transaction { connection in
            try Seed.service(
                connection, name: "Jobs", routingKey: Seed.newRoutingKey(),
                users: [Seed.User(name: "U", email: "u@example.com", webhookURL: "http://127.0.0.1:9/none")])
        }
        let now: Millis = 1_800_000_000_000
        try await db.pool.transaction { connection in
            for index in 0..<40 {
                var row = HeartbeatStore.Row(
                    id: "replica-monitor-\(index)", name: "m\(index)", serviceID: service.serviceID,
                    monitor: HeartbeatMonitor(periodSeconds: 60, graceSeconds: 0), createdAt: now - 120_000)
                _ = row.monitor.ping(.success, body: "", at: now - 61_000)
                try HeartbeatStore.insert(connection, row)
                try connection.query(
                    "UPDATE heartbeats SET status = 'up', last_success_at_ms = $2, deadline_at_ms = $3 WHERE id = $1",
                    [row.id, row.monitor.lastSuccessAt, row.monitor.deadline])
            }
            try connection.query("UPDATE heartbeat_watch SET checked_at_ms = $1", [now - 1_000])
        }
        let logger = Logger(label: "replicas")
        let replicas = (0..<2).map { _ in HeartbeatDeadlines(pool: db.pool, notifierOutbox: Waker(), logger: logger) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for replica in replicas { group.addTask { for _ in 0..<5 { _ = try await replica.fireDue(now: now) } } }
            try await group.waitForAll()
        }
        #expect(try await db.scalar("SELECT count(*) FROM incidents WHERE dedup_key LIKE 'heartbeat:%'") == 40)
        #expect(try await db.scalar("SELECT count(*) FROM timeline_entries WHERE type = 'trigger'") == 40)
        #expect(try await db.scalar("SELECT count(*) FROM heartbeats WHERE status = 'down'") == 40)
    }

    /// A cron job's `curl` pings (real time, the real curl): start, fail with output, success;
    /// Opsgenie's heartbeat ping with the GenieKey; and the CLI.
    @Test func curlPingsTheURLAndTheCLIShowsTheMonitor() async throws {
        let pipeline = try await Pipeline()
        let service = try await pipeline.seed(users: ["Alice"])
        let cli = try KlaxonCLI(address: "127.0.0.1:\(pipeline.config.assignmentListen.port)", token: pipeline.adminToken)
        let created = try await cli.run([
            "heartbeat", "create", "--name", "db-backup", "--service", String(service.serviceID), "--cron", "0 3 * * *",
            "--time-zone", "Europe/Paris", "--grace", "30m", "--start-timeout", "2h",
        ])
        #expect(created.status == 0, "\(created.err)")
        let id = try #require(created.out.split(separator: "/heartbeat/").dropFirst().first?.split(separator: " ").first.map(String.init), "\(created.out)")
        #expect(created.out.contains("cron \"0 3 * * *\" Europe/Paris, grace 1800 s, start timeout 7200 s"), "\(created.out)")
        let base = "http://127.0.0.1:\(pipeline.ingestHTTPPort)/heartbeat/\(id)"
        func curl(_ arguments: [String]) async throws -> (status: Int32, output: String) {
            try await offCooperativePool { try ThirdPartyClientTests.runBlocking("curl", ["-sS", "-m", "10"] + arguments) }
        }
        #expect(try await curl([base + "/start"]).output == "OK\n")
        let failed = try await curl(["--data-binary", "pg_dump: error: disk full", base + "/fail"])
        #expect(failed.output == "OK\n", "\(failed.output)")
        let pages = await pipeline.sink.waitForRequests(1, timeout: .seconds(15))
        #expect(pages.first?.webhook?.incident.title == "Heartbeat db-backup is down: the job reported a failure")
        let shown = try await cli.run(["heartbeat", "show", "db-backup"])
        #expect(shown.out.contains("status:       down (the job reported a failure)") && shown.out.contains("pg_dump: error: disk full"), "\(shown.out)")
        #expect(try await curl(["-I", "-o", "/dev/null", "-w", "%{http_code}", base]).output == "200")
        #expect(try await eventually(timeout: .seconds(10)) { try await Self.heartbeatIncidents(pipeline, status: "resolved") == 1 })
        // Opsgenie's heartbeat ping: by name, with a routing key of the monitor's service as GenieKey.
        let opsgenie = try await curl([
            "-H", "Authorization: GenieKey \(service.routingKey)", "-w", " %{http_code}",
            "http://127.0.0.1:\(pipeline.ingestHTTPPort)/v2/heartbeats/db-backup/ping",
        ])
        #expect(opsgenie.output.contains("PONG - Heartbeat received") && opsgenie.output.hasSuffix(" 202"), "\(opsgenie.output)")
        let unknown = try await curl([
            "-H", "Authorization: GenieKey \(service.routingKey)", "-w", " %{http_code}",
            "http://127.0.0.1:\(pipeline.ingestHTTPPort)/v2/heartbeats/nope/ping",
        ])
        #expect(unknown.output.contains("Heartbeat with name [nope] does not exist.") && unknown.output.hasSuffix(" 404"), "\(unknown.output)")
        let listed = try await cli.run(["heartbeat", "list"])
        #expect(listed.out.contains("db-backup") && listed.out.contains(" up "), "\(listed.out)")
        // Bad settings are named; delete removes it.
        let bad = try await cli.run(["heartbeat", "create", "--name", "x", "--service", String(service.serviceID), "--cron", "0 25 * * *"])
        #expect(bad.status == 3 && bad.err.contains("cron: hour \"25\""), "\(bad.err)")
        #expect(try await cli.run(["heartbeat", "delete", "db-backup"]).status == 0)
        #expect(try await curl(["-w", " %{http_code}", base]).output.hasSuffix(" 404"))
        await pipeline.shutdown()
    }
}
