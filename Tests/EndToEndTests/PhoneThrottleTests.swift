import Foundation
import IncidentEngine
import KlaxonDomain
import KlaxonTestSupport
import Shared
import Testing

/// No flood in a surge (issue 25, point 5), on a clock the test moves: 40 incidents for one
/// person within a minute reach their phone as at most 5 SMS (one a minute, 5 per 15 minutes),
/// every incident named in one of them; each incident's timeline says which message carried its
/// page. Webhooks are not throttled.
@Suite struct PhoneThrottleTests {
    @Test func fortyIncidentsInAMinuteAreAFewBundledTexts() async throws {
        let clock = ManualClock()
        let start = clock.nowMs()
        let pipeline = try await Pipeline(clock: clock) { config, sinkURL in
            config.notifyProviderURL = "\(sinkURL)/provider"
        }
        let service = try await pipeline.seed(users: ["Alice", "Bob"])
        // Alice is paged by SMS (through the provider webhook); Bob by webhook, unthrottled.
        try await pipeline.db.pool.withConnection { connection in
            try connection.query("UPDATE contact_methods SET type = 'sms', address = '+49 170 1111111', verified_at_ms = 0 WHERE user_id = $1", [service.userIDs[0]])
            try connection.query("UPDATE services SET events_per_minute = 0")
        }
        let ingest = pipeline.client(.ingest)
        var incidents: [UInt64] = []
        for index in 0..<40 {
            let created: EventResult = try await ingest.call(
                Ingest.SendEvent, Pipeline.trigger(service.routingKey, dedupKey: "surge-\(index)", summary: "Surge incident \(index)"))
            incidents.append(created.incidentID)
            await pipeline.move(to: start + Millis(index) * 1_500)  // 40 incidents within 60 s
        }
        // Let the clock run until every incident's page to Alice is sent (alone or in a bundle).
        func unsent() async throws -> Int64 {
            try await pipeline.db.scalar(
                "SELECT count(*) FROM notifications WHERE user_id = $1 AND status <> 'sent'", [service.userIDs[0]]) ?? -1
        }
        #expect(try await pipeline.runClock(until: { try await unsent() == 0 }, maxMoves: 200), "pages to Alice were left unsent")
        let texts = pipeline.sink.requests.filter { $0.uri == "/provider" }
        let bodies = texts.compactMap { request -> String? in
            (try? JSONSerialization.jsonObject(with: Data(request.body)) as? [String: Any])?["text"] as? String
        }
        print("PhoneThrottleTests: \(bodies.count) SMS for 40 incidents, after \((clock.nowMs() - start) / 1000) s: \(bodies.map { String($0.prefix(120)) })")
        #expect(bodies.count >= 1 && bodies.count <= 5, "\(bodies.count) SMS for 40 incidents")
        #expect(pipeline.sink.requests.filter { $0.uri == "/hooks" }.count == 40, "Bob's webhooks must not be throttled")
        // Every incident is named: as the page's own incident, or in the bundle's count.
        let ids = incidents.map(Int64.init)
        let numbers = try await pipeline.db.pool.withConnection { connection in
            let rows = try connection.query("SELECT number FROM incidents WHERE id = ANY($1::bigint[]) ORDER BY number", [PGArray(ids)])
            return (0..<rows.count).compactMap { rows.int64($0, "number") }
        }
        let carriers = bodies.compactMap { body in numbers.first { body.contains("#\($0) Surge incident") } }
        let bundled = bodies.compactMap { body -> Int? in
            guard let range = body.range(of: "And ") else { return 0 }
            return Int(body[range.upperBound...].prefix { $0.isNumber })
        }
        #expect(carriers.count == bodies.count, "a text names no incident: \(bodies)")
        #expect(carriers.count + bundled.reduce(0, +) == 40, "the texts name \(carriers.count) + \(bundled) incidents, not 40")
        // Each incident's timeline says how its page went: sent alone, or in which message.
        let perIncident = try await pipeline.db.pool.withConnection { connection in
            let rows = try connection.query(
                """
                SELECT t.incident_id, count(*) FILTER (WHERE t.type = 'notify_sent') AS sent,
                       count(*) FILTER (WHERE t.type = 'notify_sent' AND t.details ? 'bundled_in') AS bundled
                FROM timeline_entries t JOIN notifications n ON n.id::text = t.details->>'notification'
                WHERE n.user_id = $1 GROUP BY t.incident_id
                """, [service.userIDs[0]])
            return (0..<rows.count).map { (rows.int64($0, "sent") ?? 0, rows.int64($0, "bundled") ?? 0) }
        }
        #expect(perIncident.count == 40 && perIncident.allSatisfy { $0.0 == 1 }, "every incident has exactly one notify_sent for Alice: \(perIncident)")
        #expect(perIncident.filter { $0.1 == 1 }.count == 40 - bodies.count, "the bundled ones say which message carried them")
        // At most one SMS a minute, and 5 per 15 minutes (from the recorded sends).
        let sends = try await pipeline.db.pool.withConnection { connection in
            let rows = try connection.query("SELECT at_ms FROM contact_sends ORDER BY at_ms")
            return (0..<rows.count).compactMap { rows.int64($0, "at_ms") }
        }
        for (earlier, later) in zip(sends, sends.dropFirst()) { #expect(later - earlier >= 60_000, "two SMS within a minute: \(sends)") }

        // The provider reports the bundle undelivered (what Twilio's status callback does): the
        // bundle's page and every page that rode in it go again, and reach the phone again.
        let bundle = try await pipeline.db.pool.withConnection { connection in
            try connection.query("SELECT notification_id::text AS id FROM contact_sends ORDER BY at_ms DESC LIMIT 1").string(0, "id")
        }
        let carrier = try #require(bundle)
        let now = clock.nowMs()
        let outcome = try await pipeline.db.pool.transaction { connection in
            try PhoneStore.providerReport(
                connection, notificationID: carrier, status: "undelivered", providerID: "SM-test", errorCode: "30003", now: now,
                window: DeliveryWindow(lengthMs: 900_000))
        }
        // The last text carried as many pages as it named (the first may have carried one too, if
        // the second incident's page was due when it went).
        let riders = try #require(bundled.last)
        #expect(outcome.hasPrefix("retry at") && outcome.hasSuffix("with \(riders) bundled page(s)"), "\(outcome)")
        #expect(try await unsent() == Int64(riders + 1))
        // The next message may go a minute after the last: straight there (the loops poll every 2 s).
        await pipeline.move(to: sends.last! + 60_000)
        let resent = try await pipeline.runClock(until: { try await unsent() == 0 }, maxMoves: 200)
        let left = try await pipeline.db.pool.withConnection { connection in
            let rows = try connection.query(
                "SELECT status, due_at_ms, lease_until_ms, count(*) AS n FROM notifications WHERE user_id = $1 AND status <> 'sent' GROUP BY 1, 2, 3",
                [service.userIDs[0]])
            return (0..<rows.count).map { "\(rows.string($0, "status") ?? "") due \(rows.int64($0, "due_at_ms") ?? 0) lease \(rows.int64($0, "lease_until_ms") ?? 0) ×\(rows.int64($0, "n") ?? 0)" }
        }
        #expect(resent, "the undelivered bundle's pages were not sent again; clock \(clock.nowMs()): \(left)")
        let again = pipeline.sink.requests.filter { $0.uri == "/provider" }.count
        let all = pipeline.sink.requests.filter { $0.uri == "/provider" }.compactMap { request -> String? in
            (try? JSONSerialization.jsonObject(with: Data(request.body)) as? [String: Any])?["text"] as? String
        }.map { String($0.prefix(100)) }
        #expect(again == bodies.count + 1, "the bundle went again as one message: \(again - bodies.count) more: \(all)")
        await ingest.close()
        await pipeline.shutdown()
    }
}
