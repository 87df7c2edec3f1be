import CProtobufC
import KlaxonProto

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

public struct FieldViolation: Sendable, Equatable, CBridged {
    public var field: String
    public var description: String

    public init(field: String, description: String) {
        self.field = field
        self.description = description
    }

    nonisolated(unsafe) static let descriptor = descriptorOf { klaxon__rpc__v1__field_violation__init($0) }

    init(c: UnsafePointer<Klaxon__Rpc__V1__FieldViolation>) {
        field = CRead.string(c.pointee.field)
        description = CRead.string(c.pointee.description)
    }

    func fill(_ c: UnsafeMutablePointer<Klaxon__Rpc__V1__FieldViolation>, arena: CArena) {
        c.pointee.field = arena.string(field)
        c.pointee.description = arena.string(description)
    }
}

/// The status of a reply. `code` keeps the raw number so a newer peer's code survives.
public struct RPCStatus: Sendable, Equatable, CBridged {
    public var rawCode: UInt32
    public var message: String
    public var violations: [FieldViolation]

    public init(code: StatusCode, message: String = "", violations: [FieldViolation] = []) {
        self.rawCode = code.rawValue
        self.message = message
        self.violations = violations
    }

    public var code: StatusCode { StatusCode(rawValue: rawCode) ?? .unknown }
    public static let ok = RPCStatus(code: .ok)

    nonisolated(unsafe) static let descriptor = descriptorOf { klaxon__rpc__v1__status__init($0) }

    init(c: UnsafePointer<Klaxon__Rpc__V1__Status>) throws(WireError) {
        rawCode = c.pointee.code
        message = CRead.string(c.pointee.message)
        violations = try CRead.messages(c.pointee.n_violations, c.pointee.violations, field: "violations")
    }

    func fill(_ c: UnsafeMutablePointer<Klaxon__Rpc__V1__Status>, arena: CArena) {
        c.pointee.code = rawCode
        c.pointee.message = arena.string(message)
        (c.pointee.n_violations, c.pointee.violations) = arena.messages(violations)
    }
}

/// One frame's content: a request (method set) or a reply (status set).
public struct Envelope: Sendable, Equatable, CBridged {
    public var id: UInt64
    public var method: String
    public var body: [UInt8]
    public var status: RPCStatus?
    public var headers: [String: String]

    public init(id: UInt64, method: String = "", body: [UInt8] = [], status: RPCStatus? = nil, headers: [String: String] = [:]) {
        self.id = id
        self.method = method
        self.body = body
        self.status = status
        self.headers = headers
    }

    nonisolated(unsafe) static let descriptor = descriptorOf { klaxon__rpc__v1__envelope__init($0) }
    nonisolated(unsafe) static let headersEntryDescriptor: UnsafePointer<ProtobufCMessageDescriptor> = messageDescriptor { klaxon__rpc__v1__envelope__headers_entry__init($0) }

    init(c: UnsafePointer<Klaxon__Rpc__V1__Envelope>) throws(WireError) {
        id = c.pointee.id
        method = CRead.string(c.pointee.method)
        body = CRead.bytes(c.pointee.body)
        status = try CRead.nested(c.pointee.status, field: "status")
        headers = CRead.map(c.pointee.n_headers, c.pointee.headers) {
            (CRead.string($0.pointee.key), CRead.string($0.pointee.value))
        }
    }

    func fill(_ c: UnsafeMutablePointer<Klaxon__Rpc__V1__Envelope>, arena: CArena) {
        c.pointee.id = id
        c.pointee.method = arena.string(method)
        c.pointee.body = arena.bytes(body)
        c.pointee.status = status?.makeC(arena: arena)
        (c.pointee.n_headers, c.pointee.headers) = arena.map(headers, Self.headersEntryDescriptor) {
            (entry: UnsafeMutablePointer<Klaxon__Rpc__V1__Envelope__HeadersEntry>, key, value) in
            entry.pointee.key = key
            entry.pointee.value = value
        }
    }
}

/// The reply body of calls that return only their status.
public struct Empty: Sendable, Equatable, CBridged {
    public init() {}
    nonisolated(unsafe) static let descriptor = descriptorOf { klaxon__rpc__v1__empty__init($0) }
    init(c: UnsafePointer<Klaxon__Rpc__V1__Empty>) {}
    func fill(_ c: UnsafeMutablePointer<Klaxon__Rpc__V1__Empty>, arena: CArena) {}
}
