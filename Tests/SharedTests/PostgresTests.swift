import Foundation
import KlaxonTestSupport
import Logging
import NIOConcurrencyHelpers
import Shared
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The libpq layer against the real PostgreSQL that scripts/test starts.
@Suite struct PostgresTests {
    @Test func parametersRoundTripEveryType() async throws {
        let db = try await TestDatabase.create(migrate: false)
        let bytes: [UInt8] = [0, 1, 2, 0xFF, 0x27, 0x5C]  // NUL, quote and backslash included
        let row = try await db.pool.withConnection { connection in
            let result = try connection.query(
                "SELECT $1::text AS t, $2::bigint AS i, $3::bytea AS b, $4::text AS n, $5::boolean AS f",
                ["it's; DROP TABLE x; -- ☠", Int64.min, bytes, String?.none, true])
            return (result.string(0, "t"), result.int64(0, "i"), result.bytes(0, "b"), result.isNull(0, "n"), result.bool(0, "f"))
        }
        #expect(row.0 == "it's; DROP TABLE x; -- ☠")
        #expect(row.1 == Int64.min)
        #expect(row.2 == bytes)
        #expect(row.3)
        #expect(row.4 == true)
        await db.drop()
    }

    /// A work loop cancelled at shutdown while it writes must not keep its connections: NIO's
    /// thread pool drops a cancelled task's work item, and the pool used to lose that slot, so a
    /// few cancellations left every later caller waiting forever (an Ingest that never stopped).
    @Test func cancelledCallersGiveTheirConnectionsBack() async throws {
        let db = try await TestDatabase.create(migrate: false)
        let size = db.pool.configuration.maxConnections
        for _ in 0..<size {
            let task = Task {
                withUnsafeCurrentTask { $0?.cancel() }
                return try await db.pool.withConnection { try $0.query("SELECT 1 AS one").int(0, "one") }
            }
            _ = await task.result
        }
        // Probed from a task of its own: with the bug, it waits forever for a slot.
        let answer = NIOLockedValueBox<Int?>(nil)
        Task { answer.withLockedValue { $0 = 0 }; let one = try await db.pool.withConnection { try $0.query("SELECT 1 AS one").int(0, "one") }; answer.withLockedValue { $0 = one } }
        _ = await eventually(timeout: .seconds(5)) { answer.withLockedValue { $0 } == 1 }
        let answered = answer.withLockedValue { $0 }
        #expect(answered == 1, "the pool still lends connections after \(size) cancelled callers")
        await db.drop()
    }

    @Test func arraysRoundTripInBinaryFormat() async throws {
        let db = try await TestDatabase.create(migrate: false)
        let strings: [String?] = ["plain", "{\"json\": \"with \\\"quotes\\\" and \\\\\"}", "a,b}{", nil, "", "NULL", "ünïcødé ☠"]
        let numbers: [Int64] = [Int64.min, -1, 0, 42, Int64.max]
        let blobs: [[UInt8]] = [[], [0], [0xFF, 0x00, 0x5C, 0x22], Array(0...255)]
        let rows = try await db.pool.withConnection { connection in
            let text = try connection.query(
                "SELECT t, t IS NULL AS missing FROM unnest($1::text[]) WITH ORDINALITY AS u(t, n) ORDER BY n", [PGArray(strings)])
            let ints = try connection.query("SELECT i FROM unnest($1::bigint[]) WITH ORDINALITY AS u(i, n) ORDER BY n", [PGArray(numbers)])
            let bytes = try connection.query("SELECT b FROM unnest($1::bytea[]) WITH ORDINALITY AS u(b, n) ORDER BY n", [PGArray(bytea: blobs)])
            let empty = try connection.query(
                "SELECT cardinality($1::text[]) AS t, cardinality($2::bigint[]) AS i, cardinality($3::bytea[]) AS b",
                [PGArray([String]()), PGArray([Int64]()), PGArray(bytea: [])])
            return (
                (0..<text.count).map { text.bool($0, "missing")! ? nil : text.string($0, "t") },
                (0..<ints.count).map { ints.int64($0, "i")! },
                (0..<bytes.count).map { bytes.bytes($0, "b")! },
                [empty.int64(0, "t"), empty.int64(0, "i"), empty.int64(0, "b")])
        }
        #expect(rows.0 == strings)
        #expect(rows.1 == numbers)
        #expect(rows.2 == blobs)
        #expect(rows.3 == [0, 0, 0])
        await db.drop()
    }

    @Test func preparedStatementsAreReusedPerConnection() async throws {
        let db = try await TestDatabase.create(migrate: false)
        let count = try await db.pool.withConnection { connection -> Int in
            for value in 0..<50 { try connection.query("SELECT $1::int AS v", [value]) }
            return try connection.query("SELECT count(*) AS c FROM pg_prepared_statements").int(0, "c")!
        }
        #expect(count == 2)  // the SELECT above and the count query itself
        await db.drop()
    }

