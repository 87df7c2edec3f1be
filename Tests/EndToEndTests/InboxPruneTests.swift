import KlaxonDomain
import KlaxonTestSupport
import Logging
import Shared
import Testing

/// The inbox is pruned after its retention (issue 13, point 6): it no longer grows forever.
@Suite struct InboxPruneTests {
    @Test func oldMessageIDsAreForgottenHourlyRecentOnesKept() async throws {
        let db = try await TestDatabase.create()
        let hour: Millis = 3_600_000
        let retention = 7 * 24 * hour
        let now: Millis = 1_800_000_000_000
        try await db.pool.transaction { connection in
            // 25,000 messages received 8 days ago (more than one delete batch), 3 received 6 days ago.
            try connection.query(
                "INSERT INTO inbox (consumer, message_id, received_at_ms) SELECT 'assignment', 'old-' || g, $1 FROM generate_series(1, 25000) g",
                [now - 8 * 24 * hour])
            for id in ["a", "b", "c"] {
                _ = try Inbox.claim(connection, consumer: "notifier", messageID: id, now: now - 6 * 24 * hour)
            }
        }
        let pruner = InboxPruner(pool: db.pool, retentionMs: retention, logger: Logger(label: "prune"))
        let next = try await pruner.step(now: now)
        #expect(next == now + hour, "its loop wakes it again in an hour")
        #expect(try await db.scalar("SELECT count(*) FROM inbox") == 3)
        // Still remembered: a redelivery of "a" within the retention has no second effect.
        let again = try await db.pool.transaction { try Inbox.claim($0, consumer: "notifier", messageID: "a", now: now) }
        #expect(again == false)
        // The next run (an hour later) prunes what has aged past the retention since.
        try await db.pool.transaction { connection in
            try connection.query("INSERT INTO inbox (consumer, message_id, received_at_ms) VALUES ('assignment', 'late', $1)", [now - 9 * 24 * hour])
        }
        #expect(try await db.scalar("SELECT count(*) FROM inbox") == 4)
        _ = try await pruner.step(now: next!)
        #expect(try await db.scalar("SELECT count(*) FROM inbox") == 3)
        await db.drop()
    }
}
