import Foundation
import NotifierService
import Testing

/// The page's webhook body is written by hand (issue 29, point 2): for the same page it is the
/// JSON Foundation's `JSONEncoder` (`.sortedKeys`) makes from the `Codable` struct — byte for
/// byte, but for the `\/` JSONEncoder writes for every `/` — for plain pages, every optional
/// part, and text that needs escaping.
@Suite struct WebhookBodyTests {
    static func message(_ json: String) throws -> WebhookMessage {
        try JSONDecoder().decode(WebhookMessage.self, from: Data(json.utf8))
    }

    static let plain = """
        {"notification_id": "0b7c7c1e-3f0e-4d55-9d3c-2b1c5e0f9a11", "reason": "assigned", "snapshot": true, "sent_at": "2027-03-01T10:00:00.123Z",
         "incident": {"id": 42, "number": 1042, "title": "Checkout error rate 37%", "status": "triggered", "urgency": "high",
                      "service": {"id": 7, "name": "Checkout"}, "dedup_key": "checkout-errors", "created_at": "2027-03-01T09:59:59.000Z"},
         "user": {"id": 3, "name": "Alice", "email": "alice@example.com"}, "rule": {"id": 11, "start_delay_seconds": 0}}
        """

    static let everything = """
        {"notification_id": "n-1", "reason": "responder_request", "snapshot": false, "sent_at": "2027-03-01T10:00:00.000Z",
         "incident": {"id": 18446744073709551615, "number": 1, "title": "Quote \\" backslash \\\\ tab \\t newline \\n bell \\u0007 é 漢字 🚨 </script>",
                      "status": "acknowledged", "urgency": "low", "service": {"id": 1, "name": "Pay/ments \\"EU\\""},
                      "dedup_key": "a/b\\\\c", "created_at": "2027-03-01T09:00:00.000Z",
                      "html_url": "https://klaxon.example/i/abc?x=1&y=2", "ack_url": "https://klaxon.example/i/abc/ack",
                      "recent_changes": [{"summary": "Deploy v2 \\"hotfix\\"", "source": "ci/cd", "at": "2027-03-01T08:59:00.000Z",
                                          "links": ["https://ci.example/1", "https://ci.example/2?a=b"]},
                                         {"summary": "Config", "source": "", "at": "2027-03-01T08:00:00.000Z", "links": []}]},
         "user": {"id": 0, "name": "Ünïcødé \\u001f", "email": "u@example.com"}, "rule": {"id": 4294967296, "start_delay_seconds": 4294967295},
         "response": {"conference_url": "https://meet.example/x", "role.commander": "3", "message": "Join \\"now\\"", "priority": "P1",
                      "a": "", "Z": "upper first"}}
        """

    static func check(_ message: WebhookMessage) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let foundation = String(decoding: try encoder.encode(message), as: UTF8.self)
        let handMade = String(decoding: message.jsonBytes(), as: UTF8.self)
        #expect(handMade == foundation.replacingOccurrences(of: "\\/", with: "/"), "\n\(handMade)\n\(foundation)")
        let parsedHand = try JSONSerialization.jsonObject(with: Data(handMade.utf8)) as? NSDictionary
        let parsedFoundation = try JSONSerialization.jsonObject(with: Data(foundation.utf8)) as? NSDictionary
        #expect(parsedHand != nil && parsedHand == parsedFoundation)
        // And it reads back as the same message.
        #expect(try JSONDecoder().decode(WebhookMessage.self, from: Data(handMade.utf8)) == message)
    }

    @Test func theSameJSONAsFoundationsEncoder() throws {
        try Self.check(try Self.message(Self.plain))
        try Self.check(try Self.message(Self.everything))
        var bundled = try Self.message(Self.plain)
        bundled.incident.htmlURL = "https://klaxon.example/p/one-tap?sig=a/b+c=="
        bundled.response = ["status_update": "Failing over\nto us-west"]
        try Self.check(bundled)
    }
}
