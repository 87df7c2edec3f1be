import IncidentEngine
import KlaxonDomain
import Logging
import Shared

/// Surge detection (PRODUCT.md, "Major incident response"), run by Assignment's
/// "assignment.surge" loop every second: one `SurgeStore.step` in a transaction (one replica at
/// a time evaluates), logged, and Notifier's outbox poked when the plan paged anyone.
///
/// A surge opens one major incident ("Surge: 312 incidents across 7 services in 5 min") on
/// Klaxon's own service "Major incidents" (never listed, exported or pruned) and links the
/// window's incidents to it; incidents of the surge created later join it on the next steps;
/// once the rate has stayed below the threshold for the quiet period, the surge ends (the major
/// incident stays open for its responders to resolve).
public struct SurgeWatcher: Sendable {
    let pool: PostgresPool
    let notifierOutbox: Waker
    let logger: Logger

    public init(pool: PostgresPool, notifierOutbox: Waker, logger: Logger) {
        self.pool = pool
        self.notifierOutbox = notifierOutbox
        self.logger = logger
    }

    /// One evaluation at `now`; the loop runs it again within a second.
    public func step(now: Millis) async throws -> Millis? {
        let evaluated: SurgeStore.Step? = try await pool.transaction { connection in try SurgeStore.step(connection, now: now) }
        guard let step = evaluated else { return nil }
        switch step.decision {
        case .open:
            logger.warning("surge: major incident opened", metadata: [
                "incident.id": "\(step.majorIncidentID ?? 0)", "surge.incidents": "\(step.counts?.inWindow ?? 0)",
                "surge.services": "\(step.counts?.servicesInWindow ?? 0)", "surge.linked": "\(step.linked)"])
        case .end:
            logger.info("surge ended", metadata: ["incident.id": "\(step.majorIncidentID ?? 0)"])
        case .none, .continues:
            break
        }
        if step.queued > 0 { notifierOutbox.poke() }
        return nil
    }
}
