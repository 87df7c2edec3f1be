import CLibPQ

/// A value bound to a statement parameter. Text for everything but bytea, which goes binary.
public enum PGParam: Sendable, Equatable {
    case null
    case text(String)
    case bytes([UInt8])
}

public protocol PGEncodable: Sendable {
    var pgParam: PGParam { get }
}

extension String: PGEncodable { public var pgParam: PGParam { .text(self) } }
extension Int: PGEncodable { public var pgParam: PGParam { .text(String(self)) } }
extension Int64: PGEncodable { public var pgParam: PGParam { .text(String(self)) } }
extension Int32: PGEncodable { public var pgParam: PGParam { .text(String(self)) } }
extension UInt32: PGEncodable { public var pgParam: PGParam { .text(String(self)) } }
extension UInt64: PGEncodable { public var pgParam: PGParam { .text(String(self)) } }
extension Bool: PGEncodable { public var pgParam: PGParam { .text(self ? "t" : "f") } }
extension Array: PGEncodable where Element == UInt8 { public var pgParam: PGParam { .bytes(self) } }
extension Optional: PGEncodable where Wrapped: PGEncodable {
    public var pgParam: PGParam { self?.pgParam ?? .null }
}

/// One libpq connection. Blocking: used only from the pool's threads, by one caller at a time.
/// Every statement is parameterised and prepared once per connection.
public final class PGConnection: @unchecked Sendable {
    private let handle: OpaquePointer
    private var statements: [String: String] = [:]

    public init(url: String) throws {
        guard let handle = PQconnectdb(url) else {
            throw PostgresError(sqlState: nil, message: "libpq could not allocate a connection")
        }
        // Checked before `self.handle` is set: once it is, a throw would also run deinit (double PQfinish).
        guard PQstatus(handle) == CONNECTION_OK else {
            let message = Self.errorMessage(handle)
            PQfinish(handle)
            throw PostgresError(sqlState: "08001", message: "cannot connect to PostgreSQL: \(message)")
        }
        self.handle = handle
        // Notices (e.g. "relation already exists, skipping") are not for the service log.
        PQsetNoticeProcessor(handle, { _, _ in }, nil)
    }

    deinit { PQfinish(handle) }

    public var isHealthy: Bool { PQstatus(handle) == CONNECTION_OK }

    /// Runs `sql` (one statement, `$1…` placeholders) as a prepared statement.
    @discardableResult
    public func query(_ sql: String, _ params: [any PGEncodable] = []) throws -> PGResult {
        let name = try preparedName(for: sql, count: params.count)
        let values = params.map(\.pgParam)
        return try withParams(values) { count, pointers, lengths, formats in
            try check(PQexecPrepared(handle, name, count, pointers, lengths, formats, 0))
        }
    }

    /// Runs one or more statements with no parameters (transaction control, migrations).
    @discardableResult
    public func execute(_ sql: String) throws -> PGResult {
        try check(PQexec(handle, sql))
    }

    private func preparedName(for sql: String, count: Int) throws -> String {
        if let name = statements[sql] { return name }
        let name = "k\(statements.count)"
        _ = try check(PQprepare(handle, name, sql, Int32(count), nil))
        statements[sql] = name
        return name
    }

