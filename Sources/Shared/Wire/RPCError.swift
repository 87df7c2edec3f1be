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

/// gRPC status code numbers, as the wire contract uses them.
public enum StatusCode: UInt32, Sendable, Equatable, CustomStringConvertible {
    case ok = 0
    case cancelled = 1
    case unknown = 2
    case invalidArgument = 3
    case deadlineExceeded = 4
    case notFound = 5
    case alreadyExists = 6
    case permissionDenied = 7
    case resourceExhausted = 8
    case failedPrecondition = 9
    case aborted = 10
    case outOfRange = 11
    case unimplemented = 12
    case internalError = 13
    case unavailable = 14
    case dataLoss = 15
    case unauthenticated = 16

    public var description: String {
        switch self {
        case .ok: "OK"
        case .cancelled: "CANCELLED"
        case .unknown: "UNKNOWN"
        case .invalidArgument: "INVALID_ARGUMENT"
        case .deadlineExceeded: "DEADLINE_EXCEEDED"
        case .notFound: "NOT_FOUND"
        case .alreadyExists: "ALREADY_EXISTS"
        case .permissionDenied: "PERMISSION_DENIED"
        case .resourceExhausted: "RESOURCE_EXHAUSTED"
        case .failedPrecondition: "FAILED_PRECONDITION"
        case .aborted: "ABORTED"
        case .outOfRange: "OUT_OF_RANGE"
        case .unimplemented: "UNIMPLEMENTED"
        case .internalError: "INTERNAL"
        case .unavailable: "UNAVAILABLE"
        case .dataLoss: "DATA_LOSS"
        case .unauthenticated: "UNAUTHENTICATED"
        }
    }
}
