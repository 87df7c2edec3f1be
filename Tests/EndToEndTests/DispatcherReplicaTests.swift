import Foundation
import KlaxonDomain
import KlaxonTestSupport
import Logging
import NotifierService
import Shared
import Testing

@Suite struct DispatcherReplicaTests {
    /// Two dispatchers on one database, 60 due notifications: every one is sent exactly once.
    @Test func twoReplicasSendEachNotificationOnce() async throws {
        let db = try await TestDatabase.create()
        let sink = try await HTTPSink.start()
        let service = try await db.pool.transaction { connection in
            try Seed.service(
                connection, name: "Replicas", routingKey: Seed.newRoutingKey(),
                users: [Seed.User(name: "Alice", email: "alice@example.com", webhookURL: "\(sink.url)/hooks")])
        }
        let now = SystemWallClock().nowMs()
        let snapshot = IncidentSnapshot(
            incidentID: 0, number: 1, title: "t", status: .triggered, urgency: .high, serviceID: UInt64(service.serviceID),
            serviceName: "Replicas", severity: "", dedupKey: "k", createdAtMs: now, atMs: now).wireBytes()
        try await db.pool.transaction { connection in
            let incident = try connection.query(
                """
                INSERT INTO incidents (service_id, title, status, urgency, dedup_key, created_at_ms, updated_at_ms)
                VALUES ($1, 't', 'triggered', 'high', 'k', $2::bigint, $2::bigint) RETURNING id
                """, [service.serviceID, now]).int64(0, "id")!
            let rule = try connection.query("SELECT id, contact_method_id FROM notification_rules WHERE user_id = $1", [service.userIDs[0]])
            for index in 0..<60 {
                try connection.query(
                    """
                    INSERT INTO notifications (id, request_id, rule_id, incident_id, user_id, contact_method_id, reason, minute_zero,
                                               snapshot, requested_at_ms, due_at_ms)
                    VALUES ($1::uuid, $2, $3, $4, $5, $6, 'assigned', true, $7, $8::bigint, $8::bigint)
                    """,
                    [UUID().uuidString.lowercased(), "r\(index)", rule.int64(0, "id")!, incident, service.userIDs[0],
                     rule.int64(0, "contact_method_id")!, snapshot, now])
            }
        }
        let logger = Logger(label: "replicas")
        let replicas = (0..<2).map { _ in
            DeliveryEngine(pool: db.pool, channels: ["webhook": WebhookChannel(timeout: .seconds(5))], sendTimeoutMs: 5_000, logger: logger)
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for replica in replicas {
                group.addTask {
                    for _ in 0..<20 {
                        if let next = try await replica.dispatchDue(now: now), next <= now { continue }
                        return
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(sink.requests.count == 60)
        #expect(Set(sink.requests.compactMap { $0.header("Idempotency-Key") }).count == 60)
        #expect(try await db.scalar("SELECT count(*) FROM notifications WHERE status = 'sent' AND attempts = 1") == 60)
        await sink.shutdown()
        await db.drop()
    }
}
