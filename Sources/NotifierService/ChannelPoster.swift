import AsyncHTTPClient
import Foundation
import KlaxonDomain
import Logging
import NIOCore
import Shared

/// Posts to team chat channels subscribed to a major incident (Slack-compatible incoming
/// webhooks): Assignment's outbox calls `PostToChannel` with the status update and the incident
/// as it was; the post is stored (idempotent per request id), then delivered by `deliverDue` —
/// claimed with a lease (FOR UPDATE SKIP LOCKED, so replicas never post one twice at once),
/// retried with the pages' backoff until the delivery window has passed, a permanent refusal
/// failing it at once. Each outcome is in the incident's timeline (`channel_posted`,
/// `channel_post_failed`, the address masked). Posts go out concurrently, so a slow channel
/// holds up only its own post.
public struct ChannelPoster: Sendable {
    let pool: PostgresPool
    let clock: any WallClock
    let waker: Waker
    let channel: SlackChannel
    let deliveryWindowMs: Millis
    let baseBackoffMs: Millis
    let leaseMs: Millis
    let incidentURLTemplate: String
    let logger: Logger
    let batchSize = 32

    public init(
        pool: PostgresPool, clock: any WallClock, waker: Waker, timeoutMs: Millis, deliveryWindowMs: Millis, baseBackoffMs: Millis,
        incidentURLTemplate: String, logger: Logger
    ) {
        self.pool = pool
        self.clock = clock
        self.waker = waker
        self.channel = SlackChannel(timeout: .milliseconds(timeoutMs))
        self.deliveryWindowMs = deliveryWindowMs
        self.baseBackoffMs = baseBackoffMs
        self.leaseMs = timeoutMs + NotificationDispatcher.leaseMarginMs
        self.incidentURLTemplate = incidentURLTemplate
        self.logger = logger
    }

    /// Stores a post (once per request id) and wakes the sending loop.
    public func accept(_ post: ChannelPost) async throws {
        var violations: [FieldViolation] = []
        if post.requestID.isEmpty { violations.append(FieldViolation(field: "request_id", description: "is required")) }
        if post.incidentID == 0 { violations.append(FieldViolation(field: "incident_id", description: "is required")) }
        if let problem = ChannelKind.slack.addressProblem(post.url) { violations.append(FieldViolation(field: "url", description: problem)) }
        if post.snapshot == nil { violations.append(FieldViolation(field: "snapshot", description: "is required")) }
        guard violations.isEmpty else { throw RPCError.invalidArgument(violations) }
        let now = clock.nowMs()
        try await pool.transaction { connection in
            try connection.query(
                """
                INSERT INTO channel_posts (id, request_id, incident_id, url, reason, snapshot, requested_at_ms, due_at_ms)
                VALUES ($1::uuid, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (request_id) DO NOTHING
                """, [RandomID.uuid(), post.requestID, Int64(post.incidentID), post.url, (post.reason ?? .statusUpdate).rawValue,
                      post.snapshot!.wireBytes(), post.requestedAtMs, now])
        }
        waker.poke()
    }

    struct Claimed: Sendable {
        var id: String
        var incidentID: Int64
        var url: String
        var reason: NotifyReason
        var snapshot: IncidentSnapshot?
        var attempts: Int
        var firstAttemptAt: Millis?
    }

    /// Posts what is due at `now`; returns when the next pending post is due.
    public func deliverDue(now: Millis) async throws -> Millis? {
        let batchSize = self.batchSize, leaseMs = self.leaseMs
        let claimed = try await pool.transaction(durable: false) { connection -> [Claimed] in
            let rows = try connection.query(
                """
                UPDATE channel_posts SET lease_until_ms = $1 + $3
                WHERE id IN (SELECT id FROM channel_posts WHERE status = 'pending' AND due_at_ms <= $1 AND lease_until_ms <= $1
                             ORDER BY due_at_ms LIMIT $2 FOR UPDATE SKIP LOCKED)
                RETURNING id::text AS id, incident_id, url, reason, snapshot, attempts, first_attempt_at_ms
                """, [now, batchSize, leaseMs])
            return (0..<rows.count).map { row in
                Claimed(
                    id: rows.string(row, "id")!, incidentID: rows.int64(row, "incident_id")!, url: rows.string(row, "url")!,
                    reason: NotifyReason(rawValue: rows.string(row, "reason")!) ?? .statusUpdate,
                    snapshot: try? IncidentSnapshot(wire: rows.bytes(row, "snapshot") ?? []), attempts: rows.int(row, "attempts")!,
                    firstAttemptAt: rows.int64(row, "first_attempt_at_ms"))
            }
        }
        await withTaskGroup(of: Void.self) { group in
            for post in claimed { group.addTask { await self.deliver(post) } }
        }
        if claimed.count == batchSize { return now }
        return try await pool.withConnection { connection in
            try connection.query(
                "SELECT min(greatest(due_at_ms, lease_until_ms)) AS next FROM channel_posts WHERE status = 'pending'").int64(0, "next")
        }
    }

