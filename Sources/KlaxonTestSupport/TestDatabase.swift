import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOPosix
import Shared

/// A fresh, migrated database per test on the throwaway cluster that scripts/test starts
/// (KLAXON_TEST_DATABASE_URL points at its `postgres` database).
public struct TestDatabase: Sendable {
    public let name: String
    public let url: String
    public let pool: PostgresPool
    /// Migrated databases are emptied and reused by the next test of this process on `drop()`.
    let recyclable: Bool

    public static var adminURL: String {
        get throws {
            guard let url = ProcessInfo.processInfo.environment["KLAXON_TEST_DATABASE_URL"], !url.isEmpty else {
                throw ConfigError(description: "KLAXON_TEST_DATABASE_URL is not set: run the tests with scripts/test, which starts PostgreSQL")
            }
            return url
        }
    }

    public static func create(logger: Logger = Logger(label: "test"), migrate: Bool = true) async throws -> TestDatabase {
        let admin = try adminURL
        let name = "klaxon_t_\(getpid())_\(UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased())"
        // libpq calls block: they run on NIO's thread pool, never on the two cooperative threads
        // every test's async code (and the services under test) share.
        if await leftovers.first() { _ = try? await blocking { Self.dropLeftovers(try PGConnection(url: admin)) } }
        if migrate {
            // An emptied database a finished test gave back, or a copy of one migrated once: no
            // test pays for nine migrations, few for a CREATE DATABASE (≈ 0.2 s of a busy cluster).
            if let reused = await recycled.take() {
                let url = Self.url(admin, database: reused)
                return TestDatabase(name: reused, url: url, pool: Self.pool(url, logger), recyclable: true)
            }
            let template = try await migratedTemplate(admin: admin, logger: logger)
            _ = try await blocking { try PGConnection(url: admin).execute("CREATE DATABASE \(name) TEMPLATE \(template)") }
        } else {
            _ = try await blocking { try PGConnection(url: admin).execute("CREATE DATABASE \(name)") }
        }
        let url = Self.url(admin, database: name)
        return TestDatabase(name: name, url: url, pool: Self.pool(url, logger), recyclable: migrate)
    }

    private static let recycled = Recycled()
    private static let leftovers = Recycled()

    /// Databases of test processes that are gone (their pid no longer runs on this machine):
    /// a process keeps its emptied databases for reuse until it ends.
    static func dropLeftovers(_ connection: PGConnection) {
        guard let rows = try? connection.query("SELECT datname FROM pg_database WHERE datname LIKE 'klaxon\\_t\\_%'") else { return }
        for row in 0..<rows.count {
            guard let name = rows.string(row, "datname") else { continue }
            let parts = name.split(separator: "_")
            guard parts.count == 4, let pid = Int32(parts[2]), pid != getpid(), kill(pid, 0) != 0 else { continue }
            _ = try? connection.execute("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
        }
    }

    private static let template = TemplateOnce()

    /// The migrated template of this build's migrations, named by their hash (so a changed
    /// migration gets a new one), made once per cluster; built under a temporary name and renamed,
    /// so a concurrent test process never copies a half-migrated one.
    static func migratedTemplate(admin: String, logger: Logger) async throws -> String {
        try await template.value {
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a over every migration
            for migration in try Migrator.bundled() {
                for byte in (migration.version + migration.sql).utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
            }
            let name = "klaxon_tpl_\(String(hash, radix: 16))"
            let building = "\(name)_\(UUID().uuidString.prefix(8).lowercased())"
            let exists = try await blocking { () -> Bool in
                let connection = try PGConnection(url: admin)
                if try connection.query("SELECT 1 FROM pg_database WHERE datname = $1", [name]).count == 1 { return true }
                try connection.execute("CREATE DATABASE \(building)")
                return false
            }
            if exists { return name }
            let pool = PostgresPool(url: Self.url(admin, database: building), logger: logger)
            try await Migrator.migrate(pool, now: 0, logger: logger)
            await pool.shutdown()
            try await blocking {
                let connection = try PGConnection(url: admin)
                do {
                    try connection.execute("ALTER DATABASE \(building) RENAME TO \(name)")
                } catch {
                    _ = try? connection.execute("DROP DATABASE IF EXISTS \(building) WITH (FORCE)")  // another process won
                }
            }
            return name
        }
    }

    /// Replaces the database of a libpq URI.
    static func url(_ admin: String, database: String) -> String {
        guard var components = URLComponents(string: admin) else { return admin }
        components.path = "/\(database)"
        return components.string ?? admin
    }

    public func drop() async {
        await pool.shutdown()
        if recyclable, (try? await Self.blocking { try emptyForReuse() }) == true {
            await Self.recycled.give(name)
            return
        }
        let name = self.name
        _ = try? await Self.blocking {
            try PGConnection(url: try Self.adminURL).execute("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
        }
    }

    /// A test's pool: four connections are plenty for one test, and every PostgreSQL backend
    /// started costs the cluster CPU the tests running beside it need.
    static func pool(_ url: String, _ logger: Logger) -> PostgresPool {
        var configuration = PostgresConfiguration(url: url)
        configuration.maxConnections = 4
        return PostgresPool(configuration: configuration, logger: logger)
    }

    /// Runs blocking libpq work on NIO's thread pool.
    static func blocking<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await NIOThreadPool.singleton.runIfActive(work)
    }

    /// Empties every table but the migrations' record and restarts the sequences, puts back the
    /// rows migrations seed (a database as a fresh migration leaves it), unless someone
    /// is still connected (a service a test left running): then the database is not reused.
    private func emptyForReuse() throws -> Bool {
        let connection = try PGConnection(url: url)
        let others = try connection.query(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
        guard others.int64(0, "n") == 0 else { return false }
        let tables = try connection.query(
            "SELECT string_agg(quote_ident(tablename), ', ') AS list FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_migrations'")
        if let list = tables.string(0, "list") { try connection.execute("TRUNCATE \(list) RESTART IDENTITY CASCADE") }
        // The rows the migrations themselves write (0012: surge detection's one settings row).
        try connection.execute("INSERT INTO surge DEFAULT VALUES")
        return true
    }

    /// Every message waiting in the outbox (a bundle row counts as the messages it holds).
    public func outboxMessages(destination: String = Outbox.Destination.assignment) async throws -> [(method: String, body: [UInt8])] {
        try await pool.withConnection { connection in
            let rows = try connection.query("SELECT method, body FROM outbox WHERE destination = $1 ORDER BY id", [destination])
            return try (0..<rows.count).flatMap { try Outbox.messages(method: rows.string($0, "method")!, body: rows.bytes($0, "body") ?? []) }
        }
    }

    /// One value from one query, for assertions.
    public func scalar(_ sql: String, _ params: [any PGEncodable] = []) async throws -> Int64? {
        try await pool.withConnection { connection in
            let result = try connection.query(sql, params)
            return result.isEmpty ? nil : result.string(0, result.columnName(0)).flatMap { Int64($0) }
        }
    }
}

/// Runs an async computation once; concurrent callers wait for the first one's result.
actor TemplateOnce {
    private var task: Task<String, Error>?

    func value(_ make: @escaping @Sendable () async throws -> String) async throws -> String {
        if let task { return try await task.value }
        let task = Task { try await make() }
        self.task = task
        return try await task.value
    }
}

/// Emptied, migrated databases waiting for the next test.
actor Recycled {
    private var names: [String] = []
    private var ran = false
    /// True the first time only.
    func first() -> Bool {
        defer { ran = true }
        return !ran
    }
    func take() -> String? { names.popLast() }
    func give(_ name: String) { names.append(name) }
}
