/// How failures of the layers below the services reach a caller: PostgreSQL errors as RPC
/// statuses. Here, above both layers, so the PostgreSQL layer knows nothing of RPC.
extension PostgresError: RPCStatusConvertible {
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