    /// Queued statements go out ahead of the next one in a single pipeline; a failure among them
    /// is thrown with its own SQLSTATE, nothing after it runs, and the transaction rolls back whole.
    @Test func queuedStatementsRunInOrderAndFailTheirTransaction() async throws {
        let db = try await TestDatabase.create()
        let seen = try await db.pool.transaction { connection -> [String] in
            try connection.enqueue("INSERT INTO inbox (consumer, message_id, received_at_ms) VALUES ('q', $1, 1)", ["a"])
            try connection.enqueue("INSERT INTO inbox (consumer, message_id, received_at_ms) VALUES ('q', $1, 2)", ["b"])
            let rows = try connection.query("SELECT message_id FROM inbox WHERE consumer = 'q' ORDER BY received_at_ms")
            return (0..<rows.count).compactMap { rows.string($0, "message_id") }
        }
        #expect(seen == ["a", "b"])

        do {
            try await db.pool.transaction { connection in
                try connection.enqueue("INSERT INTO inbox (consumer, message_id, received_at_ms) VALUES ('q', $1, 3)", ["c"])
                try connection.enqueue("INSERT INTO escalation_policies (name, num_loops) VALUES ('p', 10)")  // check violation
                try connection.enqueue("INSERT INTO inbox (consumer, message_id, received_at_ms) VALUES ('q', $1, 4)", ["d"])
            }
            Issue.record("expected the queued check violation at COMMIT")
        } catch let error as PostgresError {
            #expect(error.sqlState == "23514")
        }
        // Nothing of the failed transaction stayed, and the connection is fine for the next one.
        #expect(try await db.scalar("SELECT count(*) FROM inbox WHERE consumer = 'q'") == 2)
        #expect(try await db.scalar("SELECT count(*) FROM escalation_policies") == 0)
        await db.drop()
    }

    /// `combine` sends several writes as one statement (data-modifying CTEs), each with its own
    /// placeholders renumbered; one that fails fails the whole transaction.
    @Test func combinedWritesAreOneStatement() async throws {
        #expect(PGConnection.renumbered("VALUES ($1, $2, $12) -- $", by: 3) == "VALUES ($4, $5, $15) -- $")
        let db = try await TestDatabase.create()
        try await db.pool.transaction { connection in
            try connection.combine {
                try connection.enqueue("INSERT INTO inbox (consumer, message_id, received_at_ms) VALUES ('c', $1, $2)", ["a", Int64(1)])
                try connection.enqueue(
                    "INSERT INTO inbox (consumer, message_id, received_at_ms) SELECT 'c', m, $2 FROM unnest($1::text[]) AS m",
                    [PGArray(["b", "c"]), Int64(2)])
                try connection.enqueue("INSERT INTO escalation_policies (name, num_loops) VALUES ($1, $2)", ["p", Int64(3)])
            }
        }
        #expect(try await db.scalar("SELECT count(*) FROM inbox WHERE consumer = 'c'") == 3)
        #expect(try await db.scalar("SELECT sum(received_at_ms) FROM inbox WHERE consumer = 'c'") == 5)
        #expect(try await db.scalar("SELECT num_loops FROM escalation_policies WHERE name = 'p'") == 3)
        do {
            try await db.pool.transaction { connection in
                try connection.combine {
                    try connection.enqueue("INSERT INTO inbox (consumer, message_id, received_at_ms) VALUES ('c', $1, 9)", ["d"])
                    try connection.enqueue("INSERT INTO escalation_policies (name, num_loops) VALUES ($1, 10)", ["q"])  // check violation
                }
            }
            Issue.record("expected the check violation")
        } catch let error as PostgresError {
            #expect(error.sqlState == "23514")
        }
        #expect(try await db.scalar("SELECT count(*) FROM inbox WHERE consumer = 'c'") == 3)
        await db.drop()
    }

    @Test func errorsAreMappedBySQLState() async throws {
        let db = try await TestDatabase.create()
        do {
            try await db.pool.withConnection { connection in
                try connection.query("INSERT INTO escalation_policies (name, num_loops) VALUES ('p', 10)")
            }
            Issue.record("expected a check violation")
        } catch let error as PostgresError {
            #expect(error.sqlState == "23514")
            #expect(error.rpcError.code == .invalidArgument)
        }
        try await db.pool.withConnection { connection in
            try connection.query("INSERT INTO inbox (consumer, message_id, received_at_ms) VALUES ('c', 'm', 1)")
        }
        do {
            try await db.pool.withConnection { connection in
                try connection.query("INSERT INTO inbox (consumer, message_id, received_at_ms) VALUES ('c', 'm', 2)")
            }
            Issue.record("expected a unique violation")
        } catch let error as PostgresError {
            #expect(error.isUniqueViolation)
            #expect(error.rpcError.code == .alreadyExists)
        }
        await db.drop()
    }

