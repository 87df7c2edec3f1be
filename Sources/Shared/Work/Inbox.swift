import KlaxonDomain

/// Receivers record each applied message in the transaction that applies it.
public enum Inbox {
    /// True the first time `messageID` is seen by `consumer`; false for a redelivery.
    public static func claim(_ connection: PGConnection, consumer: String, messageID: String, now: Millis) throws -> Bool {
        try connection.query(
            "INSERT INTO inbox (consumer, message_id, received_at_ms) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            [consumer, messageID, now]
        ).affectedRows == 1
    }

    /// The batch form: which of `messageIDs` are seen for the first time (one statement).
    public static func claim(_ connection: PGConnection, consumer: String, messageIDs: [String], now: Millis) throws -> Set<String> {
        let rows = try connection.query(
            """
            INSERT INTO inbox (consumer, message_id, received_at_ms) SELECT $1, m, $3 FROM unnest($2::text[]) AS m
            ON CONFLICT DO NOTHING RETURNING message_id
            """, [consumer, PGArray(messageIDs), now])
        return Set((0..<rows.count).map { rows.string($0, "message_id")! })
    }

    /// Forgets messages received before `before` (at most `limit` rows a call), returning how
    /// many. A message is remembered so a redelivery has no second effect; outboxes redeliver
    /// within minutes, so a retention of days keeps that promise while the table stops growing.
    @discardableResult
    public static func prune(_ connection: PGConnection, before: Millis, limit: Int = 10_000) throws -> Int {
        try connection.query(
            """
            DELETE FROM inbox WHERE ctid = ANY(ARRAY(
                SELECT ctid FROM inbox WHERE received_at_ms < $1 LIMIT $2))
            """, [before, limit]).affectedRows
    }
}
