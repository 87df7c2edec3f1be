import Foundation
import KlaxonDomain
import NIOCore
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

/// A kind of contact method and everything Klaxon knows about it: which addresses are valid, how
/// an address is masked in timelines and lists, and the channel that delivers to it given the
/// configuration. A new channel is one file (its `DeliveryChannel` and its `ChannelKind`), one
/// line in `ChannelKind.all`, and a migration widening contact_methods' CHECK constraint.
public struct ChannelKind: Sendable {
    public let name: String
    /// nil when `address` is valid for this kind, otherwise what is wrong with it.
    public let addressProblem: @Sendable (_ address: String) -> String?
    public let mask: @Sendable (_ address: String) -> String
    /// The channel delivering this kind, or nil when the configuration does not enable it.
    public let channel: @Sendable (_ config: KlaxonConfig, _ timeout: TimeAmount) -> (any DeliveryChannel)?
    /// Why a page of this kind failed when no channel is configured, naming the setting.
    public let notConfigured: String

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

/// The address checks and masks the kinds share.
public enum Address {
    static func httpURLProblem(_ address: String) -> String? { AddressRules.httpURLProblem(address) }

    public static func isEmail(_ text: String) -> Bool {
        let parts = text.split(separator: "@", omittingEmptySubsequences: false)
        return parts.count == 2 && !parts[0].isEmpty && parts[1].contains(".") && !parts[1].hasPrefix(".") && !parts[1].hasSuffix(".")
            && !text.contains(where: \.isWhitespace) && text.count <= 254
    }

    /// International form: "+", then 8–15 digits, spaces, dashes, dots and brackets allowed between.
    static func phoneProblem(_ address: String) -> String? {
        guard address.hasPrefix("+"), address.dropFirst().allSatisfy({ $0.isNumber || " -().".contains($0) }),
              (8...15).contains(address.filter(\.isNumber).count)
        else { return "must be a phone number in international form, e.g. +49 170 1234567" }
        return nil
    }

    /// scheme://host/… — the path and query of a URL may hold tokens.
    static func maskURL(_ address: String) -> String { Masking.url(address) }

    static func maskEmail(_ address: String) -> String {
        guard let at = address.firstIndex(of: "@") else { return String(repeating: "*", count: address.count) }
        return "\(address[..<at].prefix(1))***\(address[at...])"
    }

    static func maskPhone(_ address: String) -> String {
        let digits = address.filter(\.isNumber)
        guard digits.count > 4 else { return "****" }
        return "\(address.hasPrefix("+") ? "+" : "")\(String(repeating: "*", count: digits.count - 4))\(digits.suffix(4))"
    }
}

/// How a contact address appears in the timeline: enough to recognise it in a postmortem,
/// not enough to leak it. An unknown kind shows nothing of it.
public enum AddressMask {
    public static func mask(_ address: String, channel: String) -> String {
        ChannelKind.named(channel)?.mask(address) ?? "****"
    }
}
