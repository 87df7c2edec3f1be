import IncidentEngine
import KlaxonDomain
import Logging
import NIOConcurrencyHelpers
import Shared

/// Fires heartbeat monitors' deadlines, kept in PostgreSQL like every timer: claimed with FOR
/// UPDATE SKIP LOCKED (replicas share them, none fires twice), each missed one triggering its
/// incident `heartbeat:{id}` and paging its level 1 in the same transaction. After Klaxon itself
/// was down for longer than `outageMs`, deadlines that fell in the gap move a whole period past
/// the restart instead of paging for every monitor at once. The same poll tells outbound webhook
/// subscribers when maintenance windows start and end.
public struct HeartbeatDeadlines: Sendable {
    let pool: PostgresPool
    let notifierOutbox: Waker
    let outageMs: Millis
    let logger: Logger
    /// Deadlines are read at the next one known, and at least every `pollMs` (monitors made and
    /// pinged elsewhere), not on every timer step.
    let pollMs: Millis = 5_000
    private let nextCheck = NIOLockedValueBox<Millis>(0)

    public init(pool: PostgresPool, notifierOutbox: Waker, outageMs: Millis = 60_000, logger: Logger) {
        self.pool = pool
        self.notifierOutbox = notifierOutbox
        self.outageMs = outageMs
        self.logger = logger
    }

    public func fireDue(now: Millis) async throws -> Millis? {
        let scheduled = nextCheck.withLockedValue { $0 }
        guard now >= scheduled else { return scheduled }
        let outageMs = self.outageMs
        let (fired, next, notified) = try await pool.transaction { connection -> ([HeartbeatStore.Outcome], Millis?, Int) in
            let (outcomes, next) = try HeartbeatStore.fireDue(connection, now: now, outageMs: outageMs)
            var notified = 0
            for outcome in outcomes where outcome.created {
                // Assignment owns incidents: the trigger applies here, in the deadline's transaction
                // (the outbox message Ingest's writer queued finds it applied and changes nothing).
                notified += try IncidentStore.run(.trigger, incidentID: outcome.incidentID!, connection: connection, now: now)?.notified ?? 0
            }
            return (outcomes, next, notified)
        }
        for outcome in fired where outcome.effect != nil {
            logger.warning("heartbeat missed", metadata: [
                "heartbeat.name": "\(outcome.row.name)", "heartbeat.reason": "\(outcome.row.monitor.downReason)",
                "incident.id": "\(outcome.incidentID.map(String.init) ?? (outcome.dropped ? "dropped by maintenance" : "none"))"])
            KlaxonMetrics.heartbeat(event: "missed")
        }
        if notified > 0 { notifierOutbox.poke() }
        // Maintenance windows starting and ending, told to webhook subscribers (within a poll).
        let announced = try await pool.transaction { connection in try MaintenanceStore.announce(connection, now: now) }
        if announced > 0 { logger.debug("maintenance window boundaries told to webhook subscribers", metadata: ["events": "\(announced)"]) }
        let check = min(next ?? Millis.max, now + pollMs)
        nextCheck.withLockedValue { $0 = check }
        return check
    }
}
