import Foundation
import Logging
import Shared

/// A fresh, migrated database per test on the throwaway cluster that scripts/test starts
/// (KLAXON_TEST_DATABASE_URL points at its `postgres` database).
public struct TestDatabase: Sendable {
    public let name: String
    public let url: String
    public let pool: PostgresPool

    public static var adminURL: String {
        get throws {
            guard let url = ProcessInfo.processInfo.environment["KLAXON_TEST_DATABASE_URL"], !url.isEmpty else {
                throw ConfigError(description: "KLAXON_TEST_DATABASE_URL is not set: run the tests with scripts/test, which starts PostgreSQL")
            }
            return url
        }
    }

    public static func create(logger: Logger = Logger(label: "test"), migrate: Bool = true) async throws -> TestDatabase {
        let admin = try adminURL
        let name = "klaxon_t_\(UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16).lowercased())"
        let adminConnection = try PGConnection(url: admin)
        try adminConnection.execute("CREATE DATABASE \(name)")
        let url = Self.url(admin, database: name)
        let pool = PostgresPool(url: url, logger: logger)
        if migrate { try await Migrator.migrate(pool, now: 0, logger: logger) }
        return TestDatabase(name: name, url: url, pool: pool)
    }

    /// Replaces the database of a libpq URI.
    static func url(_ admin: String, database: String) -> String {
        guard var components = URLComponents(string: admin) else { return admin }
        components.path = "/\(database)"
        return components.string ?? admin
    }

    public func drop() async {
        await pool.shutdown()
        guard let admin = try? Self.adminURL, let connection = try? PGConnection(url: admin) else { return }
        _ = try? connection.execute("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
    }

    /// Every message waiting in the outbox (a bundle row counts as the messages it holds).
    public func outboxMessages(destination: String = Outbox.Destination.assignment) async throws -> [(method: String, body: [UInt8])] {
        try await pool.withConnection { connection in
            let rows = try connection.query("SELECT method, body FROM outbox WHERE destination = $1 ORDER BY id", [destination])
            return try (0..<rows.count).flatMap { try Outbox.messages(method: rows.string($0, "method")!, body: rows.bytes($0, "body") ?? []) }
        }
    }

    /// One value from one query, for assertions.
    public func scalar(_ sql: String, _ params: [any PGEncodable] = []) async throws -> Int64? {
        try await pool.withConnection { connection in
            let result = try connection.query(sql, params)
            return result.isEmpty ? nil : result.string(0, result.columnName(0)).flatMap { Int64($0) }
        }
    }
}
