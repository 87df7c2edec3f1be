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
}