    private func withParams<T>(
        _ values: [PGParam],
        _ body: (Int32, UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<Int32>?, UnsafePointer<Int32>?) throws -> T
    ) throws -> T {
        // Each parameter's bytes are copied into one buffer that outlives the call.
        var storage: [UInt8] = []
        var offsets: [Int?] = []
        var lengths: [Int32] = []
        var formats: [Int32] = []
        for value in values {
            switch value {
            case .null:
                offsets.append(nil); lengths.append(0); formats.append(0)
            case let .text(text):
                offsets.append(storage.count)
                storage.append(contentsOf: text.utf8)
                storage.append(0)
                lengths.append(0); formats.append(0)
            case let .bytes(bytes):
                offsets.append(storage.count)
                storage.append(contentsOf: bytes)
                storage.append(0)
                lengths.append(Int32(bytes.count)); formats.append(1)
            }
        }
        return try storage.withUnsafeBufferPointer { buffer in
            let base = UnsafeRawPointer(buffer.baseAddress)
            let pointers: [UnsafePointer<CChar>?] = offsets.map { offset in
                offset.flatMap { base?.advanced(by: $0).assumingMemoryBound(to: CChar.self) }
            }
            return try pointers.withUnsafeBufferPointer { pointerBuffer in
                try lengths.withUnsafeBufferPointer { lengthBuffer in
                    try formats.withUnsafeBufferPointer { formatBuffer in
                        try body(Int32(values.count), pointerBuffer.baseAddress, lengthBuffer.baseAddress, formatBuffer.baseAddress)
                    }
                }
            }
        }
    }

    private func check(_ result: OpaquePointer?) throws -> PGResult {
        guard let result else {
            throw PostgresError(sqlState: nil, message: Self.errorMessage(handle))
        }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
            return PGResult(result)
        default:
            let sqlState = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }
            let message = PQresultErrorMessage(result).map { String(cString: $0) } ?? "unknown error"
            PQclear(result)
            throw PostgresError(sqlState: sqlState, message: message.trimmingSuffixNewlines())
        }
    }

    private static func errorMessage(_ handle: OpaquePointer) -> String {
        PQerrorMessage(handle).map { String(cString: $0).trimmingSuffixNewlines() } ?? "unknown error"
    }
}

extension String {
    func trimmingSuffixNewlines() -> String {
        var text = self
        while text.last?.isNewline == true { text.removeLast() }
        return text
    }
}

/// A result set in text format. Column lookups are by name.
public final class PGResult: @unchecked Sendable {
    private let handle: OpaquePointer

    init(_ handle: OpaquePointer) { self.handle = handle }
    deinit { PQclear(handle) }

    public var count: Int { Int(PQntuples(handle)) }
    public var isEmpty: Bool { count == 0 }
    /// Rows changed by INSERT/UPDATE/DELETE.
    public var affectedRows: Int { Int(String(cString: PQcmdTuples(handle))) ?? 0 }

    public func columnName(_ index: Int) -> String {
        String(cString: PQfname(handle, Int32(index)))
    }

    private func column(_ name: String) -> Int32 {
        let index = PQfnumber(handle, name)
        precondition(index >= 0, "no column \(name) in result")
        return index
    }

    public func isNull(_ row: Int, _ name: String) -> Bool {
        PQgetisnull(handle, Int32(row), column(name)) == 1
    }

    public func string(_ row: Int, _ name: String) -> String? {
        let col = column(name)
        guard PQgetisnull(handle, Int32(row), col) == 0 else { return nil }
        return String(cString: PQgetvalue(handle, Int32(row), col))
    }

    public func int64(_ row: Int, _ name: String) -> Int64? { string(row, name).flatMap { Int64($0) } }
    public func uint64(_ row: Int, _ name: String) -> UInt64? { string(row, name).flatMap { UInt64($0) } }
    public func int(_ row: Int, _ name: String) -> Int? { string(row, name).flatMap { Int($0) } }
    public func bool(_ row: Int, _ name: String) -> Bool? { string(row, name).map { $0 == "t" } }

    /// A bytea column (text format, hex-escaped by the server).
    public func bytes(_ row: Int, _ name: String) -> [UInt8]? {
        let col = column(name)
        guard PQgetisnull(handle, Int32(row), col) == 0 else { return nil }
        var length = 0
        guard let raw = PQunescapeBytea(PQgetvalue(handle, Int32(row), col), &length) else { return nil }
        defer { PQfreemem(raw) }
        return Array(UnsafeBufferPointer(start: raw, count: length))
    }
}
