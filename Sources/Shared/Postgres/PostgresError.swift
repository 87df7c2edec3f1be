/// A PostgreSQL failure, classified by SQLSTATE.
public struct PostgresError: RPCStatusConvertible, Sendable, CustomStringConvertible {
    public var sqlState: String?
    public var message: String

    public init(sqlState: String?, message: String) {
        self.sqlState = sqlState
        self.message = message
    }

    public var description: String {
        sqlState.map { "[\($0)] \(message)" } ?? message
    }

    /// 40001 serialization_failure, 40P01 deadlock_detected: the transaction can simply run again.
    public var isRetryable: Bool { sqlState == "40001" || sqlState == "40P01" }
    public var isUniqueViolation: Bool { sqlState == "23505" }
    public var isForeignKeyViolation: Bool { sqlState == "23503" }
    public var isCheckViolation: Bool { sqlState == "23514" }
    /// Class 08 (connection exception), 57P0x (server shutting down), or no SQLSTATE at all
    /// (libpq lost the connection): the connection must not be reused.
    public var isConnectionFailure: Bool {
        guard let sqlState else { return true }
        return sqlState.hasPrefix("08") || sqlState.hasPrefix("57P0")
    }

    /// How the RPC layer reports it.
    public var rpcError: RPCError {
        switch sqlState {
        case "40001"?, "40P01"?: RPCError(.aborted, "the transaction conflicted with another; retry")
        case "23505"?: RPCError(.alreadyExists, "already exists")
        case "23503"?: RPCError(.failedPrecondition, "refers to something that does not exist or is in use")
        case "23514"?, "22P02"?, "22001"?: RPCError(.invalidArgument, "value rejected by the database: \(message)")
        case "57014"?: RPCError(.deadlineExceeded, "statement timed out")
        default:
            isConnectionFailure
                ? RPCError(.unavailable, "database unavailable") : RPCError(.internalError, "database error")
        }
    }
}
