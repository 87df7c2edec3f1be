import Foundation
import KlaxonDomain
import KlaxonTestSupport
import Logging
import NIOConcurrencyHelpers
import NotifierService
import Shared
import Testing

/// A channel that never returns: the process sending through it is as good as killed mid-send.
final class StuckChannel: DeliveryChannel, @unchecked Sendable {
    let entered = Latch<Void>()
    private let held = NIOLockedValueBox<[CheckedContinuation<Void, Never>]>([])

    func deliver(to address: String, idempotencyKey: String, message: WebhookMessage) async throws {
        entered.resolve(.success(()))
        await withCheckedContinuation { continuation in held.withLockedValue { $0.append(continuation) } }
    }

    func send(_ notice: Notice, to address: String) async throws {}
}

@Suite struct NotifierLeaseTests {
    /// A Notifier killed while sending: its replacement sends the claimed page as soon as the
    /// lease ends, which is the 10 s send timeout plus the 2 s margin after the claim (not a fixed
    /// minute). On a clock the test moves: nothing at claim + 11.999 s, the page at claim + 12 s.
    @Test func aKilledNotifiersPagesGoOutSoonAfterItsReplacementStarts() async throws {
        let clock = ManualClock()
        let pipeline = try await Pipeline(start: [.ingest, .assignment], clock: clock)
        let service = try await pipeline.seed(users: ["Alice"])
        #expect(pipeline.config.notifyTimeoutSeconds == 10)
        let stuck = StuckChannel()
        // A crash, simulated by cancelling it: its logger is silenced (its HTTP listener would
        // report the cancellation as an error, which is the point here, not news).
        var doomedLogger = pipeline.logger
        doomedLogger.logLevel = .critical
        let doomed = NotifierService(
            config: pipeline.config, pool: pipeline.db.pool, clock: clock, logger: doomedLogger,
            channels: ["webhook": stuck])
        let doomedTask = Task { try await doomed.run() }
        let ingest = pipeline.client(.ingest)
        let claimedAt = clock.nowMs()
        let created: EventResult = try await ingest.call(Ingest.SendEvent, Pipeline.trigger(service.routingKey))
        try await stuck.entered.wait()  // claimed, and sending
        doomedTask.cancel()  // its listener closes; its send never comes back, nor does its record

        // Its listener closes as it is cancelled: start the replacement on the same port once free.
        let replaced = await eventually(timeout: .seconds(10)) { (try? await pipeline.start(.notifier)) != nil }
        try #require(replaced)
        await pipeline.move(to: claimedAt + 12_000 - 1)
        #expect(pipeline.sink.requests.isEmpty, "still leased by the killed Notifier")
        clock.set(claimedAt + 12_000)
        let pages = await pipeline.sink.waitForRequests(1, timeout: .seconds(10))
        #expect(pages.count == 1, "the claimed page went out when the lease ended")
        #expect(pages.first?.webhook?.incident.id == created.incidentID)
        #expect(pages.first?.webhook?.sentAt == WebhookMessage.iso8601(claimedAt + 12_000))
        await ingest.close()
        await pipeline.shutdown()
    }

    /// The webhook's sent_at, the timeline's notify_sent instant and finished_at are when the
    /// attempt happened, not when the batch was claimed: here the claim says T and the clock
    /// says T + 5 s by the time the page goes out.
    @Test func instantsAreTheAttemptsNotTheClaims() async throws {
        let pipeline = try await Pipeline(start: [.ingest, .assignment, .notifier])
        // A 10-minute rule only: nothing is sent until the dispatcher below is told it is due.
        let service = try await pipeline.seed(users: ["Alice"], ruleDelays: [600])
        let ingest = pipeline.client(.ingest)
        let created: EventResult = try await ingest.call(Ingest.SendEvent, Pipeline.trigger(service.routingKey))
        let scheduled = try await eventually(timeout: .seconds(10)) {
            try await pipeline.db.scalar("SELECT count(*) FROM notifications WHERE incident_id = $1", [Int64(created.incidentID)]) == 1
        }
        try #require(scheduled)
        let due = try #require(try await pipeline.db.scalar("SELECT due_at_ms FROM notifications WHERE incident_id = $1", [Int64(created.incidentID)]))
        let clock = ManualClock(due + 5_000)
        let dispatcher = DeliveryEngine(
            pool: pipeline.db.pool, channels: ["webhook": WebhookChannel(timeout: .seconds(5))], clock: clock, logger: pipeline.logger)
        _ = try await dispatcher.dispatchDue(now: due)  // claimed at `due`
        let page = try #require(await pipeline.sink.waitForRequests(1, timeout: .seconds(5)).first?.webhook)
        #expect(page.sentAt == WebhookMessage.iso8601(due + 5_000))
        #expect(try await pipeline.db.scalar(
            "SELECT at_ms FROM timeline_entries WHERE incident_id = $1 AND type = 'notify_sent'", [Int64(created.incidentID)]) == due + 5_000)
        #expect(try await pipeline.db.scalar(
            "SELECT finished_at_ms FROM notifications WHERE incident_id = $1", [Int64(created.incidentID)]) == due + 5_000)
        await ingest.close()
        await pipeline.shutdown()
    }
}
