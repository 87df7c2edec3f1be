import AsyncHTTPClient
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOSSL
import Shared

/// POST JSON with the idempotency key. Only a 2xx is a delivery. A 307 or 308 is followed (at
/// most `maxRedirects` times) with the same method and body; any other 3xx is a failed attempt
/// naming the status and Location. A 4xx other than 408 and 429 is permanent; 429 carries its
/// Retry-After. The whole attempt, redirects included, ends within `timeout`.
func post(
    _ http: HTTPClient, _ url: String, idempotencyKey: String, body: [UInt8], timeout: TimeAmount, what: String, bearer: String = "",
    contentType: String = "application/json", headers: [(String, String)] = []
) async throws {
    let deadline = NIODeadline.now() + timeout  // monotonic network timeout, not a domain instant
    var target = url
    for hop in 0...maxRedirects {
        // Every hop, redirects too: a link-local target is refused for good (OutboundGuard).
        if let host = URL(string: target)?.host, let why = await OutboundGuard.refusal(host: host) {
            throw DeliveryError(
                description: "\(what) not sent: \(why); KLAXON_ALLOW_LINK_LOCAL_DESTINATIONS=true allows it", permanent: true)
        }
        let response = try await exchange(
            http, target, idempotencyKey: idempotencyKey, body: body, deadline: deadline, what: what, bearer: bearer, contentType: contentType,
            headers: headers)
        let code = response.status
        switch code {
        case 200..<300:
            return
        case 307, 308:
            let location = response.location ?? ""
            guard hop < maxRedirects, let next = redirectTarget(location, from: target) else {
                throw DeliveryError(description: hop < maxRedirects
                    ? "\(what) answered HTTP \(code) with an unusable Location \"\(location)\""
                    : "\(what) redirected more than \(maxRedirects) times (last HTTP \(code) to \(location))")
            }
            target = next
        case 300..<400:
            let location = response.location.map { " to \($0)" } ?? ""
            throw DeliveryError(description: "\(what) answered HTTP \(code)\(location): not delivered (redirects are followed only for 307 and 308)")
        case 429:
            throw DeliveryError(
                description: "\(what) answered HTTP 429 (rate limited)",
                retryAfterMs: response.retryAfter.flatMap(retryAfterMs))
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

/// One POST and its answer: through the client's lean twin when it has one and takes the URL
/// (keep-alive connections per origin, NIO's codec directly), else through AsyncHTTPClient.
func exchange(
    _ http: HTTPClient, _ url: String, idempotencyKey: String, body: [UInt8], deadline: NIODeadline, what: String, bearer: String,
    contentType: String, headers: [(String, String)]
) async throws -> LeanHTTP1.Response {
    var fields = HTTPHeaders()
    if !bearer.isEmpty { fields.add(name: "Authorization", value: "Bearer \(bearer)") }
    fields.add(name: "Content-Type", value: contentType)
    fields.add(name: "Idempotency-Key", value: idempotencyKey)
    fields.add(name: "User-Agent", value: "Klaxon-Notifier")
    for (name, value) in headers { fields.add(name: name, value: value) }
    if let lean = http.lean, let target = lean.target(url) {
        do {
            if let response = try await lean.post(target, headers: fields, body: body, deadline: deadline) { return response }
        } catch let error as LeanHTTP1Error {
            throw DeliveryError(description: "\(what) not delivered: \(error)")
        }
    }
    var request = HTTPClientRequest(url: url)
    request.method = .POST
    request.headers = fields
    request.body = .bytes(body)
    let response = try await http.execute(request, deadline: deadline)
    _ = try? await response.body.collect(upTo: 64 * 1024)
    return LeanHTTP1.Response(
        status: Int(response.status.code), location: response.headers.first(name: "Location"), retryAfter: response.headers.first(name: "Retry-After"))
}

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
