import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Shared

/// Where a page goes out. A thrown error is one failed attempt.
public protocol DeliveryChannel: Sendable {
    func deliver(to address: String, idempotencyKey: String, message: WebhookMessage) async throws
}

public struct DeliveryError: Error, CustomStringConvertible, Sendable {
    public var description: String
}

/// POSTs the webhook JSON to the contact method's URL; any 2xx is delivered.
public struct WebhookChannel: DeliveryChannel {
    let http: HTTPClient
    let timeout: TimeAmount

    public init(http: HTTPClient = .shared, timeout: TimeAmount) {
        self.http = http
        self.timeout = timeout
    }

    public func deliver(to address: String, idempotencyKey: String, message: WebhookMessage) async throws {
        try await post(http, address, idempotencyKey: idempotencyKey, body: message.jsonBytes(), timeout: timeout, what: "webhook")
    }
}

/// What a person reads: one line with everything needed to act, for chat, SMS and push.
public enum PageText {
    public static func render(_ message: WebhookMessage) -> String {
        let incident = message.incident
        var text = "[\(incident.urgency.uppercased())] #\(incident.number) \(incident.title) — service \(incident.service.name), "
            + "status \(incident.status)"
        switch message.reason {
        case "escalated": text += " (escalated to you)"
        case "ack_timeout": text += " (acknowledgement timed out)"
        case "reassigned": text += " (reassigned to you)"
        default: break
        }
        if let url = incident.htmlURL { text += " \(url)" }
        return text
    }
}

/// A Slack-compatible incoming webhook: `{"text": …}` with a link in Slack's `<url|label>` form.
public struct SlackChannel: DeliveryChannel {
    let http: HTTPClient
    let timeout: TimeAmount

    public init(http: HTTPClient = .shared, timeout: TimeAmount) {
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

/// SMS, phone and push through one configurable provider webhook: the provider gets who to reach,
/// how, and the text to say.
public struct ProviderChannel: DeliveryChannel {
    let http: HTTPClient
    let providerURL: String
    let token: String
    let channel: String
    let timeout: TimeAmount

    public init(http: HTTPClient = .shared, providerURL: String, token: String = "", channel: String, timeout: TimeAmount) {
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
}

/// POST JSON with the idempotency key; any 2xx is delivered.
func post(
    _ http: HTTPClient, _ url: String, idempotencyKey: String, body: [UInt8], timeout: TimeAmount, what: String, bearer: String = ""
) async throws {
    var request = HTTPClientRequest(url: url)
    request.method = .POST
    if !bearer.isEmpty { request.headers.add(name: "Authorization", value: "Bearer \(bearer)") }
    request.headers.add(name: "Content-Type", value: "application/json")
    request.headers.add(name: "Idempotency-Key", value: idempotencyKey)
    request.headers.add(name: "User-Agent", value: "Klaxon-Notifier")
    request.body = .bytes(body)
    let response = try await http.execute(request, timeout: timeout)
    _ = try? await response.body.collect(upTo: 64 * 1024)
    guard (200..<300).contains(response.status.code) else {
        throw DeliveryError(description: "\(what) answered HTTP \(response.status.code)")
    }
}
