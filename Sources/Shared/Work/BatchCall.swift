import Logging

/// Service-to-service batch calls: an outbox bundle goes out as one call whose request holds the
/// messages as `repeated … requests = 1`, and whose reply (`BatchReply`) names the items that
/// failed. The receiver applies the whole batch in one transaction; if that fails for a reason
/// one item may cause (bad data, a constraint), it applies each item on its own, so one bad item
/// never holds up the others.
public enum BatchCall {
    /// The single-message method → its batch counterpart. The relay sends a bundle of these as
    /// one batch call; a peer that does not know the batch method (UNIMPLEMENTED) gets them one
    /// by one.
    public static let batchMethods: [String: String] = [
        Assignment.IncidentTriggered.name: Assignment.IncidentsTriggered.name,
        Notifier.Notify.name: Notifier.NotifyBatch.name,
    ]

    /// The encoding of a batch message whose field 1 repeats these already-encoded messages:
    /// per item, the tag (field 1, length-delimited), the length as a varint, the bytes.
    public static func body(_ items: [[UInt8]]) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(items.reduce(0) { $0 + $1.count + 6 })
        for item in items {
            bytes.append(0x0A)
            var length = UInt64(item.count)
            while length >= 0x80 {
                bytes.append(UInt8(length & 0x7F) | 0x80)
                length >>= 7
            }
            bytes.append(UInt8(length))
            bytes.append(contentsOf: item)
        }
        return bytes
    }

    /// Applies `items` in one go with `together`; when that fails with an error that is not the
    /// database's or the call's as a whole (unavailable, cancelled), applies each with `alone`
    /// and names each failure in the reply.
    public static func apply<Item: Sendable>(
        _ items: [Item], logger: Logger,
        together: ([Item]) async throws -> Void, alone: (Item) async throws -> Void
    ) async throws -> BatchReply {
        do {
            try await together(items)
            return BatchReply()
        } catch let error as PostgresError where error.isConnectionFailure {
            throw error
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            if items.count > 1 {
                logger.warning("batch failed as a whole; applying its items one by one", metadata: [
                    "batch.items": "\(items.count)", "error": "\(error)"])
            }
        }
        var reply = BatchReply()
        for (index, item) in items.enumerated() {
            do {
                try await alone(item)
            } catch let error as PostgresError where error.isConnectionFailure {
                throw error
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                reply.failures.append(BatchItemFailure(index: UInt32(index), status: status(for: error)))
            }
        }
        return reply
    }

    public static func status(for error: Error) -> RPCStatus {
        switch error {
        case let error as RPCError: error.status
        case let error as RPCStatusConvertible: error.rpcError.status
        default: RPCStatus(code: .internalError, message: "\(error)")
        }
    }
}
