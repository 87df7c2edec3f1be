import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Shared

/// Where a page goes out. A thrown error is one failed attempt.
public protocol DeliveryChannel: Sendable {
    func deliver(to address: String, idempotencyKey: String, message: WebhookMessage) async throws
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

extension HTTPClient {
    /// The client pages go out through: it never follows a redirect by itself (AsyncHTTPClient
    /// would turn a POST answered 301/302/303 into a GET without body and call that delivered).
    public static let pages = HTTPClient(
        eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: Configuration(redirectConfiguration: .disallow))
}

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
}

/// POST JSON with the idempotency key. Only a 2xx is a delivery. A 307 or 308 is followed (at
/// most `maxRedirects` times) with the same method and body; any other 3xx is a failed attempt
/// naming the status and Location. A 4xx other than 408 and 429 is permanent; 429 carries its
/// Retry-After. The whole attempt, redirects included, ends within `timeout`.
func post(
    _ http: HTTPClient, _ url: String, idempotencyKey: String, body: [UInt8], timeout: TimeAmount, what: String, bearer: String = ""
) async throws {
    let deadline = NIODeadline.now() + timeout
    var target = url
    for hop in 0...maxRedirects {
        var request = HTTPClientRequest(url: target)
        request.method = .POST
        if !bearer.isEmpty { request.headers.add(name: "Authorization", value: "Bearer \(bearer)") }
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "Idempotency-Key", value: idempotencyKey)
        request.headers.add(name: "User-Agent", value: "Klaxon-Notifier")
        request.body = .bytes(body)
        let response = try await http.execute(request, deadline: deadline)
        _ = try? await response.body.collect(upTo: 64 * 1024)
        let code = Int(response.status.code)
        switch code {
        case 200..<300:
            return
        case 307, 308:
            let location = response.headers.first(name: "Location") ?? ""
            guard hop < maxRedirects, let next = redirectTarget(location, from: target) else {
                throw DeliveryError(description: hop < maxRedirects
                    ? "\(what) answered HTTP \(code) with an unusable Location \"\(location)\""
                    : "\(what) redirected more than \(maxRedirects) times (last HTTP \(code) to \(location))")
            }
            target = next
        case 300..<400:
            let location = response.headers.first(name: "Location").map { " to \($0)" } ?? ""
            throw DeliveryError(description: "\(what) answered HTTP \(code)\(location): not delivered (redirects are followed only for 307 and 308)")
        case 429:
            throw DeliveryError(
                description: "\(what) answered HTTP 429 (rate limited)",
                retryAfterMs: response.headers.first(name: "Retry-After").flatMap(retryAfterMs))
        case 408:
            throw DeliveryError(description: "\(what) answered HTTP 408")
        case 400..<500:
            throw DeliveryError(description: "\(what) answered HTTP \(code) (permanent: not retried)", permanent: true)
        default:
            throw DeliveryError(description: "\(what) answered HTTP \(code)")
        }
    }
    throw DeliveryError(description: "\(what) redirected too many times")
}

let maxRedirects = 3

/// Location resolved against the URL that answered (absolute http(s) or a relative reference).
func redirectTarget(_ location: String, from base: String) -> String? {
    guard !location.isEmpty, let baseURL = URL(string: base), let resolved = URL(string: location, relativeTo: baseURL)?.absoluteURL,
          let scheme = resolved.scheme?.lowercased(), scheme == "http" || scheme == "https"
    else { return nil }
    return resolved.absoluteString
}

/// Retry-After as delay-seconds or an HTTP-date, in milliseconds from now.
func retryAfterMs(_ value: String) -> Int64? {
    let trimmed = value.trimmingCharacters(in: .whitespaces)
    if let seconds = Int64(trimmed), seconds >= 0 { return seconds * 1000 }
    let formatter = DateFormatter()
    formatter.locale = Locale(identifier: "en_US_POSIX")
    formatter.timeZone = TimeZone(identifier: "GMT")
    formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
    guard let date = formatter.date(from: trimmed) else { return nil }
    return max(0, Int64(date.timeIntervalSinceNow * 1000))
}
