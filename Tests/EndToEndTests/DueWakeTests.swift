import AssignmentService
import Foundation
import KlaxonDomain
import KlaxonTestSupport
import NIOCore
import NIOPosix
import NotifierService
import Shared
import Testing

/// When the dispatcher wakes beside a full address (issue 29). It measures lateness against a
/// 1 s poll, so scripts/test runs it alone: among the whole suite on two cores, one claim can take
/// longer than the half second it tells apart.
@Suite struct DueWakeTests {
    /// Beside an address whose sending slots are all taken (an endpoint that never answers), a
    /// page for someone else that comes due later (a 2 s rule) goes out when it is due: the
    /// dispatcher asks what comes due past the full address, where it used to sleep until its
    /// 1 s poll. Two groups half a second apart: a 1 s poll makes one of them ≥ 0.5 s late.
    @Test func aFullAddressDoesNotDelayOthersDuePagesToThePoll() async throws {
        let blackhole = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { $0.eventLoop.makeSucceededVoidFuture() }
            .bind(host: "127.0.0.1", port: 0).get()
        let pipeline = try await Pipeline()
        let deadURL = "http://127.0.0.1:\(blackhole.localAddress!.port!)/never"
        let service = try await pipeline.db.pool.transaction { [sink = pipeline.sink] connection in
            try Seed.service(connection, name: "Full", routingKey: Seed.newRoutingKey(), users: [
                Seed.User(name: "Cat", email: "cat@example.com", webhookURL: deadURL),
                Seed.User(name: "Ben", email: "ben@example.com", webhookURL: "\(sink.url)/ben", ruleDelaysSeconds: [2]),
            ])
        }
        try await pipeline.db.pool.withConnection { connection in
            try connection.query("UPDATE services SET events_per_minute = 0 WHERE id = $1", [service.serviceID])
        }
        let ingest = pipeline.client(.ingest)
        // As many incidents as an address has slots fill Cat's; Ben's pages come due 2 s after each group.
        let slots = DeliveryEngine.defaultMaxPerDestination
        for group in 0..<2 {
            let events = (0..<slots / 2).map { Pipeline.trigger(service.routingKey, dedupKey: "full-\(group)-\($0)") }
            let reply: SendEventsReply = try await ingest.call(Ingest.SendEvents, SendEventsRequest(events: events), timeout: .seconds(30))
            #expect(reply.items.count == slots / 2)
            if group == 0 { try await Task.sleep(for: .milliseconds(500)) }
        }
        let sent = try await eventually(timeout: .seconds(20)) {
            try await pipeline.db.scalar(
                "SELECT count(*) FROM notifications n JOIN users u ON u.id = n.user_id WHERE u.email = 'ben@example.com' AND n.status = 'sent'") == Int64(slots)
        }
        #expect(sent, "Ben's \(slots) delayed pages were not all sent")
        let leased = try await pipeline.db.scalar(
            """
            SELECT count(*) FROM notifications n JOIN contact_methods c ON c.id = n.contact_method_id
            WHERE c.address = $1 AND n.status = 'pending' AND n.lease_until_ms > 0
            """, [deadURL]) ?? 0
        #expect(leased == Int64(slots), "Cat's address was to be full (\(slots) in flight) while Ben's pages came due: \(leased)")
        // How late each group's first attempt was after its due instant (both on the services'
        // clock): when the dispatcher woke for it, whatever sending the others took on a busy machine.
        let late = try await pipeline.db.scalar(
            """
            SELECT max(first) FROM (
                SELECT min(n.finished_at_ms - n.due_at_ms) AS first FROM notifications n
                JOIN users u ON u.id = n.user_id JOIN incidents i ON i.id = n.incident_id
                WHERE u.email = 'ben@example.com' AND n.status = 'sent'
                GROUP BY split_part(i.dedup_key, '-', 2)) AS groups
            """) ?? -1
        #expect(late >= 0 && late < 450, "a group of Ben's pages began going out \(late) ms after it was due")
        await ingest.close()
        await pipeline.shutdown()
        try? await blackhole.close()
    }
}
