import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Shared

/// A Slack-compatible incoming webhook: `{"text": …}` with a link in Slack's `<url|label>` form.
public struct SlackChannel: DeliveryChannel {
    let http: HTTPClient
    let timeout: TimeAmount

    public init(http: HTTPClient = .pages, timeout: TimeAmount) {
        self.http = http
        self.timeout = timeout
    }

    public func deliver(to address: String, idempotencyKey: String, message: WebhookMessage) async throws {
        var text = PageText.render(message)
        if let url = message.incident.htmlURL {
            text = text.replacingOccurrences(of: " \(url)", with: " <\(url)|Open incident #\(message.incident.number)>")
        }
        var json = JSONWriter()
        json.beginObject()
        json.field("text", text)
        json.endObject()
        try await post(http, address, idempotencyKey: idempotencyKey, body: json.bytes, timeout: timeout, what: "Slack webhook")
    }
}

extension ChannelKind {
    public static let slack = ChannelKind(
        name: "slack", addressProblem: Address.httpURLProblem, mask: Address.maskURL,
        channel: { _, timeout in SlackChannel(timeout: timeout) }, notConfigured: "")
}