    private func deliver(_ post: Claimed) async {
        let attemptAt = clock.nowMs()
        let attempts = post.attempts + 1
        let masked = AddressMask.mask(post.url, channel: "slack")
        guard let snapshot = post.snapshot else {
            await record(post, status: "failed", attempts: post.attempts, at: attemptAt, dueAt: nil, error: "the post's snapshot cannot be decoded")
            return
        }
        var message = WebhookMessage(
            notificationID: post.id, reason: post.reason, isSnapshot: true, incident: snapshot,
            user: .init(id: 0, name: "", email: ""), rule: .init(id: 0, startDelaySeconds: 0), sentAt: attemptAt)
        if !incidentURLTemplate.isEmpty {
            message.incident.htmlURL = incidentURLTemplate.replacingOccurrences(of: "{id}", with: String(snapshot.incidentID))
        }
        do {
            try await channel.deliver(to: post.url, idempotencyKey: post.id, message: message)
            KlaxonMetrics.notification(channel: "slack_channel", outcome: "sent")
            await record(post, status: "sent", attempts: attempts, at: attemptAt, dueAt: nil, error: nil)
        } catch {
            let delivery = error as? DeliveryError
            let description = "\(error)".replacingOccurrences(of: post.url, with: masked)
            let outcome = NotificationCore.afterFailedAttempt(
                DeliveryFailure(description: description, permanent: delivery?.permanent ?? false, retryAfterMs: delivery?.retryAfterMs),
                attempts: attempts, firstAttemptAt: post.firstAttemptAt ?? attemptAt, finishedAt: clock.nowMs(),
                window: DeliveryWindow(lengthMs: deliveryWindowMs, firstBackoffMs: baseBackoffMs, maxBackoffMs: 60_000))
            switch outcome {
            case let .fail(why):
                logger.error("channel post failed", metadata: [
                    "incident.id": "\(post.incidentID)", "channel_webhook": "\(masked)", "attempt": "\(attempts)", "reason": "\(why)"])
                KlaxonMetrics.notification(channel: "slack_channel", outcome: "failed")
                await record(post, status: "failed", attempts: attempts, at: attemptAt, dueAt: nil, error: why)
            case let .retry(nextAt):
                logger.warning("channel post attempt failed; retrying", metadata: [
                    "incident.id": "\(post.incidentID)", "channel_webhook": "\(masked)", "attempt": "\(attempts)",
                    "reason": "\(description)", "retry_in_ms": "\(nextAt - attemptAt)"])
                KlaxonMetrics.notification(channel: "slack_channel", outcome: "retried")
                await record(post, status: "pending", attempts: attempts, at: attemptAt, dueAt: nextAt, error: description)
            }
        }
    }

    /// The outcome and, when final, its timeline entry, in one transaction. If it cannot be
    /// written the lease runs out and the post is tried again (at least once, never lost).
    private func record(_ post: Claimed, status: String, attempts: Int, at: Millis, dueAt: Millis?, error: String?) async {
        let masked = AddressMask.mask(post.url, channel: "slack")
        do {
            try await pool.transaction { connection in
                try connection.query(
                    """
                    UPDATE channel_posts SET status = $2, attempts = $3, due_at_ms = coalesce($4, due_at_ms), lease_until_ms = 0,
                           last_error = $5, finished_at_ms = CASE WHEN $2 = 'pending' THEN NULL ELSE $6::bigint END,
                           first_attempt_at_ms = coalesce(first_attempt_at_ms, $6)
                    WHERE id = $1::uuid
                    """, [post.id, status, attempts, dueAt, error, at])
                guard status != "pending" else { return }
                var details = ["channel_webhook": masked, "reason": post.reason.rawValue, "post": post.id, "attempts": String(attempts)]
                if let error { details["error"] = error }
                try Timeline.append(connection, incidentID: post.incidentID, TimelineEntry(
                    at: at, type: status == "sent" ? .channelPosted : .channelPostFailed, actor: "notifier", details: details))
            }
        } catch {
            logger.error("cannot record a channel post's outcome; the lease will expire", metadata: [
                "incident.id": "\(post.incidentID)", "error": "\(error)"])
        }
    }
}
