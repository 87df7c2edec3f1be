import Foundation
import KlaxonDomain
import KlaxonTestSupport
@testable import NotifierService
import Shared
import Testing

/// Outbound webhooks go in order per (subscription, incident): a delivery waits while an earlier
/// one of its sequence is pending. That test must be a probe of the sequence whatever PostgreSQL
/// believes is pending: with statistics taken while nothing was, the old query read every pending
/// delivery for each candidate, and a receiver down with 5,000 deliveries waiting made each
/// claim take 3.6 s of PostgreSQL's CPU, beside the pages (migration 0030).
@Suite struct WebhookPlanTests {
    @Test func theOrderTestProbesItsSequenceWhateverThePendingStatistics() async throws {
        let database = try await TestDatabase.create()
        try await database.pool.transaction { connection in
            let subscription = try connection.query(
                "INSERT INTO webhook_subscriptions (url, secret, created_at_ms) VALUES ('http://127.0.0.1:9/hook', 's', 0) RETURNING id"
            ).int64(0, "id")!
            // 9,000 delivered (history), then statistics taken while nothing is pending.
            try connection.query(
                """
                INSERT INTO webhook_deliveries (subscription_id, event_id, event_type, incident_id, body, status, next_attempt_at_ms, created_at_ms)
                SELECT $1, 'done-' || g, 'incident.triggered', g / 3, '{}', 'delivered', 0, 0 FROM generate_series(1, 9000) AS g
                """, [subscription])
        }
        try await database.pool.withConnection { try $0.execute("ANALYZE webhook_deliveries") }
        // Then a receiver down: 3,000 waiting, three events for each of 1,000 incidents, and
        // the first of each sequence failing (due later); the rest wait behind it.
        try await database.pool.transaction { connection in
            try connection.query(
                """
                INSERT INTO webhook_deliveries (subscription_id, event_id, event_type, incident_id, body, next_attempt_at_ms, created_at_ms)
                SELECT (SELECT min(id) FROM webhook_subscriptions), 'wait-' || g, 'incident.triggered', 10000 + g / 3, '{}',
                       CASE WHEN g % 3 = 0 THEN 1000000 ELSE 0 END, 0
                FROM generate_series(0, 2999) AS g
                """)
        }
        let plans = try await database.pool.transaction { connection -> [String] in
            let claim = try connection.plan(of: WebhookSender.claimSQL, arguments: "100, 1000, 50")
            let next = try connection.plan(of: WebhookSender.nextDueSQL)
            try connection.execute(PGConnection.genericPlans)
            return [claim, next, try connection.plan(of: WebhookSender.claimSQL, arguments: "100, 1000, 50")]
        }
        for plan in plans {
            #expect(plan.contains("Index Scan using webhook_deliveries_sequence on webhook_deliveries e"), "\(plan)")
            #expect(plan.contains("Index Cond: ((subscription_id = c.subscription_id) AND (COALESCE(incident_id, '0'::bigint) = COALESCE(c.incident_id, '0'::bigint)) AND (id < c.id))"), "\(plan)")
        }
        // What the queries say: nothing is claimable before the heads' retry, which is next.
        let (claimed, next) = try await database.pool.transaction { connection -> (Int, Int64?) in
            (try connection.query(WebhookSender.claimSQL, [Int64(100), Int64(1_000), Int64(50)]).count,
             try connection.query(WebhookSender.nextDueSQL).int64(0, "next"))
        }
        #expect(claimed == 0)
        #expect(next == 1_000_000)
        await database.drop()
    }
}
