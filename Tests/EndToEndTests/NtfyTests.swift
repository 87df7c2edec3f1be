import Foundation
import KlaxonDomain
import KlaxonTestSupport
import NotifierService
import Shared
import Testing

/// Push through ntfy (issue 25, point 4): a `push` method that is a topic URL gets the page with
/// ntfy's documented headers — Title, Priority (5 high, 3 low), Tags, Click (the one-tap link),
/// Actions (`http, <label>, <url>, method=POST, clear=true`) — and the action acknowledges as
/// that person. A device token still goes to the provider webhook, and without one fails, saying so.
@Suite struct NtfyTests {
    /// ntfy's action syntax (docs.ntfy.sh, "Action buttons", simple format): `<action>, <label>,
    /// <url>[, key=value…]`, several separated by ";".
    static func actions(_ header: String) -> [[String]] {
        header.split(separator: ";").map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
    }

    @Test func aPushPageGoesToTheTopicWithNtfysHeadersAndItsActionAcknowledges() async throws {
        let port = try await freePort()
        let pipeline = try await Pipeline { config, _ in
            config.assignmentHTTPListen = HostPort(host: "127.0.0.1", port: port)
            config.publicURL = "http://127.0.0.1:\(port)"
            config.linkSigningKey = OneTapLinkTests.key
            config.ntfyToken = "tk_ntfytesttoken"
        }
        let service = try await pipeline.seed(users: ["Alice"])
        let topic = "\(pipeline.sink.url)/klaxon-alice-\(UUID().uuidString.prefix(8))"
        try await pipeline.db.pool.withConnection { connection in
            try connection.query("UPDATE contact_methods SET type = 'push', address = $1 WHERE user_id = $2", [topic, service.userIDs[0]])
        }
        let ingest = pipeline.client(.ingest, token: nil)
        let created: EventResult = try await ingest.call(Ingest.SendEvent, Pipeline.trigger(service.routingKey, summary: "Zahlungen fehlgeschlagen"))
        let request = try #require(await pipeline.sink.waitForRequests(1, timeout: .seconds(10)).first)
        #expect(topic.hasSuffix(request.uri), "posted to \(request.uri), not the topic")
        #expect(request.method == "POST")
        #expect(request.header("Content-Type") == "text/plain; charset=utf-8")
        #expect(request.header("Authorization") == "Bearer tk_ntfytesttoken")
        let number = try #require(try await pipeline.db.scalar("SELECT number FROM incidents WHERE id = $1", [Int64(created.incidentID)]))
        #expect(request.header("Title") == "[HIGH] #\(number) Zahlungen fehlgeschlagen")
        #expect(request.header("Priority") == "5")
        #expect(request.header("Tags") == "rotating_light")
        let click = try #require(request.header("Click"))
        #expect(click.hasPrefix("http://127.0.0.1:\(port)/i/v1.\(service.userIDs[0])."), "\(click)")
        let actions = Self.actions(try #require(request.header("Actions")))
        #expect(actions.count == 1 && actions[0].count == 5, "\(actions)")
        #expect(actions.first?[0] == "http" && actions.first?[1] == "Acknowledge" && actions.first?[2] == click + "/ack")
        #expect(actions.first?.contains("method=POST") == true && actions.first?.contains("clear=true") == true)
        #expect(String(decoding: request.body, as: UTF8.self).contains("Zahlungen fehlgeschlagen"))

        // What the phone does when the button is tapped: POST the action's URL.
        let tapped = try await OneTapLinkTests.request(actions[0][2], method: .POST)
        #expect(tapped.status == 200, "\(tapped.body)")
        #expect(try await OneTapLinkTests.acknowledgers(pipeline, created.incidentID) == ["Alice"])
        await ingest.close()
        await pipeline.shutdown()
    }

    @Test func lowUrgencyAndNonASCIIAndDeviceTokens() async throws {
        var message = OutboundGuardTests.page(title: "Plattenplatz knapp — db-1")
        message.incident.urgency = "low"
        message.incident.htmlURL = nil
        let headers = Dictionary(NtfyChannel.headers(message), uniquingKeysWith: { a, _ in a })
        #expect(headers["Priority"] == "3" && headers["Tags"] == "warning")
        #expect(headers["Title"]?.hasPrefix("=?UTF-8?B?") == true, "a non-ASCII title must be RFC 2047-encoded for a header")
        #expect(headers["Click"] == nil && headers["Actions"] == nil, "no link configured: no Click, no Actions")
        // A device token and no provider: a permanent failure naming what to set.
        let push = try #require(ChannelKind.push.channel(KlaxonConfig(databaseURL: ""), .seconds(5)))
        do {
            try await push.deliver(to: "device-token-abc", idempotencyKey: "n-1", message: message)
            Issue.record("a device token was delivered without a provider")
        } catch let error as DeliveryError {
            #expect(error.permanent && error.description.contains("KLAXON_NOTIFY_PROVIDER_URL"))
        }
        #expect(ContactKind.problem(type: "push", address: "https://ntfy.example/klaxon-alice") == nil)
        #expect(ContactKind.problem(type: "push", address: "https://") != nil)
    }
}
