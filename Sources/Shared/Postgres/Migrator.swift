import KlaxonDomain
import Logging

/// Applies the numbered SQL files of Migrations/ in order, each once, in its own transaction,
/// under an advisory lock so services starting together do not race.
public enum Migrator {
    static let advisoryLockKey: Int64 = 0x6B6C_6178_6F6E  // "klaxon"

    public struct Migration: Sendable {
        public var version: String
        public var sql: String
    }

    /// The migrations embedded in the binary (scripts/gen-migrations), so a copied binary needs
    /// nothing beside it.
    public static func bundled() throws -> [Migration] { embedded }

    /// The embedded migrations the database has not applied (readiness: a binary is not ready on
    /// a schema older than its own).
    public static func pending(_ connection: PGConnection) throws -> [String] {
        let exists = try connection.query("SELECT to_regclass('schema_migrations') IS NOT NULL AS present").bool(0, "present") ?? false
        guard exists else { return try bundled().map(\.version) }
        let done = try connection.query("SELECT version FROM schema_migrations")
        let versions = Set((0..<done.count).compactMap { done.string($0, "version") })
        return try bundled().map(\.version).filter { !versions.contains($0) }
    }

    /// Returns the versions applied by this call. Each migration runs in its own transaction
    /// holding a transaction-scoped advisory lock and checks again that it is still pending, so
    /// processes starting together apply each once — also through pgbouncer in transaction
    /// mode, where a session-level lock could be left on a server connection nobody owns.
    @discardableResult
    public static func migrate(_ pool: PostgresPool, now: Millis, logger: Logger) async throws -> [String] {
        let migrations = try bundled()
        let applied = try await pool.withConnection { connection -> [String] in
            func locked<T>(_ body: () throws -> T) throws -> T {
                try connection.execute("BEGIN")
                do {
                    try connection.query("SELECT pg_advisory_xact_lock($1)", [advisoryLockKey])
                    let result = try body()
                    try connection.execute("COMMIT")
                    return result
                } catch {
                    _ = try? connection.execute("ROLLBACK")
                    throw error
                }
            }
            _ = try locked {
                try connection.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version text PRIMARY KEY, applied_at_ms bigint NOT NULL)")
            }
            let done = try connection.query("SELECT version FROM schema_migrations")
            let doneVersions = Set((0..<done.count).compactMap { done.string($0, "version") })
            var applied: [String] = []
            for migration in migrations where !doneVersions.contains(migration.version) {
                let ran = try locked { () throws -> Bool in
                    guard try connection.query("SELECT 1 FROM schema_migrations WHERE version = $1", [migration.version]).isEmpty else {
                        return false  // another process applied it meanwhile
                    }
                    try connection.execute(migration.sql)
                    try connection.query(
                        "INSERT INTO schema_migrations (version, applied_at_ms) VALUES ($1, $2)", [migration.version, now])
                    return true
                }
                if ran { applied.append(migration.version) }
            }
            return applied
        }
        for version in applied { logger.info("applied migration", metadata: ["db.migration": "\(version)"]) }
        return applied
    }
}
