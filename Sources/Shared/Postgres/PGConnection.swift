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
/// Every statement is parameterised and prepared once per connection — or, with `prepared`
/// false, sent whole each time as an unnamed statement, which keeps no state on the server
/// session (behind pgbouncer in transaction mode, whose server connections change between
/// transactions; pgbouncer before 1.21 cannot carry named prepared statements).
public final class PGConnection: @unchecked Sendable {
    /// Seq scans off for the rest of the transaction (enqueue it first). A connection's generic
    /// plan is made once and kept until the next ANALYZE: one made while the tables were young (a
    /// new deployment, a fresh benchmark database) would otherwise seq-scan tables that keep
    /// growing. For statements that must reach their rows through an index whatever the plan cache
    /// decides (a trigger batch, the notify intake's lookup).
    public static let seqScansOff = "SET LOCAL enable_seqscan = off"
    /// The generic plan for the rest of the transaction (enqueue it first). PostgreSQL keeps
    /// planning a statement on every call while its custom plans look cheaper than the generic one,
    /// which for a probe per array element (`unnest … CROSS JOIN LATERAL`) is always: Ingest's lock
    /// query was planned on 3,254 of 3,262 calls at 1,000 triggers/s, 0.21 ms each (issue 29). Only
    /// for statements whose generic plan reaches its rows through an index (a test checks it).
    public static let genericPlans = "SET LOCAL plan_cache_mode = force_generic_plan"

    private let handle: OpaquePointer
    private let prepared: Bool
    private var statements: [String: String] = [:]
    /// Statements queued by `enqueue`, sent ahead of the next statement in one round trip: a
    /// prepared statement's name, or (unprepared) the SQL itself.
    private var deferred: [(name: String, values: [PGParam])] = []
    /// Statements `combine` is collecting into one.
    private var combining: [(sql: String, params: [any PGEncodable])]?
    /// Set when a pipeline ended in a state this connection cannot vouch for: the pool drops it.
    private var broken = false

