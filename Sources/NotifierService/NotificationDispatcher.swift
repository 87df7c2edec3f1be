import KlaxonDomain
import Logging
import Shared

/// Sends due notifications: claims them (FOR UPDATE SKIP LOCKED, with a lease so replicas never
/// send one twice at once), decides send-or-skip with `NotificationCore`, delivers, and records
/// the outcome in the incident's timeline. Failures retry with exponential backoff up to
/// `maxAttempts`, then the notification is failed.
public struct NotificationDispatcher: Sendable {
    let pool: PostgresPool
    let channels: [String: any DeliveryChannel]
    let maxAttempts: Int
    let batchSize = 32
    let leaseMs: Millis
    let baseBackoffMs: Millis
    let incidentURLTemplate: String
    let logger: Logger

    public init(
        pool: PostgresPool, channels: [String: any DeliveryChannel], maxAttempts: Int, leaseMs: Millis = 60_000,
        baseBackoffMs: Millis = 1_000, incidentURLTemplate: String = "", logger: Logger
    ) {
        self.incidentURLTemplate = incidentURLTemplate
        self.pool = pool
        self.channels = channels
        self.maxAttempts = maxAttempts
        self.leaseMs = leaseMs
        self.baseBackoffMs = baseBackoffMs
        self.logger = logger
    }

    struct Claimed: Sendable {
        var id: String
        var incidentID: Int64
        var userID: Int64
        var ruleID: Int64
        var minuteZero: Bool
        var reason: NotifyReason
        var snapshot: IncidentSnapshot
        var attempts: Int
        var channel: String
        var address: String
        var userName: String
        var userEmail: String
        var startDelaySeconds: UInt32
        var decision: NotificationDecision
        var current: IncidentSnapshot
    }

    /// Sends what is due at `now`; returns when the next pending notification is due.
    public func dispatchDue(now: Millis) async throws -> Millis? {
        let claimed = try await claim(now: now)
        if !claimed.isEmpty {
            await withTaskGroup(of: Void.self) { group in
                for notification in claimed {
                    group.addTask { await self.process(notification, now: now) }
                }
            }
            if claimed.count == batchSize { return now }
        }
        return try await pool.withConnection { connection in
            try connection.query(
                "SELECT min(greatest(due_at_ms, lease_until_ms)) AS next FROM notifications WHERE status = 'pending'"
            ).int64(0, "next")
        }
    }

    private func claim(now: Millis) async throws -> [Claimed] {
        let batchSize = self.batchSize
        let leaseMs = self.leaseMs
        return try await pool.transaction { connection in
            let rows = try connection.query(
                """
                WITH due AS (
                    SELECT id FROM notifications
                    WHERE status = 'pending' AND due_at_ms <= $1 AND lease_until_ms <= $1
                    ORDER BY due_at_ms LIMIT $2 FOR UPDATE SKIP LOCKED)
                UPDATE notifications n SET attempts = n.attempts + 1, lease_until_ms = $1 + $3
                FROM due, users u, contact_methods c, notification_rules r, incidents i, services s
                WHERE n.id = due.id AND u.id = n.user_id AND c.id = n.contact_method_id AND r.id = n.rule_id
                  AND i.id = n.incident_id AND s.id = i.service_id
                RETURNING n.id::text AS id, n.incident_id, n.user_id, n.rule_id, n.minute_zero, n.reason, n.snapshot,
                          n.attempts, c.type, c.address, u.name, u.email, r.start_delay_seconds,
                          i.status, i.title, i.urgency, i.number, s.name AS service_name,
                          EXISTS (SELECT 1 FROM incident_assignments a
                                  WHERE a.incident_id = n.incident_id AND a.user_id = n.user_id) AS assigned
                """, [now, batchSize, leaseMs])
            var claimed: [Claimed] = []
            for row in 0..<rows.count {
                guard let snapshot = try? IncidentSnapshot(wire: rows.bytes(row, "snapshot") ?? []) else { continue }
                let status = IncidentStatus(rawValue: rows.string(row, "status")!) ?? .triggered
                let minuteZero = rows.bool(row, "minute_zero")!
                var current = snapshot
                current.status = status
                current.title = rows.string(row, "title")!
                current.urgency = Urgency(rawValue: rows.string(row, "urgency")!)
                current.serviceName = rows.string(row, "service_name")!
                current.atMs = now
                claimed.append(Claimed(
                    id: rows.string(row, "id")!, incidentID: rows.int64(row, "incident_id")!, userID: rows.int64(row, "user_id")!,
                    ruleID: rows.int64(row, "rule_id")!, minuteZero: minuteZero,
                    reason: NotifyReason(rawValue: rows.string(row, "reason")!) ?? .assigned, snapshot: snapshot,
                    attempts: rows.int(row, "attempts")!, channel: rows.string(row, "type")!, address: rows.string(row, "address")!,
                    userName: rows.string(row, "name")!, userEmail: rows.string(row, "email")!,
                    startDelaySeconds: UInt32(rows.int(row, "start_delay_seconds")!),
                    decision: NotificationCore.decide(
                        minuteZero: minuteZero, currentStatus: status, userStillAssigned: rows.bool(row, "assigned")!),
                    current: current))
            }
            return claimed
        }
    }

