import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Shared

/// A Slack-compatible incoming webhook: `{"text": …}` with a link in Slack's `<url|label>` form.
/// A page to a person also carries `blocks`: the text, and buttons the chat app sends back to
/// Klaxon's chat endpoint (`POST /chat/slack` on Assignment): Acknowledge and Resolve, and for a
/// responder request Join and Decline, each with the incident id as its value. A post to a
/// channel (a status update to subscribers) has the text only.
public struct SlackChannel: DeliveryChannel {
    let http: HTTPClient
    let timeout: TimeAmount

    public init(http: HTTPClient = .pages, timeout: TimeAmount) {
        self.http = http
        self.timeout = timeout
    }

    public static func body(_ message: WebhookMessage) -> [UInt8] {
        var text = PageText.render(message)
        if let url = message.incident.htmlURL {
            text = text.replacingOccurrences(of: " \(url)", with: " <\(url)|Open incident #\(message.incident.number)>")
        }
        var object: [String: Any] = ["text": text]
        if message.user.id != 0 {
            let id = String(message.incident.id)
            func button(_ action: String, _ label: String, style: String? = nil) -> [String: Any] {
                var button: [String: Any] = [
                    "type": "button", "action_id": action, "value": id, "text": ["type": "plain_text", "text": label],
                ]
                if let style { button["style"] = style }
                return button
            }
            var buttons = [button("klaxon_ack", "Acknowledge", style: "primary"), button("klaxon_resolve", "Resolve")]
            if message.reason == "responder_request" {
                buttons = [button("klaxon_join", "Join", style: "primary"), button("klaxon_decline", "Decline")] + buttons
            }
            object["blocks"] = [
                ["type": "section", "text": ["type": "mrkdwn", "text": text]],
                ["type": "actions", "block_id": "klaxon_incident_\(id)", "elements": buttons],
            ]
        }
        return Array((try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data())
    }

    public func deliver(to address: String, idempotencyKey: String, message: WebhookMessage) async throws {
        try await post(http, address, idempotencyKey: idempotencyKey, body: Self.body(message), timeout: timeout, what: "Slack webhook")
    }

    public func send(_ notice: Notice, to address: String) async throws {
        let body = (try? JSONSerialization.data(withJSONObject: ["text": notice.text], options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
        try await post(http, address, idempotencyKey: notice.id, body: Array(body), timeout: timeout, what: "Slack webhook")
    }
}

extension ChannelKind {
    public static let slack = ChannelKind(
        kind: .slack, channel: { config, timeout in SlackChannel(http: .pages(trusting: config.tlsExtraCAFile), timeout: timeout) }, notConfigured: "")
}
