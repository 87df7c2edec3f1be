import Foundation
import KlaxonDomain
import KlaxonTestSupport
import NotifierService
import Shared
import Testing

/// Slack-compatible webhooks and the sms/phone/push provider webhook, against a real local HTTP server.
@Suite struct ChannelTests {
    @Test func slackAndProviderChannelsDeliverWhatAPersonReads() async throws {
        let pipeline = try await Pipeline { config, sinkURL in
            config.notifyProviderURL = "\(sinkURL)/provider"
            config.notifyProviderToken = "provider-secret"
            config.incidentURLTemplate = "https://klaxon.example/incidents/{id}"
        }
        let service = try await pipeline.seed(users: ["Alice"])
        let alice = service.userIDs[0]
        try await pipeline.db.pool.transaction { connection in
            try connection.query("DELETE FROM notification_rules WHERE user_id = $1", [alice])
            for (type, address) in [("slack", "\(pipeline.sink.url)/slack/T000/B000/secret"), ("sms", "+49 170 1234567"), ("push", "device-token-1")] {
                let method = try connection.query(
                    "INSERT INTO contact_methods (user_id, type, address, verified_at_ms) VALUES ($1, $2, $3, 0) RETURNING id", [alice, type, address]
                ).int64(0, "id")!
                try connection.query(
                    "INSERT INTO notification_rules (user_id, contact_method_id, start_delay_seconds, urgency) VALUES ($1, $2, 0, 'high')",
                    [alice, method])
            }
        }
        let ingest = pipeline.client(.ingest)
        let created: EventResult = try await ingest.call(Ingest.SendEvent, Pipeline.trigger(service.routingKey))
        let requests = await pipeline.sink.waitForRequests(3, timeout: .seconds(10))
        #expect(requests.count == 3)
        let number = try #require(try await pipeline.db.scalar("SELECT number FROM incidents WHERE id = $1", [Int64(created.incidentID)]))

        let slack = try #require(requests.first { $0.uri.hasPrefix("/slack/") })
        let slackText = try #require((try JSONSerialization.jsonObject(with: Data(slack.body)) as? [String: Any])?["text"] as? String)
        #expect(slackText == "[HIGH] #\(number) Checkout error rate 37% — service Checkout, status triggered "
            + "<https://klaxon.example/incidents/\(created.incidentID)|Open incident #\(number)>")
        #expect(slack.header("Idempotency-Key")?.isEmpty == false)

        #expect(requests.filter { $0.uri == "/provider" }.allSatisfy { $0.header("Authorization") == "Bearer provider-secret" })
        let provider = requests.filter { $0.uri == "/provider" }.compactMap { try? JSONSerialization.jsonObject(with: Data($0.body)) as? [String: Any] }
        #expect(Set(provider.compactMap { $0["channel"] as? String }) == ["sms", "push"])
        let sms = try #require(provider.first { $0["channel"] as? String == "sms" })
        #expect(sms["to"] as? String == "+49 170 1234567")
        #expect(sms["text"] as? String == "[HIGH] #\(number) Checkout error rate 37% — service Checkout, status triggered https://klaxon.example/incidents/\(created.incidentID)")
        // The timeline shows the addresses masked (recorded right after each delivery returns).
        let masked = try await eventually(timeout: .seconds(5)) {
            try await pipeline.db.scalar(
                "SELECT count(*) FROM timeline_entries WHERE type = 'notify_sent' AND details->>'address' IN ('+********4567', $1)",
                ["http://127.0.0.1:\(pipeline.sink.port)/…"]) == 2
        }
        #expect(masked)
        await ingest.close()
        await pipeline.shutdown()
    }

    @Test func missingProviderFailsClearly() async throws {
        let pipeline = try await Pipeline()
        let service = try await pipeline.seed(users: ["Alice"])
        try await pipeline.db.pool.transaction { connection in
            let method = try connection.query(
                "INSERT INTO contact_methods (user_id, type, address, verified_at_ms) VALUES ($1, 'phone', '+1 555 0100', 0) RETURNING id", [service.userIDs[0]]
            ).int64(0, "id")!
            try connection.query(
                "INSERT INTO notification_rules (user_id, contact_method_id, start_delay_seconds, urgency) VALUES ($1, $2, 0, 'high')",
                [service.userIDs[0], method])
        }
        let ingest = pipeline.client(.ingest)
        let _: EventResult = try await ingest.call(Ingest.SendEvent, Pipeline.trigger(service.routingKey))
        let failed = try await eventually(timeout: .seconds(10)) {
            try await pipeline.db.scalar(
                "SELECT count(*) FROM timeline_entries WHERE type = 'notify_failed' AND details->>'error' LIKE '%KLAXON_NOTIFY_PROVIDER_URL%'") == 1
        }
        #expect(failed)
        await ingest.close()
        await pipeline.shutdown()
    }
}

/// The channel registry is the one list of contact kinds: the database accepts exactly those.
@Suite struct ChannelRegistryTests {
    @Test func everyKindIsAllowedByTheDatabaseAndNoOther() async throws {
        let db = try await TestDatabase.create()
        let definition = try await db.pool.withConnection { connection in
            try connection.query(
                "SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE conrelid = 'contact_methods'::regclass AND contype = 'c' AND pg_get_constraintdef(oid) LIKE '%type%'"
            ).string(0, "def") ?? ""
        }
        let allowed = Set(definition.split(separator: "'").enumerated().filter { $0.offset % 2 == 1 }.map { String($0.element) })
        // … and `canary`, Klaxon's own loopback receiver, which only the canary's user has (the API refuses it).
        #expect(allowed == Set(ChannelKind.all.map(\.name) + ["canary"]), "contact_methods CHECK: \(definition)")
        #expect(ContactKind.problem(type: "canary", address: "loopback")?.field == "type")
        for kind in ChannelKind.all { #expect(ChannelKind.named(kind.name)?.name == kind.name) }
        #expect(AddressMask.mask("anything", channel: "pigeon") == "****", "an unknown kind shows nothing")
        await db.drop()
    }
}
