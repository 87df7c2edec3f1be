import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Shared

/// POSTs the webhook JSON to the contact method's URL; any 2xx is delivered.
public struct WebhookChannel: DeliveryChannel {
    let http: HTTPClient
    let timeout: TimeAmount

    public init(http: HTTPClient = .pages, timeout: TimeAmount) {
        self.http = http
        self.timeout = timeout
    }

    public func deliver(to address: String, idempotencyKey: String, message: WebhookMessage) async throws {
        try await post(http, address, idempotencyKey: idempotencyKey, body: message.jsonBytes(), timeout: timeout, what: "webhook")
    }

    public func send(_ notice: Notice, to address: String) async throws {
        try await post(http, address, idempotencyKey: notice.id, body: notice.json(), timeout: timeout, what: "webhook")
    }
}

extension ChannelKind {
    public static let webhook = ChannelKind(
        kind: .webhook, channel: { config, timeout in WebhookChannel(http: .pages(trusting: config.tlsExtraCAFile), timeout: timeout) }, notConfigured: "")
}
