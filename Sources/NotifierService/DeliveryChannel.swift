import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

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
        var request = HTTPClientRequest(url: address)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "Idempotency-Key", value: idempotencyKey)
        request.headers.add(name: "User-Agent", value: "Klaxon-Notifier")
        request.body = .bytes(message.jsonBytes())
        let response = try await http.execute(request, timeout: timeout)
        // Read (a bounded amount of) the body so the connection can be reused.
        _ = try? await response.body.collect(upTo: 64 * 1024)
        guard (200..<300).contains(response.status.code) else {
            throw DeliveryError(description: "webhook answered HTTP \(response.status.code)")
        }
    }
}
