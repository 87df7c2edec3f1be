import Foundation
import KlaxonDomain
import NIOCore
import Shared

/// Where a page goes out. A thrown error is one failed attempt.
public protocol DeliveryChannel: Sendable {
    func deliver(to address: String, idempotencyKey: String, message: WebhookMessage) async throws
    /// A message that is not a page (a verification code, a test page), the same way.
    func send(_ notice: Notice, to address: String) async throws
}

/// A message to a contact method that is not about an incident: a verification code or a test
/// page (`contact_notices`). `text` is what is read (SMS, chat, push, email body), `spoken` what a
/// call says, `subject` an email's subject or a push title.
public struct Notice: Sendable {
    public var id: String
    public var kind: String          // verification | test
    public var contactMethodID: Int64
    public var subject: String
    public var text: String
    public var spoken: String

    public init(id: String, kind: String, contactMethodID: Int64, subject: String, text: String, spoken: String) {
        self.id = id
        self.kind = kind
        self.contactMethodID = contactMethodID
        self.subject = subject
        self.text = text
        self.spoken = spoken
    }

    /// The JSON a webhook or provider gets: `{"type": "contact_method.verification", …}`.
    func json(extra: [(String, String)] = []) -> [UInt8] {
        var json = JSONWriter()
        json.beginObject()
        json.field("type", "contact_method.\(kind)")
        json.field("notice_id", id)
        json.field("contact_method_id", contactMethodID)
        for (key, value) in extra { json.field(key, value) }
        json.field("subject", subject)
        json.field("text", text)
        json.endObject()
        return json.bytes
    }
}

/// A failed attempt. `permanent` ones are not retried (a 4xx other than 408 and 429: the
/// endpoint refuses this message and will keep refusing it); `retryAfterMs` is the endpoint's
/// own Retry-After, honoured instead of the backoff.
public struct DeliveryError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public var permanent: Bool
    public var retryAfterMs: Int64?

    public init(description: String, permanent: Bool = false, retryAfterMs: Int64? = nil) {
        self.description = description
        self.permanent = permanent
        self.retryAfterMs = retryAfterMs
    }
}

/// How a kind of contact method (`ContactKind`, shared by every wing) is delivered: the channel
/// that sends to it given the configuration. A new channel is one file (its `DeliveryChannel` and
/// its `ChannelKind`), its `ContactKind`, one line in `ChannelKind.all`, and a migration widening
/// contact_methods' CHECK constraint.
public struct ChannelKind: Sendable {
    public let kind: ContactKind
    /// The channel delivering this kind, or nil when the configuration does not enable it.
    public let channel: @Sendable (_ config: KlaxonConfig, _ timeout: TimeAmount) -> (any DeliveryChannel)?
    /// Why a page of this kind failed when no channel is configured, naming the setting.
    public let notConfigured: String

    public var name: String { kind.name }

    /// Every kind, in the order the API documents them.
    public static let all: [ChannelKind] = [.webhook, .slack, .email, .sms, .phone, .push]

    public static func named(_ name: String) -> ChannelKind? { all.first { $0.name == name } }

    /// The channels the configuration enables, by kind name.
    public static func channels(_ config: KlaxonConfig) -> [String: any DeliveryChannel] {
        let timeout = TimeAmount.seconds(Int64(config.notifyTimeoutSeconds))
        var channels: [String: any DeliveryChannel] = [:]
        for kind in all { channels[kind.name] = kind.channel(config, timeout) }
        return channels
    }
}
