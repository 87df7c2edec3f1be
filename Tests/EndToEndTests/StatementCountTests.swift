import Foundation
import KlaxonDomain
import KlaxonTestSupport
import Shared
import Testing

/// Issue 29, point 1: the statements PostgreSQL executes per incident, across the whole pipeline
/// (Ingest's write, Assignment's claim and assignment, Notifier's claim, sends' outcomes), counted
/// by pg_stat_statements over a 1,000-incident surge. Every statement counts, BEGIN and COMMIT
/// too, and the background loops' polls while the surge runs.
@Suite struct StatementCountTests {
    @Test func aSurgeCostsAtMostEightStatementsPerIncident() async throws {
        let pipeline = try await Pipeline()
        let url = "\(pipeline.sink.url)/hooks"
        let service = try await pipeline.db.pool.transaction { connection in
            try Seed.service(connection, name: "Checkout", routingKey: Seed.newRoutingKey(), users: [
                Seed.User(name: "Ada", email: "ada@example.com", webhookURL: url),
                Seed.User(name: "Ben", email: "ben@example.com", webhookURL: url),
            ])
        }
        try await pipeline.db.pool.withConnection { connection in
            try connection.query("UPDATE services SET events_per_minute = 0 WHERE id = $1", [service.serviceID])
            // The view lives in a database's extension; its figures are the cluster's, per database.
            try connection.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        }
        let loaded = try await pipeline.db.scalar("SELECT count(*) FROM pg_settings WHERE name = 'shared_preload_libraries' AND setting LIKE '%pg_stat_statements%'")
        try #require(loaded == 1, "PostgreSQL must load pg_stat_statements (shared_preload_libraries): scripts/test starts it so")
        let dbid = "(SELECT oid FROM pg_database WHERE datname = current_database())"
        try await pipeline.db.pool.withConnection { connection in
            try connection.query("SELECT pg_stat_statements_reset(0, \(dbid), 0)")
        }
        // Transactions, from the database's statistics (flushed by each backend within about a second).
        let commits = "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        let commitsBefore = try await pipeline.db.scalar(commits) ?? 0

        // A surge as monitors send it: 1,000 triggers, one per call, from 16 connections at once.
        let incidents = 1000
        let clients = (0..<16).map { _ in pipeline.client(.ingest) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, client) in clients.enumerated() {
                group.addTask {
                    for number in stride(from: index, to: incidents, by: clients.count) {
                        let _: EventResult = try await client.call(
                            Ingest.SendEvent, Pipeline.trigger(service.routingKey, dedupKey: "surge-\(number)"), timeout: .seconds(60))
                    }
                }
            }
            try await group.waitForAll()
        }
        let pages = await pipeline.sink.waitForRequests(2 * incidents, timeout: .seconds(60))
        #expect(pages.count == 2 * incidents)
        // Every outcome written: the pages' work is done in the database too.
        var delivered: Int64 = 0
        for _ in 0..<600 {
            delivered = try await pipeline.db.scalar("SELECT count(*) FROM notifications WHERE status = 'sent'") ?? 0
            if delivered == Int64(2 * incidents) { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(delivered == Int64(2 * incidents))

        let rows = try await pipeline.db.pool.withConnection { connection in
            let result = try connection.query(
                """
                SELECT calls, regexp_replace(left(query, 120), '\\s+', ' ', 'g') AS query
                FROM pg_stat_statements WHERE dbid = \(dbid) AND toplevel
                  AND query NOT LIKE '%pg_stat_statements%' AND query NOT LIKE '%FROM notifications WHERE status = $1%'
                ORDER BY calls DESC
                """)
            return (0..<result.count).map { (Int(result.string($0, "calls") ?? "0") ?? 0, result.string($0, "query") ?? "") }
        }
        try await Task.sleep(for: .milliseconds(1_500))
        let transactions = (try await pipeline.db.scalar(commits) ?? 0) - commitsBefore
        let total = rows.reduce(0) { $0 + $1.0 }
        let perIncident = Double(total) / Double(incidents)
        print("statements per incident over a \(incidents)-incident surge (2 pages each): \(String(format: "%.2f", perIncident)) (\(total) executed)")
        // PostgreSQL 15's pg_stat_statements does not list BEGIN and COMMIT sent through the
        // extended protocol (they travel in the same round trip as the first and last statement).
        print("transactions committed meanwhile: \(transactions) (\(String(format: "%.2f", Double(transactions) / Double(incidents))) per incident)")
        // PostgreSQL 15's pg_stat_statements does not list BEGIN and COMMIT sent through the
        // extended protocol (they travel in the same round trip as the first and last statement).
        print("transactions committed meanwhile: \(transactions) (\(String(format: "%.2f", Double(transactions) / Double(incidents))) per incident)")
        for (calls, query) in rows.prefix(20) { print(String(format: "%7d  %@", calls, query)) }
        #expect(perIncident <= 8, "statements per incident: \(perIncident)")
        for client in clients { await client.close() }
        await pipeline.shutdown()
    }
}