    private func process(_ notification: Claimed, now: Millis) async {
        let content: IncidentSnapshot
        switch notification.decision {
        case let .skip(reason):
            await finish(notification, status: "skipped", now: now, timeline: TimelineEntry(
                at: now, type: .notifySkipped, actor: "notifier",
                details: details(notification, ["reason": reason])))
            return
        case .sendSnapshot: content = notification.snapshot
        case .sendCurrent: content = notification.current
        }
        guard let channel = channels[notification.channel] else {
            await finish(notification, status: "failed", now: now, timeline: TimelineEntry(
                at: now, type: .notifyFailed, actor: "notifier",
                details: details(notification, ["error": notification.channel == "email"
                    ? "no SMTP server configured: set KLAXON_SMTP_SERVER"
                    : "no provider configured for \(notification.channel): set KLAXON_NOTIFY_PROVIDER_URL"])))
            return
        }
        var message = WebhookMessage(
            notificationID: notification.id, reason: notification.reason, isSnapshot: notification.decision == .sendSnapshot,
            incident: content,
            user: .init(id: UInt64(notification.userID), name: notification.userName, email: notification.userEmail),
            rule: .init(id: UInt64(notification.ruleID), startDelaySeconds: notification.startDelaySeconds), sentAt: now)
        if !incidentURLTemplate.isEmpty {
            message.incident.htmlURL = incidentURLTemplate.replacingOccurrences(of: "{id}", with: String(content.incidentID))
        }
        do {
            try await channel.deliver(to: notification.address, idempotencyKey: notification.id, message: message)
            await finish(notification, status: "sent", now: now, timeline: TimelineEntry(
                at: now, type: .notifySent, actor: "notifier",
                details: details(notification, ["snapshot": message.snapshot ? "true" : "false"])))
        } catch {
            logger.warning("delivery failed", metadata: [
                "notification.id": "\(notification.id)", "notification.attempt": "\(notification.attempts)", "error": "\(error)"])
            if notification.attempts >= maxAttempts {
                await finish(notification, status: "failed", now: now, timeline: TimelineEntry(
                    at: now, type: .notifyFailed, actor: "notifier",
                    details: details(notification, ["error": "\(error)"])))
            } else {
                // Exponential backoff: base, 2 × base, 4 × base, …
                let retryAt = now + baseBackoffMs * (Millis(1) << Millis(min(notification.attempts - 1, 16)))
                let description = "\(error)"
                let entry = TimelineEntry(
                    at: now, type: .notifyRetry, actor: "notifier",
                    details: details(notification, ["error": description, "retry_at_ms": String(retryAt)]))
                do {
                    try await pool.transaction { connection in
                        try connection.query(
                            "UPDATE notifications SET due_at_ms = $2, lease_until_ms = 0, last_error = $3 WHERE id = $1::uuid",
                            [notification.id, retryAt, description])
                        try Timeline.append(connection, incidentID: notification.incidentID, entry)
                    }
                } catch {
                    logger.error("cannot record a failed attempt; the lease will expire", metadata: ["notification.id": "\(notification.id)"])
                }
            }
        }
    }

    private func details(_ notification: Claimed, _ extra: [String: String]) -> [String: String] {
        var details = [
            "notification": notification.id, "user": String(notification.userID), "rule": String(notification.ruleID),
            "channel": notification.channel, "address": AddressMask.mask(notification.address, channel: notification.channel),
            "attempts": String(notification.attempts),
        ]
        details.merge(extra) { _, new in new }
        return details
    }

    /// Records the outcome; `timeline`'s reason or error also goes to the notification's `last_error`.
    private func finish(_ notification: Claimed, status: String, now: Millis, timeline: TimelineEntry) async {
        let why = timeline.details["reason"] ?? timeline.details["error"]
        do {
            try await pool.transaction { connection in
                try connection.query(
                    """
                    UPDATE notifications SET status = $2, finished_at_ms = $3, lease_until_ms = 0, last_error = coalesce($4, last_error)
                    WHERE id = $1::uuid
                    """, [notification.id, status, now, why])
                try Timeline.append(connection, incidentID: notification.incidentID, timeline)
            }
        } catch {
            // The lease runs out and the notification is tried again: at-least-once, never lost.
            logger.error("cannot record notification outcome", metadata: ["notification.id": "\(notification.id)", "error": "\(error)"])
        }
    }
}
