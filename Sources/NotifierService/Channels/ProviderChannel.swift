import AsyncHTTPClient
import Foundation
import KlaxonDomain
import NIOCore
import NIOHTTP1
import Shared

/// SMS, phone and push through one configurable provider webhook: the provider gets who to reach,
/// how, and the text to say.
public struct ProviderChannel: DeliveryChannel {
    let http: HTTPClient
    let providerURL: String
    let token: String
    let channel: String
    let timeout: TimeAmount

    public init(http: HTTPClient = .pages, providerURL: String, token: String = "", channel: String, timeout: TimeAmount) {
        self.http = http
        self.providerURL = providerURL
        self.token = token
        self.channel = channel
        self.timeout = timeout
    }

    public func deliver(to address: String, idempotencyKey: String, message: WebhookMessage) async throws {
        var json = JSONWriter()
        json.beginObject()
        json.field("channel", channel)
        json.field("to", address)
        json.field("text", PageText.render(message))
        json.field("notification_id", message.notificationID)
        json.field("incident_id", Int64(message.incident.id))
        json.field("incident_number", Int64(message.incident.number))
        json.endObject()
        try await post(
            http, providerURL, idempotencyKey: idempotencyKey, body: json.bytes, timeout: timeout, what: "\(channel) provider",
            bearer: token)
    }

    public func send(_ notice: Notice, to address: String) async throws {
        try await post(
            http, providerURL, idempotencyKey: notice.id, body: notice.json(extra: [("channel", channel), ("to", address)]), timeout: timeout,
            what: "\(channel) provider", bearer: token)
    }
}

extension ChannelKind {
    public static let sms = phoneKind(.sms, .sms)
    public static let phone = phoneKind(.phone, .voice)
    /// ntfy topic URLs directly; device tokens through the provider.
    public static let push = ChannelKind(
        kind: .push,
        channel: { config, timeout in
            let http = HTTPClient.pages(trusting: config.tlsExtraCAFile)
            return PushChannel(
                ntfy: NtfyChannel(http: http, token: config.ntfyToken, timeout: timeout),
                provider: config.notifyProviderURL.isEmpty ? nil : ProviderChannel(
                    http: http, providerURL: config.notifyProviderURL, token: config.notifyProviderToken, channel: "push", timeout: timeout))
        },
        notConfigured: "")
}
