import Foundation
import KlaxonDomain
import KlaxonTestSupport
import Shared
import Testing

/// Surge detection end to end (issue 14, point 2): a burst of 300 incidents across 3 services
/// within 10 s opens exactly one major incident within 5 s of the threshold being crossed, links
/// the surge's incidents to it (later ones join), over real TCP and PostgreSQL.
@Suite struct SurgeEndToEndTests {
    @Test func aBurstAcrossThreeServicesOpensExactlyOneMajorIncident() async throws {
        let pipeline = try await Pipeline()
        var services: [Seed.Service] = []
        for name in ["Checkout", "Search", "Payments"] {
            let url = "\(pipeline.sink.url)/hooks"
            services.append(try await pipeline.db.pool.transaction { connection in
                try Seed.service(
                    connection, name: name, routingKey: Seed.newRoutingKey(),
                    // No notification rules: this test is about detection, and 300 pages would only
                    // load the machine the other tests share.
                    users: [Seed.User(name: "\(name) on-call", email: "\(name.lowercased())@example.com", webhookURL: url, ruleDelaysSeconds: [])])
            })
        }
        // A burst, not a rate-limit test: no per-key limit. Surge settings are the defaults
        // (5 min window, 50 incidents, 10× the trailing hour, 3 services, 10 min quiet period).
        try await pipeline.db.pool.withConnection { try $0.query("UPDATE services SET events_per_minute = 0") }
        let ingest = pipeline.client(.ingest, token: nil)
        let started = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            // Four monitors per service, each sending 25 triggers in batches of 5 (SendEvents).
            for (index, service) in services.enumerated() {
                for monitor in 0..<4 {
                    group.addTask {
                        for batch in stride(from: monitor * 25, to: monitor * 25 + 25, by: 5) {
                            let events = (batch..<batch + 5).map {
                                Pipeline.trigger(service.routingKey, dedupKey: "burst-\(index)-\($0)", summary: "Region eu-west down (\($0))")
                            }
                            let reply: SendEventsReply = try await ingest.call(Ingest.SendEvents, SendEventsRequest(events: events), timeout: .seconds(30))
                            #expect(reply.items.allSatisfy { $0.result?.outcome == .created })
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        let burst = ContinuousClock.now - started
        #expect(burst < .seconds(10), "the burst took \(burst)")

        // The threshold was crossed at the first incident after which the counts were above it
        // (after a quiet hour, 10 across 3 services: 10 × one expected per window).
        let db = pipeline.db
        let created = try await db.pool.withConnection { connection in
            let rows = try connection.query("SELECT service_id, created_at_ms FROM incidents WHERE NOT major ORDER BY created_at_ms, id")
            return (0..<rows.count).map { (rows.int64($0, "service_id")!, rows.int64($0, "created_at_ms")!) }
        }
        var seen = Set<Int64>()
        var crossedAt: Millis?
        var crossing = 0
        for (index, (serviceID, at)) in created.enumerated() {
            seen.insert(serviceID)
            if SurgeDetector.isAbove(SurgeCounts(inWindow: index + 1, servicesInWindow: seen.count, trailingHour: 0), SurgeSettings()) {
                crossedAt = at
                crossing = index + 1
                break
            }
        }
        let crossed = try #require(crossedAt)
        let opened = await eventually(timeout: .seconds(10)) {
            (try? await db.scalar("SELECT count(*) FROM incidents WHERE major")) == 1
        }
        #expect(opened, "no major incident within 10 s of the burst")
        let major = try await db.pool.withConnection { connection in
            let rows = try connection.query("SELECT id, title, priority, created_at_ms FROM incidents WHERE major")
            return (id: rows.int64(0, "id")!, title: rows.string(0, "title")!, priority: rows.string(0, "priority"), at: rows.int64(0, "created_at_ms")!)
        }
        #expect(major.at - crossed <= 5_000, "opened \(major.at - crossed) ms after the threshold was crossed")
        #expect(major.at >= crossed)
        #expect(major.title.hasPrefix("Surge: ") && major.title.hasSuffix(" across 3 services in 5 min"), "\(major.title)")
        #expect(major.priority == "P1")
        print("SurgeEndToEndTests: burst of 300 in \(burst); major incident \(major.at - crossed) ms after the threshold was crossed (at incident \(crossing), across \(seen.count) services): \(major.title)")

        // Every incident of the burst joins it (those created after the opening on later steps).
        let allLinked = await eventually(timeout: .seconds(10)) {
            (try? await db.scalar("SELECT count(*) FROM incidents WHERE major_incident_id = \(major.id)")) == 300
        }
        #expect(allLinked, "not every incident of the surge was linked to the major incident")
        // One more trigger during the surge: the evaluation after it links it, and opens nothing new.
        let late: EventResult = try await ingest.call(Ingest.SendEvent, Pipeline.trigger(services[0].routingKey, dedupKey: "burst-late"))
        #expect(late.outcome == .created)
        let lateLinked = await eventually(timeout: .seconds(10)) {
            (try? await db.scalar("SELECT count(*) FROM incidents WHERE major_incident_id = \(major.id)")) == 301
        }
        #expect(lateLinked, "an incident created during the surge was not linked")
        #expect(try await db.scalar("SELECT count(*) FROM incidents WHERE major") == 1, "one surge, one major incident")
        #expect(try await db.scalar("SELECT count(*) FROM timeline_entries WHERE incident_id = \(major.id) AND type = 'major_declared'") == 1)
        #expect(try await db.scalar("SELECT count(*) FROM timeline_entries WHERE type = 'linked' AND incident_id <> \(major.id)") == 301)
        // Klaxon's own service is not the operators': not listed.
        let listed: ServiceListMessage = try await pipeline.client(.assignment).call(Admin.ListServices, Empty())
        #expect(listed.services.map(\.name).sorted() == ["Checkout", "Payments", "Search"])
        await ingest.close()
        await pipeline.shutdown()
    }
}
