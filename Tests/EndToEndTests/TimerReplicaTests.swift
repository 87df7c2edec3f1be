import AssignmentService
import Foundation
import KlaxonDomain
import KlaxonTestSupport
import Logging
import Shared
import Testing

/// Two Assignment replicas on one database: every due timer fires exactly once.
@Suite struct TimerReplicaTests {
    @Test func twoReplicasNeverFireATimerTwiceOrLoseOne() async throws {
        let db = try await TestDatabase.create()
        let service = try await db.pool.transaction { connection in
            try Seed.service(
                connection, name: "Replicas", routingKey: Seed.newRoutingKey(),
                users: (0..<3).map { Seed.User(name: "U\($0)", email: "u\($0)@example.com", webhookURL: "http://127.0.0.1:9/none") },
                levels: [[0], [1], [2]], escalationDelaySeconds: 1)
        }
        // 120 incidents sitting on level 1 with their escalation already due.
        let clock = SystemWallClock()
        let now = clock.nowMs()
        try await db.pool.transaction { connection in
            for index in 0..<120 {
                let id = try connection.query(
                    """
                    INSERT INTO incidents (service_id, title, status, urgency, dedup_key, created_at_ms, updated_at_ms,
                                           current_level, escalate_at_ms, trigger_applied)
                    VALUES ($1, 'replica test', 'triggered', 'high', $2, $3::bigint, $3::bigint, 1, $3::bigint - 10, true)
                    RETURNING id
                    """, [service.serviceID, "k\(index)", now]).int64(0, "id")!
                try connection.query(
                    "INSERT INTO incident_assignments (incident_id, user_id, assigned_at_ms) VALUES ($1, $2, $3)",
                    [id, service.userIDs[0], now])
            }
        }
        let logger = Logger(label: "replicas")
        let replicas = (0..<2).map { _ in TimerManager(pool: db.pool, notifierOutbox: Waker(), batchSize: 7, logger: logger) }
        // Both replicas fire concurrently, repeatedly, until nothing is due at this instant.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for replica in replicas {
                group.addTask {
                    for _ in 0..<60 {
                        let next = try await replica.fireDue(now: now)
                        if next == nil || next! > now { return }
                    }
                }
            }
            try await group.waitForAll()
        }
        // Each incident moved exactly one level: one escalate entry, one level-2 assignment, one notify.
        #expect(try await db.scalar("SELECT count(*) FROM incidents WHERE current_level = 2") == 120)
        #expect(try await db.scalar("SELECT count(*) FROM timeline_entries WHERE type = 'escalate'") == 120)
        #expect(try await db.scalar(
            "SELECT count(*) FROM (SELECT incident_id FROM timeline_entries WHERE type = 'assign' GROUP BY incident_id HAVING count(*) = 1) t") == 120)
        // One notify request per incident (a fired batch queues its requests as one bundle row).
        let notified = try await db.pool.withConnection { connection in
            let rows = try connection.query("SELECT method, body FROM outbox WHERE destination = 'notifier'")
            return try (0..<rows.count).flatMap { row in
                try Outbox.messages(method: rows.string(row, "method")!, body: rows.bytes(row, "body")!)
                    .map { try NotifyRequest(wire: $0.body).incidentID }
            }
        }
        #expect(notified.count == 120)
        #expect(Set(notified).count == 120)
        #expect(try await db.scalar("SELECT count(*) FROM incidents WHERE escalate_at_ms = $1::bigint + 1000", [now]) == 120)
        await db.drop()
    }
}

@Suite struct StaleTimerTests {
    /// A due timer the rules decline (an escalation on an acknowledged incident, which the rules
    /// never leave behind but a hand edit could) is cleared instead of staying due forever.
    @Test func staleDueTimerIsClearedNotSpunOn() async throws {
        let db = try await TestDatabase.create()
        let service = try await db.pool.transaction { connection in
            try Seed.service(
                connection, name: "Stale", routingKey: Seed.newRoutingKey(),
                users: [Seed.User(name: "Alice", email: "alice@example.com", webhookURL: "http://127.0.0.1:9/none")])
        }
        let now = SystemWallClock().nowMs()
        let id = try await db.pool.withConnection { connection in
            try connection.query(
                """
                INSERT INTO incidents (service_id, title, status, urgency, dedup_key, created_at_ms, updated_at_ms, current_level,
                                       escalate_at_ms, trigger_applied)
                VALUES ($1, 'stale', 'acknowledged', 'high', 'k', $2::bigint, $2::bigint, 1, $2::bigint - 5, true)
                RETURNING id
                """, [service.serviceID, now]).int64(0, "id")!
        }
        let manager = TimerManager(pool: db.pool, notifierOutbox: Waker(), logger: Logger(label: "stale"))
        let next = try await manager.fireDue(now: now)
        #expect(next == nil, "nothing is due any more")
        #expect(try await db.scalar("SELECT count(*) FROM incidents WHERE id = $1 AND escalate_at_ms IS NULL AND status = 'acknowledged'", [id]) == 1)
        #expect(try await db.scalar("SELECT count(*) FROM timeline_entries WHERE incident_id = $1", [id]) == 0)
        await db.drop()
    }
}
