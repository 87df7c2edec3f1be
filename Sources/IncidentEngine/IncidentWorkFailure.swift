import Shared
import KlaxonDomain
import Logging

/// One incident whose processing failed: it backs off on its own and says why, so every other
/// incident keeps flowing (PRODUCT.md, "Deleting things": a failure is retried with backoff and
/// logged; it never holds up others).
public enum IncidentWorkFailure {
    /// 1 s, 2 s, 4 s, … capped at 5 min.
    public static let firstBackoffMs: Millis = 1_000
    public static let maxBackoffMs: Millis = 300_000

    /// Records the failure on the incident (outside the rolled-back savepoint) and logs it at
    /// error level with the incident id and the reason.
    public static func record(
        _ connection: PGConnection, incidentID: Int64, attempts: Int, error: any Error, now: Millis, work: String, logger: Logger
    ) throws {
        let retryAt = now + Backoff.delay(afterFailures: attempts, first: firstBackoffMs, cap: maxBackoffMs)
        let reason = "\(error)"
        logger.error(
            "incident processing failed; it backs off, others go on",
            metadata: ["incident.id": "\(incidentID)", "work": "\(work)", "error": "\(reason)",
                       "retry.attempt": "\(attempts)", "retry.at_ms": "\(retryAt)"])
        try connection.query(
            "UPDATE incidents SET work_attempts = $2, work_retry_at_ms = $3, work_last_error = $4 WHERE id = $1",
            [incidentID, attempts, retryAt, reason])
    }
}
