import KlaxonDomain
import Logging

/// Due work: keeps the query planner's statistics in step with Klaxon's tables as they grow, so
/// no statement keeps a plan made for an empty table.
///
/// Every statement is prepared once per connection, and PostgreSQL keeps the plan of a prepared
/// statement until something invalidates it, such as an ANALYZE of a table it reads. On a fresh
/// database the first plans are made while `incidents` and `notifications` are empty. A
/// sequential scan is the right plan for an empty table. It is a disaster for the same statement
/// a minute later, when a surge has put 20,000 rows in the table. Autovacuum fixes this only
/// after its nap (a minute by default), and its thresholds follow changes, not growth. In
/// `scripts/bench-e2e`, the same code gave 247 and 358 pages/s instead of about 4,000 while plans
/// made for empty tables scanned the whole table on every step (docs/PERFORMANCE.md).
///
/// So every second this checks each table of the schema that the connecting role owns. It runs
/// `ANALYZE` on a table whose live rows have more than doubled since its statistics were taken,
/// and are over `minimumRows`. ANALYZE invalidates the plans that read that table, so they are
/// made again, for its size. A table that only churns (updates, or inserts and deletes at a
/// steady size) is left to autovacuum. A surge from nothing to 20,000 rows costs about four
/// ANALYZEs of each growing table. `SKIP_LOCKED` lets replicas and autovacuum share the work
/// without waiting on each other.
public struct StatisticsKeeper: Sendable {
    public static let intervalMs: Millis = 1_000
    /// Below this many live rows a sequential scan costs little, whatever the plan says.
    public static let minimumRows = 1_000
    /// The sample of the keeper's ANALYZE (300 rows per unit): enough to size a table.
    public static let statisticsTarget = 10
    let pool: PostgresPool
    let logger: Logger

    public init(pool: PostgresPool, logger: Logger) {
        self.pool = pool
        self.logger = logger
    }

    /// The tables whose live rows outgrew their statistics: more than twice the rows counted at
    /// the last ANALYZE or VACUUM (none before the first), and at least `minimumRows`.
    public func outgrown() async throws -> [String] {
        try await pool.withConnection { connection in
            let rows = try connection.query(
                """
                SELECT c.relname AS name FROM pg_class c JOIN pg_stat_user_tables s ON s.relid = c.oid
                WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r'
                  AND pg_has_role(current_user, c.relowner, 'USAGE')
                  AND s.n_live_tup >= $1::bigint AND s.n_live_tup > 2 * greatest(c.reltuples, 0)
                ORDER BY c.relname
                """, [Int64(Self.minimumRows)])
            return (0..<rows.count).map { rows.string($0, "name")! }
        }
    }

    /// Analyzes what outgrew its statistics at `now`; returns the next check's instant and, for
    /// tests and the log, the tables analyzed.
    @discardableResult
    public func check(now: Millis) async throws -> (next: Millis, analyzed: [String]) {
        let tables = try await outgrown()
        for table in tables {
            let quoted = "\"" + table.replacingOccurrences(of: "\"", with: "\"\"") + "\""
            // A sample of 3,000 rows, not 30,000: what the plans lacked is the table's size, and at
            // the default target an ANALYZE of timeline_entries took 0.8 s of CPU in a surge.
            // Autovacuum's own ANALYZE, later, takes the full sample again.
            try await pool.transaction(durable: false) { connection in
                _ = try connection.execute("SET LOCAL default_statistics_target = \(Self.statisticsTarget)")
                _ = try connection.execute("ANALYZE (SKIP_LOCKED) \(quoted)")
            }
        }
        if !tables.isEmpty {
            logger.info("planner statistics refreshed for tables that grew", metadata: ["tables": "\(tables.joined(separator: ","))"])
        }
        return (now + Self.intervalMs, tables)
    }

    public func step(now: Millis) async throws -> Millis? {
        try await check(now: now).next
    }
}
