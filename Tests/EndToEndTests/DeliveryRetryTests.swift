import KlaxonDomain
import KlaxonTestSupport
import NotifierService
import Shared
import Testing

@Suite struct DeliveryRetryTests {
    /// A sink answering 500 twice then 200 gets exactly three attempts and one success, each
    /// attempt in the timeline.
    @Test func twoFailuresThenSuccess() async throws {
        let pipeline = try await Pipeline()
        let service = try await pipeline.seed(users: ["Alice"])
        pipeline.sink.respond([500, 500])
        let ingest = pipeline.client(.ingest)
        let created: EventResult = try await ingest.call("klaxon.ingest.v1.Ingest/SendEvent", Pipeline.trigger(service.routingKey))
        let attempts = await pipeline.sink.waitForRequests(3, timeout: .seconds(15))
        #expect(attempts.count == 3)
        #expect(Set(attempts.compactMap { $0.header("Idempotency-Key") }).count == 1, "one idempotency key for every attempt")
        let sent = try await eventually(timeout: .seconds(5)) {
            try await pipeline.db.scalar("SELECT count(*) FROM notifications WHERE status = 'sent' AND attempts = 3") == 1
        }
        #expect(sent)
        try await Task.sleep(for: .milliseconds(1_000))
        #expect(pipeline.sink.requests.count == 3)
        let incident = Int64(created.incidentID)
        #expect(try await pipeline.db.scalar("SELECT count(*) FROM timeline_entries WHERE incident_id = $1 AND type = 'notify_retry'", [incident]) == 2)
        #expect(try await pipeline.db.scalar(
            "SELECT count(*) FROM timeline_entries WHERE incident_id = $1 AND type = 'notify_sent' AND details->>'attempts' = '3'", [incident]) == 1)
        #expect(try await pipeline.db.scalar(
            "SELECT count(*) FROM timeline_entries WHERE incident_id = $1 AND details->>'address' = $2", [incident, "http://127.0.0.1:\(pipeline.sink.port)/…"]) == 3)
        await ingest.close()
        await pipeline.shutdown()
    }

    @Test func threeFailuresFailTheNotification() async throws {
        let pipeline = try await Pipeline()
        let service = try await pipeline.seed(users: ["Alice"])
        pipeline.sink.respond([500, 503, 502, 500])
        let ingest = pipeline.client(.ingest)
        let created: EventResult = try await ingest.call("klaxon.ingest.v1.Ingest/SendEvent", Pipeline.trigger(service.routingKey))
        let failed = try await eventually(timeout: .seconds(15)) {
            try await pipeline.db.scalar(
                "SELECT count(*) FROM timeline_entries WHERE incident_id = $1 AND type = 'notify_failed'", [Int64(created.incidentID)]) == 1
        }
        #expect(failed)
        #expect(pipeline.sink.requests.count == 3, "default: 3 attempts")
        #expect(try await pipeline.db.scalar("SELECT count(*) FROM notifications WHERE status = 'failed'") == 1)
        await ingest.close()
        await pipeline.shutdown()
    }

    @Test func addressesAreMasked() {
        #expect(AddressMask.mask("alice@example.com", channel: "email") == "a***@example.com")
        #expect(AddressMask.mask("+49 170 1234567", channel: "sms") == "+********4567")  // 12 digits, last 4 shown
        #expect(AddressMask.mask("https://hooks.slack.com/services/T000/B000/XXXX", channel: "slack") == "https://hooks.slack.com/…")
        #expect(AddressMask.mask("http://127.0.0.1:8499/pages?token=s3cret", channel: "webhook") == "http://127.0.0.1:8499/…")
    }
}
