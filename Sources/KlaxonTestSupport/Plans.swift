import Shared

/// The planner's choices, for tests that check a statement reaches its rows through an index.
extension PGConnection {
    /// `EXPLAIN EXECUTE name(arguments)` of a statement already prepared, as one text.
    public func plan(ofPrepared name: String, arguments: String = "") throws -> String {
        let rows = try execute("EXPLAIN EXECUTE \(name)\(arguments.isEmpty ? "" : "(\(arguments))")")
        // The column name is quoted: PQfnumber folds unquoted names to lower case.
        return (0..<rows.count).compactMap { rows.string($0, "\"QUERY PLAN\"") }.joined(separator: "\n")
    }

    /// The plan of `sql` prepared on this connection (as the services prepare their statements),
    /// with these literal arguments: the plan cache's choice under the session's settings.
    public func plan(of sql: String, arguments: String = "") throws -> String {
        _ = try execute("PREPARE planned AS \(sql)")
        defer { _ = try? execute("DEALLOCATE planned") }
        return try plan(ofPrepared: "planned", arguments: arguments)
    }
}
