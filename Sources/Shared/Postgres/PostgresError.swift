/// A PostgreSQL failure, classified by SQLSTATE.
public struct PostgresError: Error, Sendable, CustomStringConvertible {
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
    /// Class 08 (connection exception), 57P0x (server shutting down, or in recovery), 25006 (a
    /// write on a node that is a standby now: a failover demoted it), or no SQLSTATE at all
    /// (libpq lost the connection): the connection must not be reused — the next one finds the
    /// primary (a multi-host URL with target_session_attrs=read-write).
    public var isConnectionFailure: Bool {
        guard let sqlState else { return true }
        return sqlState.hasPrefix("08") || sqlState.hasPrefix("57P0") || sqlState == "25006"
    }

}
