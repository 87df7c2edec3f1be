import Foundation
import KlaxonDomain
import Logging
import Shared

/// Expands notify requests into scheduled notifications, one per matching rule, durably.
public struct NotifyIntake: Sendable {
    static let consumer = "notifier"
    let pool: PostgresPool
    let clock: any WallClock
    let dispatcherWaker: Waker
    let logger: Logger

    public init(pool: PostgresPool, clock: any WallClock, dispatcherWaker: Waker, logger: Logger) {
        self.pool = pool
        self.clock = clock
        self.dispatcherWaker = dispatcherWaker
        self.logger = logger
    }

    public func notify(_ request: NotifyRequest) async throws {
        var violations: [FieldViolation] = []
        if request.requestID.isEmpty { violations.append(FieldViolation(field: "request_id", description: "is required")) }
        if request.incidentID == 0 { violations.append(FieldViolation(field: "incident_id", description: "is required")) }
        if request.userID == 0 { violations.append(FieldViolation(field: "user_id", description: "is required")) }
        if request.snapshot == nil { violations.append(FieldViolation(field: "snapshot", description: "is required")) }
        guard violations.isEmpty, let snapshot = request.snapshot else { throw RPCError.invalidArgument(violations) }
        let now = clock.nowMs()
        let reason = request.reason ?? .assigned
        let urgency = snapshot.urgency ?? .high
        let snapshotBytes = snapshot.wireBytes()
        let scheduled: Int
        do {
            scheduled = try await schedule(request, snapshot: snapshot, now: now, reason: reason, urgency: urgency, snapshotBytes: snapshotBytes)
        } catch {
            // The sender's outbox retries this request with backoff; other requests go on.
            logger.error("notify request failed; retried by the sender with backoff", metadata: [
                "incident.id": "\(request.incidentID)", "user.id": "\(request.userID)", "error": "\(error)"])
            throw error
        }
        if scheduled > 0 { dispatcherWaker.poke() }
    }

    private func schedule(
        _ request: NotifyRequest, snapshot: IncidentSnapshot, now: Millis, reason: NotifyReason, urgency: Urgency, snapshotBytes: [UInt8]
    ) async throws -> Int {
        try await pool.transaction { connection -> Int in
            guard try Inbox.claim(connection, consumer: Self.consumer, messageID: request.requestID, now: now) else { return 0 }
            let rows = try connection.query(
                "SELECT id, contact_method_id, start_delay_seconds, urgency FROM notification_rules WHERE user_id = $1 ORDER BY id",
                [request.userID])
            let rules = (0..<rows.count).map { row in
                NotificationRule(
                    id: rows.uint64(row, "id")!, contactMethodID: rows.uint64(row, "contact_method_id")!,
                    startDelaySeconds: UInt32(rows.int(row, "start_delay_seconds")!),
                    urgency: Urgency(rawValue: rows.string(row, "urgency")!) ?? .high)
            }
            let plan = NotificationCore.expand(rules: rules, urgency: urgency, requestedAt: request.requestedAtMs)
            let incidentID = Int64(request.incidentID)
            // The supersede rule is NotificationCore's; here: load what waits, mark what it names.
            let pending = try connection.query(
                """
                SELECT id::text AS id, rule_id, request_id, minute_zero, requested_at_ms, lease_until_ms FROM notifications
                WHERE incident_id = $1 AND user_id = $2 AND status = 'pending' FOR UPDATE
                """, [incidentID, Int64(request.userID)])
            let waiting = (0..<pending.count).map { row in
                WaitingNotification(
                    id: pending.string(row, "id")!, ruleID: pending.uint64(row, "rule_id")!, requestID: pending.string(row, "request_id")!,
                    minuteZero: pending.bool(row, "minute_zero")!, requestedAt: pending.int64(row, "requested_at_ms")!,
                    leaseUntil: pending.int64(row, "lease_until_ms")!)
            }
            let superseded = NotificationCore.superseded(waiting, byRequest: request.requestID, requestedAt: request.requestedAtMs, now: now)
            if !superseded.isEmpty {
                try connection.query(
                    "UPDATE notifications SET status = 'skipped', finished_at_ms = $2, last_error = 'superseded' WHERE id = ANY($1::text[]::uuid[])",
                    [PGArray(superseded.map(\.id)), now])
            }
            for notification in superseded {
                try Timeline.append(
                    connection, incidentID: incidentID,
                    TimelineEntry(at: now, type: .notifySkipped, actor: "notifier", details: [
                        "notification": notification.id, "user": String(request.userID),
                        "rule": String(notification.ruleID), "reason": "superseded", "by_request": request.requestID,
                    ]))
            }
            if plan.isEmpty {
                try Timeline.append(
                    connection, incidentID: incidentID,
                    TimelineEntry(at: now, type: .notifySkipped, actor: "notifier",
                                  details: ["user": String(request.userID), "reason": "no notification rule for \(urgency.rawValue) urgency"]))
                return 0
            }
            for item in plan {
                let id = RandomID.uuid()
                let inserted = try connection.query(
                    """
                    INSERT INTO notifications (id, request_id, rule_id, incident_id, user_id, contact_method_id, reason,
                                               minute_zero, snapshot, requested_at_ms, due_at_ms)
                    VALUES ($1::uuid, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                    ON CONFLICT (request_id, rule_id) DO NOTHING
                    """,
                    [id, request.requestID, item.ruleID, incidentID, request.userID, item.contactMethodID, reason.rawValue,
                     item.minuteZero, snapshotBytes, request.requestedAtMs, item.dueAt])
                guard inserted.affectedRows == 1 else { continue }
                try Timeline.append(
                    connection, incidentID: incidentID,
                    TimelineEntry(at: now, type: .notifyScheduled, actor: "notifier",
                                  details: ["user": String(request.userID), "rule": String(item.ruleID), "notification": id,
                                            "due_at_ms": String(item.dueAt)]))
            }
            return plan.count
        }
    }
}
