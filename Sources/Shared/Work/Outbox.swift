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

    /// The `method` of a row that holds several messages (`bundle`): one row, one index entry and
    /// one delete for a whole group commit's worth of messages. Never sent on the wire: the relay
    /// delivers each message inside as its own call.
    public static let bundleMethod = "klaxon.outbox.Bundle"

    /// Several messages as one row body: each an Envelope (method and body) behind a 4-byte
    /// big-endian length, like frames on the wire.
    public static func bundle(_ messages: [(method: String, body: [UInt8])]) -> [UInt8] {
        var buffer = ByteBuffer()
        for message in messages {
            Framing.writeFrame(Envelope(id: 0, method: message.method, body: message.body).wireBytes(), into: &buffer)
        }
        return Array(buffer.readableBytesView)
    }

    /// The messages a row holds: itself, or what its bundle holds.
    public static func messages(method: String, body: [UInt8]) throws -> [(method: String, body: [UInt8])] {
        guard method == bundleMethod else { return [(method, body)] }
        var buffer = ByteBuffer(bytes: body)
        var messages: [(method: String, body: [UInt8])] = []
        while buffer.readableBytes > 0 {
            guard let frame = try Framing.readFrame(&buffer, maxFrameBytes: Int(Int32.max)) else { throw OutboxError.malformedBundle }
            let envelope = try Envelope(frame: frame)
            guard !envelope.method.isEmpty else { throw OutboxError.malformedBundle }
            messages.append((envelope.method, envelope.body))
        }
        return messages
    }

    public enum OutboxError: Error, CustomStringConvertible {
        case malformedBundle
        public var description: String { "malformed outbox bundle" }
    }

    /// One outbox row: message id, destination, method, body, now.
    public static let insert = """
        INSERT INTO outbox (message_id, destination, method, body, created_at_ms, next_attempt_at_ms)
        VALUES ($1, $2, $3, $4, $5, $5)
        """

    /// Queues `messages` for `destination` as one row: the message itself when there is one, a
    /// bundle otherwise (the relay sends a bundle as one batch call where the receiver has one).
    /// The write is pipelined: it goes out with the transaction's next statement.
    public static func enqueueAll(
        _ connection: PGConnection, destination: String, _ messages: [(method: String, body: [UInt8])], now: Millis
    ) throws {
        guard let first = messages.first else { return }
        let (method, body) = messages.count == 1 ? first : (bundleMethod, bundle(messages))
        try connection.enqueue(insert, [newMessageID(), destination, method, body, now])
    }

    public static func enqueue(
        _ connection: PGConnection, destination: String, method: String, messageID: String, body: [UInt8], now: Millis
    ) throws {
        try connection.query(insert, [messageID, destination, method, body, now])
    }
}