    @Test func transactionRollsBackOnError() async throws {
        let db = try await TestDatabase.create()
        struct Boom: Error {}
        await #expect(throws: Boom.self) {
            try await db.pool.transaction { connection in
                try connection.query("INSERT INTO inbox (consumer, message_id, received_at_ms) VALUES ('c', 'rolled-back', 1)")
                throw Boom()
            }
        }
        #expect(try await db.scalar("SELECT count(*) FROM inbox") == 0)
        await db.drop()
    }

    /// Two serializable transactions that read and write the same row: PostgreSQL aborts one
    /// with 40001, and the pool runs it again, so both increments land.
    @Test func serializationFailuresAreRetried() async throws {
        let db = try await TestDatabase.create(migrate: false)
        try await db.pool.withConnection { connection in
            try connection.execute("CREATE TABLE counter (id int PRIMARY KEY, value int NOT NULL); INSERT INTO counter VALUES (1, 0)")
        }
        let attempts = NIOLockedValueBox(0)
        let bothRead = NIOLockedValueBox(0)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<2 {
                group.addTask {
                    try await db.pool.transaction(.serializable) { connection in
                        let first = attempts.withLockedValue { $0 += 1; return $0 <= 2 }
                        let value = try connection.query("SELECT value FROM counter WHERE id = 1").int(0, "value")!
                        if first {
                            // Make the two first attempts overlap: both read before either writes.
                            bothRead.withLockedValue { $0 += 1 }
                            while bothRead.withLockedValue({ $0 }) < 2 { usleep(1_000) }
                        }
                        try connection.query("UPDATE counter SET value = $1 WHERE id = 1", [value + 1])
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(try await db.scalar("SELECT value FROM counter WHERE id = 1") == 2)
        #expect(attempts.withLockedValue { $0 } == 3)  // exactly one retry
        await db.drop()
    }

    @Test func migrationsApplyOnceEvenWhenStartedConcurrently() async throws {
        let db = try await TestDatabase.create(migrate: false)
        let logger = Logger(label: "test")
        let results = try await withThrowingTaskGroup(of: [String].self) { group in
            for _ in 0..<3 {
                group.addTask {
                    let pool = PostgresPool(url: db.url, logger: logger)
                    defer { Task { await pool.shutdown() } }
                    return try await Migrator.migrate(pool, now: 42, logger: logger)
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        let all = try Migrator.bundled().map(\.version)
        // Each migration applied once, by one of the callers, each caller in order (they may share
        // the work: the lock is taken per migration, in its transaction).
        #expect(results.flatMap { $0 }.sorted() == all.sorted(), "\(results)")
        #expect(results.allSatisfy { $0 == $0.sorted() })
        let order = try await db.pool.withConnection { connection in
            let rows = try connection.query("SELECT version FROM schema_migrations ORDER BY ctid")
            return (0..<rows.count).compactMap { rows.string($0, "version") }
        }
        #expect(order == all, "applied out of order: \(order)")
        #expect(try await db.scalar("SELECT count(*) FROM schema_migrations") == Int64(all.count))
        #expect(try await Migrator.migrate(db.pool, now: 43, logger: logger).isEmpty)
        await db.drop()
    }

    /// The binary carries its migrations (a copied binary needs nothing beside it): the embedded
    /// list is exactly Sources/Shared/Migrations/*.sql — run scripts/gen-migrations after adding one.
    @Test func embeddedMigrationsAreTheSQLFiles() throws {
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Sources/Shared/Migrations")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".sql") }.sorted()
        let embedded = try Migrator.bundled()
        #expect(embedded.map(\.version) == files.map { String($0.dropLast(4)) }, "stale: run scripts/gen-migrations")
        for (migration, file) in zip(embedded, files) {
            let sql = try String(contentsOf: folder.appendingPathComponent(file), encoding: .utf8)
            #expect(migration.sql.trimmingCharacters(in: .whitespacesAndNewlines) == sql.trimmingCharacters(in: .whitespacesAndNewlines),
                    "\(file) differs from its embedded copy: run scripts/gen-migrations")
        }
    }

    @Test func poolServesMoreCallersThanConnections() async throws {
        let db = try await TestDatabase.create(migrate: false)
        var configuration = PostgresConfiguration(url: db.url)
        configuration.maxConnections = 2
        let pool = PostgresPool(configuration: configuration, logger: Logger(label: "test"))
        let backends = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<40 {
                group.addTask {
                    try await pool.withConnection { connection in
                        try connection.query("SELECT pg_backend_pid() AS pid, pg_sleep(0.005)").int(0, "pid")!
                    }
                }
            }
            return try await group.reduce(into: Set<Int>()) { $0.insert($1) }
        }
        #expect(backends.count <= 2)
        await pool.shutdown()
        await db.drop()
    }

    @Test func unreachableDatabaseIsAConnectionError() async throws {
        let pool = PostgresPool(url: "postgresql://klaxon@127.0.0.1:1/none?connect_timeout=2", logger: Logger(label: "test"))
        do {
            _ = try await pool.withConnection { try $0.query("SELECT 1") }
            Issue.record("expected a connection error")
        } catch let error as PostgresError {
            #expect(error.isConnectionFailure)
            #expect(error.rpcError.code == .unavailable)
        }
        // The failed open gave its slot back: the pool is not wedged.
        await #expect(throws: PostgresError.self) { _ = try await pool.withConnection { try $0.query("SELECT 1") } }
        await pool.shutdown()
    }
}
