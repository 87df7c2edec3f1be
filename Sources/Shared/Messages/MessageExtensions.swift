import KlaxonDomain

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

extension RPCStatus {
    public init(code: StatusCode, message: String = "", violations: [FieldViolation] = []) {
        self.init(rawCode: code.rawValue, message: message, violations: violations)
    }

    public var code: StatusCode { StatusCode(rawValue: rawCode) ?? .unknown }
    public static let ok = RPCStatus(code: .ok)
}

extension IncidentView {
    public init(incidentID: UInt64, state: IncidentState) {
        self.init(
            incidentID: incidentID, status: state.status, level: UInt32(state.level), loop: UInt32(state.loop),
            assigneeIDs: state.assignees,
            acknowledgements: state.acknowledgements.map {
                AcknowledgementView(userID: $0.user ?? 0, actor: $0.actor, atMs: $0.at, closedAtMs: $0.closedAt ?? 0)
            },
            escalateAtMs: state.escalateAt ?? 0, ackTimeoutAtMs: state.ackTimeoutAt ?? 0,
            snoozedUntilMs: state.snoozedUntil ?? 0, autoResolveAtMs: state.autoResolveAt ?? 0, exhausted: state.exhausted)
    }
}
