import Crypto
import Foundation
import KlaxonDomain

/// One-tap links (PRODUCT.md, "Reaching people"): every page carries a link to the incident's
/// page on Klaxon's HTTP listener, `<KLAXON_PUBLIC_URL>/i/<token>`. The token names one user and
/// one incident until an expiry (24 h after the page), signed with `KLAXON_LINK_SIGNING_KEY`
/// (HMAC-SHA256): whoever holds the link may look at that incident and act on it as that user,
/// and nothing else. Pure: `now` is passed in.
public struct OneTapLink: Sendable, Equatable {
    public static let lifetimeMs: Int64 = 24 * 3600 * 1000

    public var userID: UInt64
    public var incidentID: UInt64
    public var expiresAtMs: Int64

    public init(userID: UInt64, incidentID: UInt64, expiresAtMs: Int64) {
        self.userID = userID
        self.incidentID = incidentID
        self.expiresAtMs = expiresAtMs
    }

    public enum Refusal: Error, Equatable, CustomStringConvertible {
        case malformed
        case tampered
        case expired(atMs: Int64)

        public var description: String {
            switch self {
            case .malformed: "this link is not a Klaxon incident link (it may have been cut short when it was copied)"
            case .tampered: "this link's signature does not match: it was altered, or Klaxon's link key has changed since it was sent"
            case let .expired(at): "this link expired at \(RFC3339.string(millis: at)); open the incident from a newer page or the CLI"
            }
        }
    }

    /// `v1.<user>.<incident>.<expiry ms>.<base64url HMAC>`: readable ids (they are no secret),
    /// the signature over the rest.
    public func token(key: String) -> String {
        let body = "v1.\(userID).\(incidentID).\(expiresAtMs)"
        return body + "." + Self.signature(body, key: key)
    }

    public static func verify(_ token: String, key: String, nowMs: Int64) -> Result<OneTapLink, Refusal> {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 5, parts[0] == "v1", let user = UInt64(parts[1]), let incident = UInt64(parts[2]),
              let expiry = Int64(parts[3]), user > 0, incident > 0
        else { return .failure(.malformed) }
        let body = parts[0...3].joined(separator: ".")
        guard Secrets.constantTimeEquals(Array(signature(body, key: key).utf8), Array(parts[4].utf8)) else { return .failure(.tampered) }
        guard nowMs < expiry else { return .failure(.expired(atMs: expiry)) }
        return .success(OneTapLink(userID: user, incidentID: incident, expiresAtMs: expiry))
    }

    /// base64url without padding, written by hand: one per page, where Foundation's base64 and
    /// three `replacingOccurrences` cost more than the HMAC itself (issue 29).
    static func signature(_ body: String, key: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Array(body.utf8), using: SymmetricKey(data: Array(key.utf8)))
        return mac.withUnsafeBytes { base64url(UnsafeRawBufferPointer($0)) }
    }

    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    public static func base64url(_ bytes: UnsafeRawBufferPointer) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count * 4 + 2) / 3)
        var index = 0
        while index + 3 <= bytes.count {
            let value = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2])
            out += [alphabet[Int(value >> 18 & 63)], alphabet[Int(value >> 12 & 63)], alphabet[Int(value >> 6 & 63)], alphabet[Int(value & 63)]]
            index += 3
        }
        switch bytes.count - index {
        case 1:
            let value = UInt32(bytes[index]) << 16
            out += [alphabet[Int(value >> 18 & 63)], alphabet[Int(value >> 12 & 63)]]
        case 2:
            let value = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8
            out += [alphabet[Int(value >> 18 & 63)], alphabet[Int(value >> 12 & 63)], alphabet[Int(value >> 6 & 63)]]
        default: break
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The page's URL under `publicURL` (no trailing slash needed).
    public func url(publicURL: String, key: String) -> String {
        (publicURL.hasSuffix("/") ? String(publicURL.dropLast()) : publicURL) + "/i/" + token(key: key)
    }
}
