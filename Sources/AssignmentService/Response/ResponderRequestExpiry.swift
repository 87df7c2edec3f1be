import IncidentEngine
import KlaxonDomain
import Logging
import Shared

/// Due work: pending responder requests whose timeout has passed get no answer (timelined at the
/// timeout). Its own loop, woken for the earliest timeout (and every second for requests other
/// replicas made), not a chore hidden in the surge loop.
public struct ResponderRequestExpiry: Sendable {
    let pool: PostgresPool
    let logger: Logger

    public init(pool: PostgresPool, logger: Logger) {
        self.pool = pool
        self.logger = logger
    }

    /// Expires what is due at `now`; returns when the next request times out.
    public func step(now: Millis) async throws -> Millis? {
        try await pool.transaction { connection in
            let changed = try ResponseStore.expireDue(connection, now: now)
            if changed > 0 {
                self.logger.debug("responder requests expired", metadata: ["incidents": "\(changed)"])
            }
            return try ResponseStore.nextTimeout(connection)
        }
    }
}