    public init(url: String, prepared: Bool = true) throws {
        self.prepared = prepared
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

    public var isHealthy: Bool { !broken && PQstatus(handle) == CONNECTION_OK }
    /// Which database this is (host, port, name): for caches kept per database.
    public var databaseKey: String {
        func text(_ value: UnsafeMutablePointer<CChar>?) -> String { value.map { String(cString: $0) } ?? "" }
        return "\(text(PQhost(handle))):\(text(PQport(handle)))/\(text(PQdb(handle)))"
    }

    /// Runs `sql` (one statement, `$1…` placeholders) as a prepared statement. Statements queued
    /// with `enqueue` go first, in the same round trip (libpq pipeline mode); if one of them fails,
    /// its error is thrown here and the rest, this one included, do not run.
    @discardableResult
    public func query(_ sql: String, _ params: [any PGEncodable] = []) throws -> PGResult {
        precondition(combining == nil, "a query inside combine: combine's body only enqueues")
        let name = try preparedName(for: sql, count: params.count)
        let values = params.map(\.pgParam)
        if !deferred.isEmpty {
            let queued = deferred + [(name, values)]
            deferred.removeAll()
            return try pipeline(queued)
        }
        return try withParams(values) { count, pointers, lengths, formats in
            prepared
                ? try check(PQexecPrepared(handle, name, count, pointers, lengths, formats, 0))
                : try check(PQexecParams(handle, name, count, nil, pointers, lengths, formats, 0))
        }
    }

    /// Queues a statement whose result nobody reads (a write inside a transaction): it is sent
    /// with the next `query`, `execute` or `flush`, saving a round trip each. Its error, if any,
    /// surfaces from that call, so queue only inside a transaction that fails as a whole.
    public func enqueue(_ sql: String, _ params: [any PGEncodable] = []) throws {
        if combining != nil {
            combining!.append((sql, params))
            return
        }
        let name = try preparedName(for: sql, count: params.count)  // prepared now: not allowed mid-pipeline
        deferred.append((name, params.map(\.pgParam)))
    }

    /// Writes enqueued by `body` that do not depend on each other's effects, sent as ONE
    /// statement: the first ones become data-modifying CTEs of the last
    /// (`WITH w0 AS (INSERT …), w1 AS (UPDATE …) INSERT …`). PostgreSQL runs each exactly once,
    /// on one snapshot, so none sees another's rows: only for writes to different rows (a batch's
    /// incidents, their assignees, their timeline, an outbox row). Each must be a plain INSERT,
    /// UPDATE or DELETE without RETURNING and without a WITH of its own. One statement instead of
    /// several: less work for the server per batch (issue 29), same round trip.
    public func combine(_ body: () throws -> Void) throws {
        precondition(combining == nil, "combine does not nest")
        combining = []
        let parts: [(sql: String, params: [any PGEncodable])]
        do {
            try body()
            parts = combining!
            combining = nil
        } catch {
            combining = nil
            throw error
        }
        guard parts.count > 1 else {
            if let only = parts.first { try enqueue(only.sql, only.params) }
            return
        }
        var sql = "WITH "
        var params: [any PGEncodable] = []
        for (index, part) in parts.enumerated() {
            let text = Self.renumbered(part.sql, by: params.count)
            params += part.params
            if index < parts.count - 1 {
                sql += "\(index == 0 ? "" : ", ")w\(index) AS (\(text))"
            } else {
                sql += "\n\(text)"
            }
        }
        try enqueue(sql, params)
    }

    /// `sql` with each placeholder `$n` made `$(n + offset)`.
    public static func renumbered(_ sql: String, by offset: Int) -> String {
        guard offset > 0 else { return sql }
        var out = ""
        out.reserveCapacity(sql.utf8.count + 16)
        var digits = ""
        var inPlaceholder = false
        func end() {
            if inPlaceholder {
                out += digits.isEmpty ? "$" : "$\(Int(digits)! + offset)"
                digits = ""
                inPlaceholder = false
            }
        }
        for character in sql {
            if inPlaceholder, character.isASCII, character.isNumber {
                digits.append(character)
                continue
            }
            end()
            if character == "$" { inPlaceholder = true } else { out.append(character) }
        }
        end()
        return out
    }

    /// Sends the queued statements now.
    public func flush() throws {
        guard !deferred.isEmpty else { return }
        let queued = deferred
        deferred.removeAll()
        _ = try pipeline(queued)
    }

    /// Forgets the queued statements (the transaction they belonged to is being rolled back).
    public func discardQueued() {
        deferred.removeAll()
    }

    /// Runs `body` inside a savepoint of the current transaction. If it throws, only its own
    /// writes are rolled back and the error is rethrown: the transaction can go on with other
    /// items (one bad incident never fails its batch).
    public func savepoint<T>(_ body: () throws -> T) throws -> T {
        try execute("SAVEPOINT klaxon_item")
        do {
            let result = try body()
            try execute("RELEASE SAVEPOINT klaxon_item")
            return result
        } catch {
            discardQueued()
            try execute("ROLLBACK TO SAVEPOINT klaxon_item")
            try execute("RELEASE SAVEPOINT klaxon_item")
            throw error
        }
    }

    /// Runs one or more statements with no parameters (transaction control, migrations), after
    /// any queued ones.
    @discardableResult
    public func execute(_ sql: String) throws -> PGResult {
        try flush()
        return try check(PQexec(handle, sql))
    }

    /// Sends the statements back to back and one Sync, then reads every result: one round trip.
    /// Returns the last statement's result; throws the first failure.
    private func pipeline(_ items: [(name: String, values: [PGParam])]) throws -> PGResult {
        guard PQenterPipelineMode(handle) == 1 else {
            throw PostgresError(sqlState: nil, message: "cannot enter pipeline mode: \(Self.errorMessage(handle))")
        }
        var sent = 0
        var sendError: String?
        for item in items {
            let ok = withParams(item.values) { count, pointers, lengths, formats in
                prepared
                    ? PQsendQueryPrepared(handle, item.name, count, pointers, lengths, formats, 0)
                    : PQsendQueryParams(handle, item.name, count, nil, pointers, lengths, formats, 0)
            }
            guard ok == 1 else {
                sendError = Self.errorMessage(handle)
                break
            }
            sent += 1
        }
        guard PQpipelineSync(handle) == 1 else {
            broken = true
            throw PostgresError(sqlState: "08006", message: "pipeline sync failed: \(Self.errorMessage(handle))")
        }
        var last: PGResult?
        var failure: PostgresError?
        for _ in 0..<sent {
            // Each statement's result, then a null pointer ending that statement's results.
            guard let result = PQgetResult(handle) else {
                broken = true
                throw PostgresError(sqlState: "08006", message: "pipeline ended early: \(Self.errorMessage(handle))")
            }
            while let extra = PQgetResult(handle) { PQclear(extra) }
            switch PQresultStatus(result) {
            case PGRES_PIPELINE_ABORTED:
                PQclear(result)
            default:
                do {
                    last = try check(result)
                } catch let error as PostgresError {
                    failure = failure ?? error
                }
            }
        }
        // The Sync's own result ends the pipeline.
        guard let sync = PQgetResult(handle) else {
            broken = true
            throw PostgresError(sqlState: "08006", message: "pipeline ended without its sync: \(Self.errorMessage(handle))")
        }
        let synced = PQresultStatus(sync) == PGRES_PIPELINE_SYNC
        PQclear(sync)
        guard synced, PQexitPipelineMode(handle) == 1 else {
            broken = true
            throw PostgresError(sqlState: "08006", message: "pipeline did not end cleanly: \(Self.errorMessage(handle))")
        }
        if let failure { throw failure }
        if let sendError { throw PostgresError(sqlState: "08006", message: "cannot send statement: \(sendError)") }
        guard let last, sent == items.count else {
            throw PostgresError(sqlState: nil, message: "pipeline returned no result")
        }
        return last
    }

    /// The prepared statement's name (prepared on first use), or unprepared the SQL itself.
    private func preparedName(for sql: String, count: Int) throws -> String {
        guard prepared else { return sql }
        if let name = statements[sql] { return name }
        let name = "k\(statements.count)"
        _ = try check(PQprepare(handle, name, sql, Int32(count), nil))
        statements[sql] = name
        return name
    }

    private func withParams<T>(
        _ values: [PGParam],
        _ body: (Int32, UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<Int32>?, UnsafePointer<Int32>?) throws -> T
    ) rethrows -> T {
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
    public func double(_ row: Int, _ name: String) -> Double? { string(row, name).flatMap { Double($0) } }

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
