import AsyncHTTPClient
import Crypto
import Foundation
import IncidentEngine
import KlaxonDomain
import Logging
import NIOCore
import Shared

/// Delivers outbound webhook events (issue 28, point 5): signed both ways — PagerDuty's
/// `X-PagerDuty-Signature: v1=<hex HMAC-SHA256(secret, body)>` and Standard Webhooks'
/// `webhook-id` / `webhook-timestamp` / `webhook-signature: v1,<base64 HMAC-SHA256(key, id.timestamp.body)>` —
/// at least once with the event's stable id, in order per (subscription, incident): only the
/// oldest pending delivery of each is sent, so one incident's failing deliveries never hold up
/// another's. A timeout, a 5xx or a 429 retries (1 s doubling to 5 min, or Retry-After) for up
/// to 48 h; another 4xx drops the delivery; a subscription dropped 3 times in a row is disabled.
public struct WebhookSender: Sendable {
    let pool: PostgresPool
    let http: HTTPClient
    let timeoutMs: Millis
    let logger: Logger
    static let giveUpAfterMs: Millis = 48 * 3_600_000
    static let dropsToDisable = 3
    static let batch = 50

    public init(pool: PostgresPool, http: HTTPClient, timeoutMs: Millis, logger: Logger) {
        self.pool = pool
        self.http = http
        self.timeoutMs = timeoutMs
        self.logger = logger
    }

    struct Claimed: Sendable {
        var id: Int64
        var subscriptionID: Int64
        var eventID: String
        var body: String
        var createdAt: Millis
        var attempts: Int
        var url: String
        var secret: String
        var headers: [String: String]
    }

    /// The Standard Webhooks key: the secret's base64 after `whsec_`.
    static func signatures(secret: String, eventID: String, timestamp: Int64, body: String) -> (pagerDuty: String, standard: String) {
        let body8 = Array(body.utf8)
        let pd = HMAC<SHA256>.authenticationCode(for: body8, using: SymmetricKey(data: Array(secret.utf8)))
        let keyBytes = Data(base64Encoded: String(secret.dropFirst(secret.hasPrefix("whsec_") ? 6 : 0))) ?? Data(secret.utf8)
        let standard = HMAC<SHA256>.authenticationCode(for: Array("\(eventID).\(timestamp).\(body)".utf8), using: SymmetricKey(data: keyBytes))
        return ("v1=" + pd.map { String(format: "%02x", $0) }.joined(), "v1," + Data(standard).base64EncodedString())
    }

    /// A pending delivery waits while an earlier one of its sequence (subscription, incident; no
    /// incident: 0) is pending. That test probes webhook_deliveries_sequence, which holds every
    /// delivery, with the status checked above the fence (`OFFSET 0`): through a pending-only
    /// index, after an ANALYZE made while nothing was pending, the planner read every pending
    /// delivery for each candidate (3.6 s a claim with 5,000 waiting; migration 0030,
    /// `WebhookPlanTests`). It reads the sequence's earlier deliveries: an incident has few.
    static let earlierPending = """
        EXISTS (SELECT 1 FROM (SELECT e.status FROM webhook_deliveries e
                               WHERE e.subscription_id = c.subscription_id AND coalesce(e.incident_id, 0) = coalesce(c.incident_id, 0)
                                 AND e.id < c.id OFFSET 0) earlier
                WHERE earlier.status = 'pending')
        """

    static let claimSQL = """
        UPDATE webhook_deliveries d SET lease_until_ms = $1::bigint + $2::bigint, attempts = d.attempts + 1
        FROM webhook_subscriptions s
        WHERE s.id = d.subscription_id AND d.id IN (
            SELECT c.id FROM webhook_deliveries c JOIN webhook_subscriptions cs ON cs.id = c.subscription_id
            WHERE c.status = 'pending' AND c.next_attempt_at_ms <= $1 AND c.lease_until_ms <= $1 AND cs.enabled
              AND NOT \(earlierPending)
            ORDER BY c.id LIMIT $3 FOR UPDATE OF c SKIP LOCKED)
        RETURNING d.id, d.subscription_id, d.event_id, d.body, d.created_at_ms, d.attempts, s.url, s.secret, s.headers::text AS headers
        """

    /// Only each sequence's head (and only enabled subscriptions') can be due: a later event of an
    /// incident waits for the one before it, whatever its own instant.
    static let nextDueSQL = """
        SELECT min(greatest(c.next_attempt_at_ms, c.lease_until_ms)) AS next
        FROM webhook_deliveries c JOIN webhook_subscriptions s ON s.id = c.subscription_id
        WHERE c.status = 'pending' AND s.enabled AND NOT \(earlierPending)
        """

    /// Sends what is due at `now`; returns the next attempt's instant, if any.
    public func deliverDue(now: Millis) async throws -> Millis? {
        // Nobody subscribed (the cached answer, read again every 2 s): nothing to claim.
        guard try await pool.withConnection({ try WebhookEvents.anySubscription($0) }) else { return nil }
        let leaseMs = timeoutMs + 5_000
        let claimed = try await pool.transaction { connection -> [Claimed] in
            let rows = try connection.query(Self.claimSQL, [now, leaseMs, Int64(Self.batch)])
            return (0..<rows.count).map { row in
                Claimed(
                    id: rows.int64(row, "id")!, subscriptionID: rows.int64(row, "subscription_id")!, eventID: rows.string(row, "event_id")!,
                    body: rows.string(row, "body")!, createdAt: rows.int64(row, "created_at_ms")!, attempts: rows.int(row, "attempts")!,
                    url: rows.string(row, "url")!, secret: rows.string(row, "secret")!, headers: JSON.stringMap(rows.string(row, "headers") ?? "{}"))
            }
        }
        if !claimed.isEmpty {
            let outcomes = await withTaskGroup(of: (Claimed, Result<Void, DeliveryError>).self) { group in
                for delivery in claimed { group.addTask { (delivery, await send(delivery, now: now)) } }
                var all: [(Claimed, Result<Void, DeliveryError>)] = []
                for await outcome in group { all.append(outcome) }
                return all
            }
            try await record(outcomes, now: now)
        }
        return try await pool.withConnection { connection in
            try connection.query(Self.nextDueSQL).int64(0, "next")
        }
    }

