import Foundation
import KlaxonDomain
import Logging
import NIOCore
import Shared

/// Takes posts to team chat channels subscribed to a major incident (Slack-compatible incoming
/// webhooks): Assignment's outbox calls `PostToChannel` with the status update and the incident
/// as it was; the post is stored (idempotent per request id) and the delivery engine is woken.
/// It goes out like a page (`ChannelPostQueue` in `DeliveryEngine`): leased, retried with the
/// pages' backoff until the delivery window has passed, a permanent refusal failing it at once.
public struct ChannelPoster: Sendable {
    let pool: PostgresPool
    let clock: any WallClock
    let waker: Waker

    public init(pool: PostgresPool, clock: any WallClock, waker: Waker) {
        self.pool = pool
        self.clock = clock
        self.waker = waker
    }

    /// Stores a post (once per request id) and wakes the delivery engine.
    public func accept(_ post: ChannelPost) async throws {
        var violations: [FieldViolation] = []
        if post.requestID.isEmpty { violations.append(FieldViolation(field: "request_id", description: "is required")) }
        if post.incidentID == 0 { violations.append(FieldViolation(field: "incident_id", description: "is required")) }
        if let problem = ContactKind.slack.addressProblem(post.url) { violations.append(FieldViolation(field: "url", description: problem)) }
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
}

/// Channel posts: the `channel_posts` table, delivered by a Slack-compatible channel of their
/// own. Outcomes are `channel_posted` and `channel_post_failed` in the incident's timeline (the
/// webhook masked); a retry is not a timeline entry.
struct ChannelPostQueue: DeliveryQueue {
    let channel: SlackChannel
    let logger: Logger

    func claim(
        _ connection: PGConnection, now: Millis, limit: Int, leaseMs: Millis, full: Set<String>, closed: Set<String>,
        inFlight: [String: Int], perDestination: Int
    ) throws -> (items: [DeliveryItem], more: Bool) {
        let rows = try connection.query(
            """
            UPDATE channel_posts SET lease_until_ms = $1 + $3
            WHERE id IN (SELECT id FROM channel_posts WHERE status = 'pending' AND due_at_ms <= $1 AND lease_until_ms <= $1
                           AND NOT (url = ANY($4::text[]))
                         ORDER BY due_at_ms LIMIT $2 FOR UPDATE SKIP LOCKED)
            RETURNING id::text AS id, incident_id, url, reason, snapshot, attempts, first_attempt_at_ms, due_at_ms
            """, [now, limit, leaseMs, PGArray(Array(full))])
        var items: [DeliveryItem] = []
        for row in 0..<rows.count {
            let id = rows.string(row, "id")!, incidentID = rows.int64(row, "incident_id")!, url = rows.string(row, "url")!
            let reason = NotifyReason(rawValue: rows.string(row, "reason")!) ?? .statusUpdate
            guard let snapshot = try? IncidentSnapshot(wire: rows.bytes(row, "snapshot") ?? []) else {
                logger.error("channel post snapshot undecodable; failed", metadata: ["incident.id": "\(incidentID)"])
                let result = DeliveryResult(
                    outcome: .failed(error: "the post's snapshot cannot be decoded"), at: now, attempts: rows.int(row, "attempts")!)
                try recordOne(connection, Self.item(id: id, incidentID: incidentID, url: url, reason: reason, snapshot: IncidentSnapshot(),
                                                 channel: channel, row: rows, index: row, now: now), result)
                continue
            }
            items.append(Self.item(
                id: id, incidentID: incidentID, url: url, reason: reason, snapshot: snapshot, channel: channel, row: rows, index: row, now: now))
        }
        // Posts have no per-address room: a full batch may have left more.
        return (items, rows.count == limit)
    }

    private static func item(
        id: String, incidentID: Int64, url: String, reason: NotifyReason, snapshot: IncidentSnapshot, channel: SlackChannel,
        row rows: PGResult, index row: Int, now: Millis
    ) -> DeliveryItem {
        DeliveryItem(
            id: id, incidentID: incidentID, what: "channel post", channel: "slack", metricChannel: "slack_channel", address: url,
            deliverer: channel, notConfigured: "", reason: reason, decision: .sendSnapshot, snapshot: snapshot, current: snapshot,
            user: .init(id: 0, name: "", email: ""), rule: .init(id: 0, startDelaySeconds: 0),
            attempts: rows.int(row, "attempts")!, firstAttemptAt: rows.int64(row, "first_attempt_at_ms"),
            dueAt: rows.int64(row, "due_at_ms")!, claimedAt: now, countsAsPage: false)
    }

    func putBack(_ connection: PGConnection, ids: [String]) throws {
        try connection.enqueue("UPDATE channel_posts SET lease_until_ms = 0 WHERE id = ANY($1::text[]::uuid[])", [PGArray(ids)])
    }

    var sharesBackoff: Bool { false }

    func nextDue(_ connection: PGConnection, now: Millis, closed: Set<String>) throws -> Millis? {
        try connection.query(
            "SELECT min(greatest(due_at_ms, lease_until_ms)) AS next FROM channel_posts WHERE status = 'pending'").int64(0, "next")
    }

    /// Channel posts are few: the same question.
    func nextDueLater(_ connection: PGConnection, now: Millis, full: Set<String>, closed: Set<String>) throws -> Millis? {
        try nextDue(connection, now: now, closed: closed)
    }

    /// Channel posts are few (status updates): one statement pair each.
    func record(_ connection: PGConnection, _ outcomes: [(DeliveryItem, DeliveryResult)]) throws {
        for (item, result) in outcomes { try recordOne(connection, item, result) }
    }

    /// The outcome and, when final, its timeline entry. If it cannot be written the lease runs
    /// out and the post is tried again (at least once, never lost).
    private func recordOne(_ connection: PGConnection, _ item: DeliveryItem, _ result: DeliveryResult) throws {
        var dueAt: Millis?
        var error: String?
        switch result.outcome {
        case let .retry(at, why): dueAt = at; error = why
        case let .failed(why), let .skipped(why): error = why
        case .sent: break
        case .shadowed: error = "shadow mode"  // pages only; channel posts are never shadowed
        }
        try connection.enqueue(
            """
            UPDATE channel_posts SET status = $2, attempts = $3, due_at_ms = coalesce($4, due_at_ms), lease_until_ms = 0,
                   last_error = $5, finished_at_ms = CASE WHEN $2 = 'pending' THEN NULL ELSE $6::bigint END,
                   first_attempt_at_ms = coalesce(first_attempt_at_ms, $7)
            WHERE id = $1::uuid
            """, [item.id, result.status == "skipped" ? "failed" : result.status, result.attempts, dueAt, error, result.at,
                  result.firstAttemptAt])
        guard result.status != "pending" else { return }
        var details = [
            "channel_webhook": AddressMask.mask(item.address, channel: item.channel), "reason": item.reason.rawValue, "post": item.id,
            "attempts": String(result.attempts),
        ]
        if let error { details["error"] = error }
        try Timeline.enqueue(connection, incidentID: item.incidentID, TimelineEntry(
            at: result.at, type: result.status == "sent" ? .channelPosted : .channelPostFailed, actor: "notifier", details: details))
    }
}
