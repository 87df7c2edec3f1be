/// An error that knows the status it stands for. The RPC server answers with it, so handlers
/// let such errors through instead of mapping them one by one.
public protocol RPCStatusConvertible: Error {
    var rpcError: RPCError { get }
}

/// An error a handler (or the client) reports as a status: code, message, field violations.
public struct RPCError: Error, Equatable, Sendable, CustomStringConvertible {
    public var status: RPCStatus

    public init(_ code: StatusCode, _ message: String, violations: [FieldViolation] = []) {
        status = RPCStatus(code: code, message: message, violations: violations)
    }

    public init(status: RPCStatus) {
        self.status = status
    }

    public var code: StatusCode { status.code }
    public var message: String { status.message }

    public var description: String {
        var text = "\(status.code): \(status.message)"
        for violation in status.violations { text += "; \(violation.field): \(violation.description)" }
        return text
    }

    public static func invalidArgument(_ violations: [FieldViolation]) -> RPCError {
        let names = violations.map(\.field).joined(separator: ", ")
        return RPCError(.invalidArgument, "invalid fields: \(names)", violations: violations)
    }

    public static func invalidBody(_ error: WireError, message: String) -> RPCError {
        RPCError(
            .invalidArgument, "cannot decode \(message): \(error)",
            violations: [FieldViolation(field: error.field, description: error.reason)])
    }
}
