import Foundation
import KlaxonDomain
import Shared

/// The database side of pages by SMS and voice (issue 25): reply codes ("Reply 4a to ack, 4r to
/// resolve": small numbers per user, one per open incident, reused once it is resolved), who a
/// phone number belongs to, and the provider's later reports on a page it took — a failed,
/// undelivered or unanswered one is a failed attempt and goes back to Notifier's queue with the
/// pages' backoff, within their delivery window.
public enum PhoneStore {
    /// The user's reply code for the incident, allocated if it has none: the smallest number no
    /// open incident of theirs holds.
    public static func replyCode(_ connection: PGConnection, userID: UInt64, incidentID: UInt64) throws -> Int {
        try connection.query("SELECT pg_advisory_xact_lock(25, $1::int)", [Int64(userID % 2_000_000_000)])
        if let code = try connection.query(
            "SELECT code FROM sms_reply_codes WHERE user_id = $1 AND incident_id = $2", [Int64(userID), Int64(incidentID)]
        ).int(0, "code") { return code }
        try connection.query(
            """
            DELETE FROM sms_reply_codes r USING incidents i
            WHERE r.user_id = $1 AND i.id = r.incident_id AND i.status = 'resolved'
            """, [Int64(userID)])
        return try connection.query(
            """
            INSERT INTO sms_reply_codes (user_id, incident_id, code)
            SELECT $1, $2, min(candidate) FROM generate_series(1, (SELECT count(*) + 1 FROM sms_reply_codes WHERE user_id = $1)::int) AS candidate
            WHERE candidate NOT IN (SELECT code FROM sms_reply_codes WHERE user_id = $1)
            RETURNING code
            """, [Int64(userID), Int64(incidentID)]).int(0, "code")!
    }

    /// The open incident a user's reply code names, if any.
    public static func incident(_ connection: PGConnection, userID: UInt64, code: Int) throws -> UInt64? {
        try connection.query(
            """
            SELECT r.incident_id FROM sms_reply_codes r JOIN incidents i ON i.id = r.incident_id
            WHERE r.user_id = $1 AND r.code = $2 AND i.status <> 'resolved'
            """, [Int64(userID), Int64(code)]).int64(0, "incident_id").map { UInt64($0) }
    }

    /// The user an SMS or phone number belongs to (digits compared, so "+49 170 123" matches
    /// "+49170123"), with their name and role.
    public static func user(_ connection: PGConnection, phone: String) throws -> (id: UInt64, name: String, role: String)? {
        let digits = phone.filter(\.isNumber)
        guard !digits.isEmpty else { return nil }
        let rows = try connection.query(
            """
            SELECT u.id, u.name, u.role FROM users u JOIN contact_methods c ON c.user_id = u.id
            WHERE c.type IN ('sms', 'phone') AND regexp_replace(c.address, '[^0-9]', '', 'g') = $1
            ORDER BY c.type = 'sms' DESC, u.id LIMIT 1
            """, [digits])
        guard let id = rows.int64(0, "id"), let name = rows.string(0, "name"), let role = rows.string(0, "role") else { return nil }
        return (UInt64(id), name, role)
    }

    /// Statuses that mean the person was not reached.
    public static let failedStatuses: Set<String> = ["failed", "undelivered", "no-answer", "busy", "canceled"]

    /// What the provider reports on the page `notificationID` (a status callback): always in the
    /// timeline; when it says the person was not reached and the page counts as sent, the page is
    /// a failed attempt: retried with the pages' backoff (a new message or call), or failed once
    /// its delivery window has passed. Returns what was done, for the log.
    @discardableResult
    public static func providerReport(
        _ connection: PGConnection, notificationID: String, status: String, providerID: String, errorCode: String,
        now: Millis, window: DeliveryWindow
    ) throws -> String {
        guard UUID(uuidString: notificationID) != nil else { return "unknown notification" }
        let rows = try connection.query(
            """
            SELECT incident_id, user_id, status, attempts, coalesce(first_attempt_at_ms, finished_at_ms, $2) AS first_at
            FROM notifications WHERE id = $1::uuid FOR UPDATE
            """, [notificationID, now])
        guard let incidentID = rows.int64(0, "incident_id"), let current = rows.string(0, "status") else { return "unknown notification" }
        var details = ["notification": notificationID, "user": String(rows.int64(0, "user_id") ?? 0), "status": status, "provider_id": providerID]
        if !errorCode.isEmpty { details["error_code"] = errorCode }
        try Timeline.append(connection, incidentID: incidentID, TimelineEntry(at: now, type: .notifyProviderStatus, actor: "provider", details: details))
        guard failedStatuses.contains(status), current == "sent" else { return "recorded" }
        let attempts = rows.int(0, "attempts") ?? 1
        let failure = DeliveryFailure(description: "the provider reported the page \(status)" + (errorCode.isEmpty ? "" : " (error \(errorCode))"))
        switch NotificationCore.afterFailedAttempt(
            failure, attempts: attempts, firstAttemptAt: rows.int64(0, "first_at") ?? now, finishedAt: now, window: window)
        {
        case let .retry(at):
            // The page, and the pages that rode in its message (a bundle), go again.
            let reopened = try connection.query(
                """
                UPDATE notifications SET status = 'pending', due_at_ms = $2, lease_until_ms = 0, last_error = $3, finished_at_ms = NULL,
                       bundled_in = NULL
                WHERE id = $1::uuid OR (bundled_in = $1::uuid AND status = 'sent')
                RETURNING id::text AS id, incident_id
                """, [notificationID, at, failure.description])
            try Timeline.enqueueMany(connection, (0..<reopened.count).map { row in
                (reopened.int64(row, "incident_id")!, TimelineEntry(
                    at: now, type: .notifyRetry, actor: "notifier",
                    details: ["notification": reopened.string(row, "id")!, "error": failure.description, "retry_at_ms": String(at),
                              "attempts": String(attempts)]))
            })
            return "retry at \(at)" + (reopened.count > 1 ? " with \(reopened.count - 1) bundled page(s)" : "")
        case let .fail(reason):
            let failed = try connection.query(
                """
                UPDATE notifications SET status = 'failed', last_error = $2, finished_at_ms = $3
                WHERE id = $1::uuid OR (bundled_in = $1::uuid AND status = 'sent')
                RETURNING id::text AS id, incident_id
                """, [notificationID, reason, now])
            try Timeline.enqueueMany(connection, (0..<failed.count).map { row in
                (failed.int64(row, "incident_id")!, TimelineEntry(
                    at: now, type: .notifyFailed, actor: "notifier", details: ["notification": failed.string(row, "id")!, "error": reason]))
            })
            return "failed"
        }
    }
}
