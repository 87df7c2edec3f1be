import IncidentEngine
import KlaxonDomain
import Logging
import Shared

/// Fires incident timers kept in PostgreSQL: escalation, ack timeout (or snooze end) and
/// auto-resolve. Due incidents are claimed with FOR UPDATE SKIP LOCKED in batches, so several
/// Assignment replicas share the work and none fires a timer twice; each timer goes through
/// the incident rules, which ignore a timer that is no longer due. Survives restarts: the
/// instants are columns, read again at start.
public struct TimerManager: Sendable {
    /// The timer loop reads the next due timer at least this often (timers set by other
    /// processes); a new timer due sooner pokes it.
    public static let pollMs: Millis = 1_000
    let pool: PostgresPool
    let notifierOutbox: Waker
    let batchSize: Int
    let logger: Logger

    public init(
        pool: PostgresPool, notifierOutbox: Waker, batchSize: Int = 250, logger: Logger
    ) {
        self.pool = pool
        self.notifierOutbox = notifierOutbox
        self.batchSize = batchSize
        self.logger = logger
    }

    /// Fires what is due at `now`; returns the next due instant, if any. A claimed batch fires in
    /// one go (loads, rules, pipelined saves, one bundle of notify requests); if that fails, each
    /// incident runs in its own savepoint: one that fails (bad data, a constraint) is rolled back
    /// alone, backs off (`work_retry_at_ms`, 1 s doubling to 5 min) and is logged with its id and
    /// the reason, while every other due incident fires on time.
    public func fireDue(now: Millis) async throws -> Millis? {
        let batchSize = self.batchSize
        let logger = self.logger
        let (fired, notified, lags) = try await pool.transaction { connection -> (Int, Int, [Int64]) in
            let due = try connection.query(
                """
                SELECT id, work_attempts, next_timer_at_ms FROM incidents
                WHERE status <> 'resolved' AND next_timer_at_ms <= $1
                  AND (work_retry_at_ms IS NULL OR work_retry_at_ms <= $1)
                ORDER BY next_timer_at_ms
                LIMIT $2 FOR UPDATE SKIP LOCKED
                """, [now, batchSize])
            let ids = (0..<due.count).map { due.int64($0, "id")! }
            let lags = (0..<due.count).map { now - due.int64($0, "next_timer_at_ms")! }
            do {
                let outcomes = try connection.savepoint {
                    try IncidentStore.runBatch(incidentIDs: ids, connection: connection, now: now) { core, state in
                        try core.fireDueTimers(state, now: now)
                    }
                }
                return (due.count, outcomes.reduce(0) { $0 + $1.notified }, lags)
            } catch let error as PostgresError where error.isConnectionFailure || error.isRetryable {
                throw error
            } catch {
                logger.warning("timer batch failed; firing its incidents one by one", metadata: [
                    "timers.incidents": "\(ids.count)", "error": "\(error)"])
            }
            var notified = 0
            for row in 0..<due.count {
                let incidentID = due.int64(row, "id")!
                do {
                    notified += try connection.savepoint { try Self.fire(incidentID: incidentID, connection: connection, now: now) }
                } catch let error as PostgresError where error.isConnectionFailure || error.isRetryable {
                    throw error
                } catch {
                    try IncidentWorkFailure.record(
                        connection, incidentID: incidentID, attempts: due.int(row, "work_attempts")! + 1, error: error, now: now,
                        work: "timer", logger: logger)
                }
            }
            return (due.count, notified, lags)
        }
        for lag in lags { KlaxonMetrics.timerFired(lagMs: lag) }
        if notified > 0 { notifierOutbox.poke() }
        if fired > 0 {
            logger.debug("fired incident timers", metadata: ["timers.incidents": "\(fired)"])
            if fired == batchSize { return now }
        }
        return try await pool.withConnection { connection in
            // The earliest timer not backing off (index order), or the earliest end of a backoff:
            // one statement, one round trip.
            try connection.query(
                """
                SELECT least(
                    (SELECT next_timer_at_ms FROM incidents
                     WHERE status <> 'resolved' AND next_timer_at_ms IS NOT NULL AND work_retry_at_ms IS NULL
                     ORDER BY next_timer_at_ms LIMIT 1),
                    (SELECT min(greatest(next_timer_at_ms, work_retry_at_ms)) FROM incidents
                     WHERE work_retry_at_ms IS NOT NULL AND status <> 'resolved' AND next_timer_at_ms IS NOT NULL)) AS next
                """
            ).int64(0, "next")
        }
    }

    /// Every timer of one incident due at `now`: one load, the incident rules decide (which
    /// timer is due, what a stale one means), one save.
    static func fire(incidentID: Int64, connection: PGConnection, now: Millis) throws -> Int {
        let outcome = try IncidentStore.run(incidentID: incidentID, connection: connection, now: now) { core, state in
            try core.fireDueTimers(state, now: now)
        }
        return outcome?.notified ?? 0
    }
}
