import Foundation
import KlaxonDomain
import KlaxonTestSupport
@testable import NotifierService
import Shared
import Testing

/// The notify intake looks up what still waits for each (incident, user) of its batch. That
/// lookup must probe those pairs whatever PostgreSQL believes is pending: an ANALYZE made while
/// nothing was pending (the usual state) records the pending-only indexes as empty, and a plan
/// that reads "every pending notification" then looks free. With a backlog it is not: at 1,000
/// triggers/s each intake read the whole backlog, took 0.4–2.3 s, and pages arrived 17 s late
/// (docs/PERFORMANCE.md, migration 0029).
@Suite struct NotifyIntakePlanTests {
    @Test func waitingPagesAreFoundByPairEvenWhenStatisticsSayNothingIsPending() async throws {
        let database = try await TestDatabase.create()
        let (users, firstIncident) = try await database.pool.transaction { connection -> ([Int64], Int64) in
            let service = try Seed.service(
                connection, name: "plans", routingKey: Seed.newRoutingKey(),
                users: (0..<2).map { Seed.User(name: "u\($0)", email: "u\($0)@example.com", webhookURL: "http://127.0.0.1:9/\($0)") })
            try Seed.acknowledgedIncidents(
                connection, service: service.serviceID, users: service.userIDs, prefix: "plan", count: 4_000, firstDue: 0, spreadMs: 1)
            let first = try connection.query("SELECT min(id) AS id FROM incidents").int64(0, "id")!
            // 8,000 pages already sent (history), then statistics taken while nothing is pending.
            try connection.query(
                """
                INSERT INTO notifications (id, request_id, rule_id, incident_id, user_id, contact_method_id, reason, minute_zero,
                                           snapshot, requested_at_ms, due_at_ms, status, finished_at_ms)
                SELECT gen_random_uuid(), 'sent-' || i.id || '-' || r.user_id, r.id, i.id, r.user_id, r.contact_method_id, 'assigned',
                       true, '\\x00', 0, 0, 'sent', 1
                FROM incidents i CROSS JOIN notification_rules r
                """)
            return (service.userIDs, first)
        }
        try await database.pool.withConnection { try $0.execute("ANALYZE notifications") }
        // Then a backlog: 6,000 pages pending (3,000 incidents, two people).
        try await database.pool.transaction { connection in
            try connection.query(
                """
                INSERT INTO notifications (id, request_id, rule_id, incident_id, user_id, contact_method_id, reason, minute_zero,
                                           snapshot, requested_at_ms, due_at_ms)
                SELECT gen_random_uuid(), 'due-' || i.id || '-' || r.user_id, r.id, i.id, r.user_id, r.contact_method_id, 'assigned',
                       true, '\\x00', 0, 0
                FROM incidents i CROSS JOIN notification_rules r WHERE i.id >= $1 + 1000
                """, [firstIncident])
        }
        let arguments = "'{\(firstIncident + 1500),\(firstIncident + 1500),\(firstIncident + 3000)}', '{\(users[0]),\(users[1]),\(users[0])}'"
        let plans = try await database.pool.transaction { connection -> [String] in
            try connection.execute("PREPARE waiting AS \(NotifyIntake.waitingSQL)")
            let custom = try connection.plan(ofPrepared: "waiting", arguments: arguments)
            try connection.execute(PGConnection.genericPlans)
            return [custom, try connection.plan(ofPrepared: "waiting", arguments: arguments)]
        }
        for plan in plans {
            #expect(plan.contains("Index Scan using notifications_incident_user"), "\(plan)")
            #expect(!plan.contains("notifications_due"), "\(plan)")
            #expect(!plan.contains("Seq Scan"), "\(plan)")
        }
        // And the lookup finds exactly what waits for those pairs.
        let found = try await database.pool.transaction { connection in
            try connection.query(
                NotifyIntake.waitingSQL,
                [PGArray([firstIncident + 1500, firstIncident + 1500, firstIncident + 3000, firstIncident]),
                 PGArray([users[0], users[1], users[0], users[0]])]).count
        }
        #expect(found == 3)  // the fourth pair's page was sent
        await database.drop()
    }

    /// On a fresh database (a new deployment) the first generic plan is made on empty tables and
    /// kept: the lookup must still go through the index, not a scan of a table that keeps growing.
    @Test func theLookupUsesTheIndexWithPlansMadeOnEmptyTables() async throws {
        let database = try await TestDatabase.create()
        let plan = try await database.pool.transaction { connection -> String in
            try connection.execute(PGConnection.seqScansOff)
            try connection.execute(PGConnection.genericPlans)
            return try connection.plan(of: NotifyIntake.waitingSQL, arguments: "'{1}', '{1}'")
        }
        #expect(plan.contains("Index Scan using notifications_incident_user"), "\(plan)")
        #expect(!plan.contains("Seq Scan"), "\(plan)")
        await database.drop()
    }
}