    func send(_ delivery: Claimed, now: Millis) async -> Result<Void, DeliveryError> {
        let timestamp = now / 1000
        let signed = Self.signatures(secret: delivery.secret, eventID: delivery.eventID, timestamp: timestamp, body: delivery.body)
        var headers: [(String, String)] = delivery.headers.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        headers += [
            ("X-PagerDuty-Signature", signed.pagerDuty), ("webhook-id", delivery.eventID), ("webhook-timestamp", String(timestamp)),
            ("webhook-signature", signed.standard),
        ]
        do {
            try await post(
                http, delivery.url, idempotencyKey: delivery.eventID, body: Array(delivery.body.utf8), timeout: .milliseconds(timeoutMs),
                what: "webhook event", headers: headers)
            return .success(())
        } catch let error as DeliveryError {
            return .failure(error)
        } catch {
            return .failure(DeliveryError(description: "\(error)"))
        }
    }

    func record(_ outcomes: [(Claimed, Result<Void, DeliveryError>)], now: Millis) async throws {
        try await pool.transaction { connection in
            for (delivery, outcome) in outcomes {
                switch outcome {
                case .success:
                    try connection.query(
                        "UPDATE webhook_deliveries SET status = 'delivered', finished_at_ms = $2, last_status = 200, last_error = '', lease_until_ms = 0 WHERE id = $1",
                        [delivery.id, now])
                    try connection.query("UPDATE webhook_subscriptions SET consecutive_drops = 0 WHERE id = $1", [delivery.subscriptionID])
                    KlaxonMetrics.webhook(outcome: "delivered")
                case let .failure(error):
                    let expired = now - delivery.createdAt >= Self.giveUpAfterMs
                    if error.permanent || expired {
                        let why = expired ? "gave up after 48 h: \(error.description)" : error.description
                        try connection.query(
                            "UPDATE webhook_deliveries SET status = 'dropped', finished_at_ms = $2, last_error = $3, lease_until_ms = 0 WHERE id = $1",
                            [delivery.id, now, why])
                        let drops = try connection.query(
                            "UPDATE webhook_subscriptions SET consecutive_drops = consecutive_drops + 1 WHERE id = $1 RETURNING consecutive_drops",
                            [delivery.subscriptionID]).int(0, "consecutive_drops") ?? 0
                        KlaxonMetrics.webhook(outcome: "dropped")
                        if drops >= Self.dropsToDisable {
                            try connection.query(
                                "UPDATE webhook_subscriptions SET enabled = false, disabled_reason = $2 WHERE id = $1 AND enabled",
                                [delivery.subscriptionID, "disabled after \(drops) deliveries in a row were dropped; the last: \(why)"])
                            KlaxonMetrics.webhook(outcome: "subscription_disabled")
                            try Self.tellOwner(connection, subscription: delivery.subscriptionID, why: why, now: now)
                            logger.error("webhook subscription disabled", metadata: [
                                "webhook.subscription": "\(delivery.subscriptionID)", "error": "\(why)"])
                        }
                    } else {
                        let wait = error.retryAfterMs ?? Backoff.delay(afterFailures: delivery.attempts, first: 1_000, cap: 300_000)
                        try connection.query(
                            "UPDATE webhook_deliveries SET next_attempt_at_ms = $2, last_error = $3, lease_until_ms = 0 WHERE id = $1",
                            [delivery.id, now + wait, error.description])
                        KlaxonMetrics.webhook(outcome: "retried")
                    }
                }
            }
        }
    }

    /// The disabled subscription's owner, told on each of their contact methods that can be sent
    /// to (verified, or needing no code) through the notices Notifier sends, 3 tries each.
    static func tellOwner(_ connection: PGConnection, subscription: Int64, why: String, now: Millis) throws {
        let rows = try connection.query("SELECT url, owner_user_id FROM webhook_subscriptions WHERE id = $1", [subscription])
        guard let owner = rows.int64(0, "owner_user_id"), let url = rows.string(0, "url") else { return }
        let host = URL(string: url)?.host ?? "its receiver"
        let subject = "Klaxon webhook \(subscription) disabled"
        let body = """
            Klaxon disabled webhook subscription \(subscription) (to \(host)): 3 deliveries in a row were dropped; the last: \(why). \
            Events wait for no one while it is disabled. Fix the receiver, then: klaxon webhook enable \(subscription)
            """
        try connection.query(
            """
            INSERT INTO contact_notices (id, contact_method_id, kind, batch, subject, body, spoken, max_attempts, due_at_ms, created_at_ms)
            SELECT gen_random_uuid(), c.id, 'notice', $2::uuid, $3, $4, $5, 3, $6, $6 FROM contact_methods c
            WHERE c.user_id = $1 AND (c.verified_at_ms IS NOT NULL OR NOT (c.type = ANY($7::text[])))
            """, [owner, RandomID.uuid(), subject, body, "Klaxon disabled webhook \(subscription), to \(host), after 3 dropped deliveries.", now,
                  PGArray([ContactKind.sms.name, ContactKind.phone.name, ContactKind.email.name].filter(ContactVerification.needsCode))])
    }
}
