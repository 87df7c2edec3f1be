import KlaxonDomain
import Logging

/// Due work: inbox rows (every consumer's) older than the retention are deleted once an hour, in
/// batches (no long transaction). Its own loop, not a chore inside another manager's.
public struct InboxPruner: Sendable {
    public static let intervalMs: Millis = 3_600_000
    let pool: PostgresPool
    let retentionMs: Millis
    let logger: Logger

    public init(pool: PostgresPool, retentionMs: Millis, logger: Logger) {
        self.pool = pool
        self.retentionMs = retentionMs
        self.logger = logger
    }

    /// Prunes what is past the retention at `now`; the next run is an hour later.
    public func step(now: Millis) async throws -> Millis? {
        let before = now - retentionMs
        var total = 0
        while true {
            let pruned = try await pool.transaction { try Inbox.prune($0, before: before) }
            total += pruned
            if pruned < 10_000 { break }
        }
        if total > 0 { logger.info("inbox pruned", metadata: ["inbox.pruned": "\(total)", "inbox.before_ms": "\(before)"]) }
        return now + Self.intervalMs
    }
}
