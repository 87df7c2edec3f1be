import Foundation
import KlaxonDomain
import Logging
import NIOCore

/// The transactional outbox: `enqueue` inside the transaction of the change it announces;
/// `OutboxRelay` delivers after commit.
public enum Outbox {
    /// Outbox destinations: the service a message is for.
    public enum Destination {
        public static let assignment = "assignment"
        public static let notifier = "notifier"
    }

    public static func newMessageID() -> String { RandomID.uuid() }

    public static func enqueue(
        _ connection: PGConnection, destination: String, method: String, messageID: String, body: [UInt8], now: Millis
    ) throws {
        try connection.query(
            """
            INSERT INTO outbox (message_id, destination, method, body, created_at_ms, next_attempt_at_ms)
            VALUES ($1, $2, $3, $4, $5, $5)
            """, [messageID, destination, method, body, now])
    }
}

/// Receivers record each applied message in the transaction that applies it.
public enum Inbox {
    /// True the first time `messageID` is seen by `consumer`; false for a redelivery.
    public static func claim(_ connection: PGConnection, consumer: String, messageID: String, now: Millis) throws -> Bool {
        try connection.query(
            "INSERT INTO inbox (consumer, message_id, received_at_ms) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            [consumer, messageID, now]
        ).affectedRows == 1
    }
}

/// Delivers one destination's outbox rows over the binary protocol: claims due rows in batches
/// (FOR UPDATE SKIP LOCKED, so replicas share the work), sends them concurrently, deletes each on
/// OK and reschedules it with exponential backoff otherwise. Receivers are idempotent, so a crash
/// between a delivery and its delete only means one more delivery.
public struct OutboxRelay: Sendable {
    public var destination: String
    public var client: RPCClient
    public var pool: PostgresPool
    public var batchSize = 64
    /// A claimed row is invisible to other relays this long; past it, it is due again.
    public var leaseMs: Millis = 30_000
    public var maxBackoffMs: Millis = 60_000
    public var callTimeout: TimeAmount = .seconds(10)
    public var logger: Logger

    public init(destination: String, client: RPCClient, pool: PostgresPool, logger: Logger) {
        self.destination = destination
        self.client = client
        self.pool = pool
        self.logger = logger
    }

    struct Claimed: Sendable {
        var id: Int64
        var method: String
        var body: [UInt8]
        var attempts: Int
    }

    /// Delivers what is due at `now`; returns the next instant something will be due.
    public func deliverDue(now: Millis) async throws -> Millis? {
        let destination = self.destination
        let batchSize = self.batchSize
        let leaseMs = self.leaseMs
        let claimed = try await pool.transaction { connection -> [Claimed] in
            let rows = try connection.query(
                """
                UPDATE outbox SET attempts = attempts + 1, next_attempt_at_ms = $2 + $4
                WHERE id IN (
                    SELECT id FROM outbox WHERE destination = $1 AND next_attempt_at_ms <= $2
                    ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED)
                RETURNING id, method, body, attempts
                """, [destination, now, batchSize, leaseMs])
            return (0..<rows.count).map { row in
                Claimed(
                    id: rows.int64(row, "id")!, method: rows.string(row, "method")!, body: rows.bytes(row, "body") ?? [],
                    attempts: rows.int(row, "attempts")!)
            }
        }
        if !claimed.isEmpty {
            await withTaskGroup(of: Void.self) { group in
                for message in claimed {
                    group.addTask { await self.deliver(message, now: now) }
                }
            }
            if claimed.count == batchSize { return now }  // more may be waiting
        }
        return try await pool.withConnection { connection in
            try connection.query("SELECT min(next_attempt_at_ms) AS next FROM outbox WHERE destination = $1", [destination])
                .int64(0, "next")
        }
    }

    private func deliver(_ message: Claimed, now: Millis) async {
        do {
            _ = try await client.callRaw(message.method, body: message.body, timeout: callTimeout)
            try await pool.withConnection { connection in
                try connection.query("DELETE FROM outbox WHERE id = $1", [message.id])
            }
        } catch {
            let delay = min(maxBackoffMs, 100 * (Millis(1) << Millis(min(message.attempts, 20))))
            logger.warning(
                "outbox delivery failed",
                metadata: ["outbox.destination": "\(destination)", "outbox.id": "\(message.id)",
                           "outbox.attempts": "\(message.attempts)", "error": "\(error)"])
            let description = "\(error)"
            _ = try? await pool.withConnection { connection in
                try connection.query(
                    "UPDATE outbox SET next_attempt_at_ms = $2, last_error = $3 WHERE id = $1",
                    [message.id, now + delay, description])
            }
        }
    }
}
