import Crypto
import Foundation

/// Slack's request signing (v0), which Slack-compatible chats share: the request carries
/// `X-Slack-Request-Timestamp` (Unix seconds) and `X-Slack-Signature: v0=<hex>`, the hex being
/// HMAC-SHA256 over `v0:<timestamp>:<raw body>` keyed with the app's signing secret. Requests
/// more than five minutes from `now` (either way) are refused, so a captured request cannot be
/// replayed later. Pure: `now` is passed in.
public enum ChatSignature {
    public static let maxAgeSeconds: Int64 = 300

    public enum Refusal: Error, Equatable, CustomStringConvertible {
        case missing(String)
        case stale(ageSeconds: Int64)
        case mismatch

        public var description: String {
            switch self {
            case let .missing(header): "missing or malformed \(header) header"
            case let .stale(age): "request timestamp is \(age) s from now; at most \(ChatSignature.maxAgeSeconds) s is accepted (replay?)"
            case .mismatch: "signature does not match (wrong signing secret, or the body was altered)"
            }
        }
    }

    /// `v0=` + the hex HMAC of the base string.
    public static func sign(secret: String, timestamp: String, body: [UInt8]) -> String {
        var message = Array("v0:\(timestamp):".utf8)
        message += body
        let mac = HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: Array(secret.utf8)))
        return "v0=" + mac.map { String(format: "%02x", $0) }.joined()
    }

    /// nil when the request is genuine and fresh, else why it is refused.
    public static func check(secret: String, timestamp: String?, signature: String?, body: [UInt8], nowMs: Int64) -> Refusal? {
        guard let timestamp, let seconds = Int64(timestamp) else { return .missing("X-Slack-Request-Timestamp") }
        guard let signature, signature.hasPrefix("v0=") else { return .missing("X-Slack-Signature") }
        let age = nowMs / 1000 - seconds
        guard abs(age) <= maxAgeSeconds else { return .stale(ageSeconds: age) }
        let expected = Array(sign(secret: secret, timestamp: timestamp, body: body).utf8)
        guard Secrets.constantTimeEquals(expected, Array(signature.utf8)) else { return .mismatch }
        return nil
    }
}
