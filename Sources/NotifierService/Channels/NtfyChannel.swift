import AsyncHTTPClient
import Foundation
import KlaxonDomain
import NIOCore
import Shared

/// Push through ntfy (https://ntfy.sh, or a self-hosted server): a `push` contact method whose
/// address is a topic URL gets the page POSTed there with ntfy's headers — Title, Priority (5
/// for high urgency, which ntfy's Android app can let through Do Not Disturb; 3 for low), Tags,
/// Click (the person's one-tap link) and Actions (an "Acknowledge" button POSTing the one-tap
/// acknowledge URL). `KLAXON_NTFY_TOKEN` is sent as a bearer token (a protected topic).
public struct NtfyChannel: DeliveryChannel {
    let http: HTTPClient
    let token: String
    let timeout: TimeAmount

    public init(http: HTTPClient = .pages, token: String = "", timeout: TimeAmount) {
        self.http = http
        self.token = token
        self.timeout = timeout
    }

    /// ntfy's headers for this page (non-ASCII header text RFC 2047-encoded, which ntfy decodes).
    public static func headers(_ message: WebhookMessage) -> [(String, String)] {
        let incident = message.incident
        let high = incident.urgency != "low"
        var headers = [
            ("Title", EmailChannel.encodedHeader("[\(incident.urgency.uppercased())] #\(incident.number) \(incident.title)")),
            ("Priority", high ? "5" : "3"),
            ("Tags", high ? "rotating_light" : "warning"),
        ]
        if let link = incident.htmlURL { headers.append(("Click", link)) }
        if let ack = incident.ackURL, incident.status == "triggered" {
            headers.append(("Actions", "http, Acknowledge, \(ack), method=POST, clear=true"))
        }
        return headers
    }

    public func deliver(to address: String, idempotencyKey: String, message: WebhookMessage) async throws {
        try await post(
            http, address, idempotencyKey: idempotencyKey, body: Array(PageText.render(message).utf8), timeout: timeout, what: "ntfy",
            bearer: token, contentType: "text/plain; charset=utf-8", headers: Self.headers(message))
    }

    public func send(_ notice: Notice, to address: String) async throws {
        try await post(
            http, address, idempotencyKey: notice.id, body: Array(notice.text.utf8), timeout: timeout, what: "ntfy", bearer: token,
            contentType: "text/plain; charset=utf-8",
            headers: [("Title", EmailChannel.encodedHeader(notice.subject)), ("Priority", "3"), ("Tags", "white_check_mark")])
    }

    /// An ntfy topic URL (a push address that is an http(s) URL), rather than a provider's device token.
    public static func isTopicURL(_ address: String) -> Bool {
        address.hasPrefix("https://") || address.hasPrefix("http://")
    }
}

/// `push`: to an ntfy topic URL directly, to anything else (a device token) through the provider
/// webhook when one is configured.
struct PushChannel: DeliveryChannel {
    let ntfy: NtfyChannel
    let provider: ProviderChannel?

    func deliver(to address: String, idempotencyKey: String, message: WebhookMessage) async throws {
        if NtfyChannel.isTopicURL(address) {
            try await ntfy.deliver(to: address, idempotencyKey: idempotencyKey, message: message)
        } else if let provider {
            try await provider.deliver(to: address, idempotencyKey: idempotencyKey, message: message)
        } else {
            throw DeliveryError(
                description: "push to a device token needs a provider: set KLAXON_NOTIFY_PROVIDER_URL, or make the method an ntfy topic URL",
                permanent: true)
        }
    }

    func send(_ notice: Notice, to address: String) async throws {
        if NtfyChannel.isTopicURL(address) {
            try await ntfy.send(notice, to: address)
        } else if let provider {
            try await provider.send(notice, to: address)
        } else {
            throw DeliveryError(
                description: "push to a device token needs a provider: set KLAXON_NOTIFY_PROVIDER_URL, or make the method an ntfy topic URL",
                permanent: true)
        }
    }
}
