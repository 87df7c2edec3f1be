import AssignmentService
import Foundation
import KlaxonDomain
import KlaxonTestSupport
import Logging
import Shared
import Testing

/// A trigger pokes Assignment's timer loop only when it set a timer due before the loop's own
/// poll (`TimerManager.pollMs`): a new incident's escalation minutes away waits for the poll.
@Suite struct TimerPokeTests {
    @Test func onlyATimerDueBeforeThePollPokesTheTimerLoop() async throws {
        let db = try await TestDatabase.create()
        let users = ["A", "B"].map { Seed.User(name: $0, email: "\($0.lowercased())@example.com", webhookURL: "http://127.0.0.1:9/none") }
        let (slow, fast) = try await db.pool.transaction { connection in
            (try Seed.service(connection, name: "Slow", routingKey: Seed.newRoutingKey(), users: users, levels: [[0], [1]],
                              escalationDelaySeconds: 300),
             try Seed.service(connection, name: "Fast", routingKey: Seed.newRoutingKey(), users: users, levels: [[0], [1]],
                              escalationDelaySeconds: 1))
        }
        let clock = SystemWallClock()
        func incident(_ service: Seed.Service, _ key: String) async throws -> Int64 {
            try await db.pool.withConnection { connection in
                try connection.query(
                    """
                    INSERT INTO incidents (service_id, title, status, urgency, dedup_key, created_at_ms, updated_at_ms)
                    VALUES ($1, 'poke', 'triggered', 'high', $2, $3::bigint, $3::bigint) RETURNING id
                    """, [service.serviceID, key, clock.nowMs()]).int64(0, "id")!
            }
        }
        let timers = Waker()
        let manager = AssignmentManager(pool: db.pool, clock: clock, notifierOutbox: Waker(), timers: timers, logger: Logger(label: "poke"))
        func trigger(_ id: Int64) async throws {
            _ = try await manager.incidentsTriggered(IncidentTriggeredBatch(requests: [
                IncidentTriggeredRequest(messageID: "m\(id)", incidentID: UInt64(id), triggeredAtMs: clock.nowMs())]))
        }

        let minutesAway = try await incident(slow, "slow")
        let before = clock.nowMs()
        try await trigger(minutesAway)
        let escalation = try await db.scalar("SELECT escalate_at_ms FROM incidents WHERE id = $1", [minutesAway])
        #expect(escalation.map { $0 - before >= 299_000 } == true, "premise: level 2 is 300 s away (\(String(describing: escalation)))")
        #expect(!timers.isPoked, "a timer 300 s away waits for the loop's poll")

        let secondAway = try await incident(fast, "fast")
        try await trigger(secondAway)
        #expect(try await db.scalar("SELECT escalate_at_ms FROM incidents WHERE id = $1", [secondAway]) != nil)
        #expect(timers.isPoked, "a timer due within the poll wakes the loop now")
        await db.drop()
    }
}
