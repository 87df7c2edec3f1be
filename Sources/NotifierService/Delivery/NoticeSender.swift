import KlaxonDomain
import Logging
import NIOConcurrencyHelpers
import Shared

/// Sends what is not a page: verification codes and test pages (`contact_notices`, written by
/// the People API and `klaxon apply` in the transaction that asks for them). Claimed with a
/// lease (FOR UPDATE SKIP LOCKED: replicas never send one twice at once), sent through the
/// method's channel, the outcome recorded. A code is tried up to 3 times (2 s, then 4 s apart);
/// a test page once, since a test shows what happens. A code's text is blanked once finished;
/// finished notices are deleted after 7 days.
public struct NoticeSender: Sendable {
    let pool: PostgresPool
    let channels: [String: any DeliveryChannel]
    let clock: any WallClock
    let leaseMs: Millis
    let logger: Logger
    let batchSize = 32
    static let keepMs: Millis = 7 * 86_400_000
    private let lastPrune = NIOLockedValueBox<Millis>(0)

    public init(pool: PostgresPool, channels: [String: any DeliveryChannel], clock: any WallClock, sendTimeoutMs: Millis, logger: Logger) {
        self.pool = pool
        self.channels = channels
        self.clock = clock
        self.leaseMs = sendTimeoutMs + DeliveryEngine.leaseMarginMs
        self.logger = logger
    }

    struct Claimed: Sendable {
        var notice: Notice
        var type: String
        var address: String
        var attempts: Int
        var maxAttempts: Int
    }

    /// Sends what is due at `now`; returns when the next one is due.
    public func step(now: Millis) async throws -> Millis? {
        let leaseMs = self.leaseMs, limit = batchSize
        let claimed = try await pool.transaction(durable: false) { connection -> [Claimed] in
            let rows = try connection.query(
                """
                WITH due AS (
                    SELECT id FROM contact_notices WHERE status = 'pending' AND due_at_ms <= $1 AND lease_until_ms <= $1
                    ORDER BY due_at_ms LIMIT $2 FOR UPDATE SKIP LOCKED)
                UPDATE contact_notices n SET lease_until_ms = $1 + $3
                FROM due, contact_methods c WHERE n.id = due.id AND c.id = n.contact_method_id
                RETURNING n.id::text AS id, n.kind, n.contact_method_id, n.subject, n.body, n.spoken, n.attempts, n.max_attempts,
                          c.type, c.address
                """, [now, limit, leaseMs])
            return (0..<rows.count).map { row in
                Claimed(
                    notice: Notice(
                        id: rows.string(row, "id")!, kind: rows.string(row, "kind")!, contactMethodID: rows.int64(row, "contact_method_id")!,
                        subject: rows.string(row, "subject")!, text: rows.string(row, "body")!, spoken: rows.string(row, "spoken")!),
                    type: rows.string(row, "type")!, address: rows.string(row, "address")!, attempts: rows.int(row, "attempts")!,
                    maxAttempts: rows.int(row, "max_attempts")!)
            }
        }
        await withTaskGroup(of: Void.self) { group in
            for item in claimed { group.addTask { await self.send(item) } }
        }
        if claimed.count == limit { return now }
        try await pruneNow(now)
        return try await pool.withConnection { connection in
            try connection.query(
                "SELECT min(greatest(due_at_ms, lease_until_ms)) AS next FROM contact_notices WHERE status = 'pending'").int64(0, "next")
        }
    }

    private func send(_ item: Claimed) async {
        let attemptAt = clock.nowMs()
        let attempts = item.attempts + 1
        var error: DeliveryError?
        if let channel = channels[item.type] {
            do {
                try await channel.send(item.notice, to: item.address)
            } catch let failure as DeliveryError {
                error = failure
            } catch let failure {
                error = DeliveryError(description: "\(failure)")
            }
        } else {
            error = DeliveryError(description: ChannelKind.named(item.type)?.notConfigured ?? "unknown channel \(item.type)", permanent: true)
        }
        let masked = AddressMask.mask(item.address, channel: item.type)
        var metadata: Logger.Metadata = [
            "notice.id": "\(item.notice.id)", "notice.kind": "\(item.notice.kind)", "contact_method.id": "\(item.notice.contactMethodID)",
            "channel": "\(item.type)", "address": "\(masked)", "attempt": "\(attempts)",
        ]
        let status: String
        var dueAt: Millis?
        var why: String?
        if let error {
            why = error.description.replacingOccurrences(of: item.address, with: masked)
            metadata["error"] = "\(why!)"
            if !error.permanent, attempts < item.maxAttempts {
                status = "pending"
                dueAt = clock.nowMs() + 2_000 * Millis(attempts)
                logger.warning("\(item.notice.kind) message attempt failed; retrying", metadata: metadata)
            } else {
                status = "failed"
                logger.error("\(item.notice.kind) message failed", metadata: metadata)
            }
        } else {
            status = "sent"
            logger.info("\(item.notice.kind) message sent", metadata: metadata)
        }
        let (retryAt, lastError) = (dueAt, why)
        do {
            try await pool.transaction { connection in
                // A code's text does not outlive its message.
                try connection.query(
                    """
                    UPDATE contact_notices SET status = $2, attempts = $3, due_at_ms = coalesce($4, due_at_ms), lease_until_ms = 0,
                           last_error = $5, finished_at_ms = CASE WHEN $2 = 'pending' THEN NULL ELSE $6::bigint END,
                           body = CASE WHEN $2 <> 'pending' AND kind = 'verification' THEN '' ELSE body END,
                           spoken = CASE WHEN $2 <> 'pending' AND kind = 'verification' THEN '' ELSE spoken END
                    WHERE id = $1::uuid
                    """, [item.notice.id, status, attempts, retryAt, lastError, attemptAt])
            }
        } catch {
            // The lease runs out and it is tried again.
            logger.error("cannot record a message's outcome; the lease will expire", metadata: ["notice.id": "\(item.notice.id)", "error": "\(error)"])
        }
    }

    private func pruneNow(_ now: Millis) async throws {
        let due = lastPrune.withLockedValue { last -> Bool in
            guard now - last >= 600_000 else { return false }
            last = now
            return true
        }
        guard due else { return }
        try await pool.withConnection { connection in
            try connection.query("DELETE FROM contact_notices WHERE status <> 'pending' AND finished_at_ms < $1", [now - Self.keepMs])
        }
    }
}
