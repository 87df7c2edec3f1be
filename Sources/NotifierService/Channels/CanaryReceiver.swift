import KlaxonDomain
import Shared

/// Klaxon's own loopback receiver (issue 26, "the pager watches itself"): the `canary` contact
/// method's page is delivered by recording its round trip in `canary_rounds`, where the Ingest that
/// started it waits for it. Only the canary's own user has such a method (the API refuses the
/// kind); its pages count in no metric of real pages.
struct CanaryReceiver: DeliveryChannel {
    static let kind = "canary"
    let pool: PostgresPool
    let clock: any WallClock
    let name: String

    func deliver(to address: String, idempotencyKey: String, message: WebhookMessage) async throws {
        let dedupKey = message.incident.dedupKey
        let now = clock.nowMs()
        try await pool.withConnection { connection in
            try connection.query(
                "UPDATE canary_rounds SET delivered_at_ms = $2, delivered_by = $3 WHERE dedup_key = $1 AND delivered_at_ms IS NULL",
                [dedupKey, now, name])
        }
    }

    func send(_ notice: Notice, to address: String) async throws {
        throw DeliveryError(description: "the canary receiver takes no verification codes or test pages", permanent: true)
    }
}
