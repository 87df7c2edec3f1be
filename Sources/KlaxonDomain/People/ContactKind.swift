import Foundation

/// A kind of contact method as every wing sees it: its name, which addresses are valid, how an
/// address is masked in timelines and lists. How a kind is delivered is Notifier's (its
/// `ChannelKind` adds the channel); validating a user's contact methods is everyone's (the People
/// API, `klaxon apply`). A new kind is one entry here, its channel in Notifier, and a migration
/// widening contact_methods' CHECK constraint.
public struct ContactKind: Sendable {
    public let name: String
    /// nil when `address` is valid for this kind, otherwise what is wrong with it.
    public let addressProblem: @Sendable (_ address: String) -> String?
    public let mask: @Sendable (_ address: String) -> String

    public init(name: String, addressProblem: @escaping @Sendable (String) -> String?, mask: @escaping @Sendable (String) -> String) {
        self.name = name
        self.addressProblem = addressProblem
        self.mask = mask
    }

    public static let webhook = ContactKind(name: "webhook", addressProblem: AddressRules.httpURLProblem, mask: Masking.url)
    public static let slack = ContactKind(name: "slack", addressProblem: AddressRules.httpURLProblem, mask: Masking.url)
    public static let email = ContactKind(
        name: "email", addressProblem: { Address.isEmail($0) ? nil : "must be an email address" }, mask: Address.maskEmail)
    public static let sms = ContactKind(name: "sms", addressProblem: Address.phoneProblem, mask: Address.maskPhone)
    public static let phone = ContactKind(name: "phone", addressProblem: Address.phoneProblem, mask: Address.maskPhone)
    /// An ntfy topic URL (sent to directly) or a provider's device token: never shown whole.
    public static let push = ContactKind(
        name: "push",
        addressProblem: { address in
            if address.hasPrefix("http://") || address.hasPrefix("https://") { return AddressRules.httpURLProblem(address) }
            return address.isEmpty || address.count > 4096 ? "must be an ntfy topic URL or a device token of 1–4096 characters" : nil
        },
        mask: Masking.url)

    /// Every kind, in the order the API documents them.
    public static let all: [ContactKind] = [.webhook, .slack, .email, .sms, .phone, .push]
    public static var names: [String] { all.map(\.name) }

    public static func named(_ name: String) -> ContactKind? { all.first { $0.name == name } }

    /// nil when `type` is a known kind and `address` valid for it; otherwise the field at fault
    /// ("type" or "address") and what is wrong.
    public static func problem(type: String, address: String) -> (field: String, description: String)? {
        guard let kind = named(type) else {
            return ("type", "must be \(names.dropLast().joined(separator: ", ")) or \(names.last!)")
        }
        return kind.addressProblem(address).map { ("address", $0) }
    }
}

/// The address checks and masks the kinds share.
public enum Address {
    public static func isEmail(_ text: String) -> Bool {
        let parts = text.split(separator: "@", omittingEmptySubsequences: false)
        return parts.count == 2 && !parts[0].isEmpty && parts[1].contains(".") && !parts[1].hasPrefix(".") && !parts[1].hasSuffix(".")
            && !text.contains(where: \.isWhitespace) && text.count <= 254
    }

    /// International form: "+", then 8–15 digits, spaces, dashes, dots and brackets allowed between.
    public static func phoneProblem(_ address: String) -> String? {
        guard address.hasPrefix("+"), address.dropFirst().allSatisfy({ $0.isNumber || " -().".contains($0) }),
              (8...15).contains(address.filter(\.isNumber).count)
        else { return "must be a phone number in international form, e.g. +49 170 1234567" }
        return nil
    }

    public static func maskEmail(_ address: String) -> String {
        guard let at = address.firstIndex(of: "@") else { return String(repeating: "*", count: address.count) }
        return "\(address[..<at].prefix(1))***\(address[at...])"
    }

    public static func maskPhone(_ address: String) -> String {
        let digits = address.filter(\.isNumber)
        guard digits.count > 4 else { return "****" }
        return "\(address.hasPrefix("+") ? "+" : "")\(String(repeating: "*", count: digits.count - 4))\(digits.suffix(4))"
    }
}

/// How a contact address appears in the timeline: enough to recognise it in a postmortem,
/// not enough to leak it. An unknown kind shows nothing of it.
public enum AddressMask {
    public static func mask(_ address: String, channel: String) -> String {
        ContactKind.named(channel)?.mask(address) ?? "****"
    }
}

/// What makes a user valid, for every way one is written (the People API, `klaxon apply`).
public enum UserRules {
    public static let maxRulesPerUser = 20
    public static let roles = ["admin", "responder", "observer"]
    public static let defaultRole = "responder"
    public static let defaultTimeZone = "UTC"

    /// Each field at fault (named under `prefix`, e.g. "users[2]."), with what is wrong.
    public static func violations(
        name: String?, email: String, timeZone: String, role: String, chatID: String, prefix: String = ""
    ) -> [(field: String, description: String)] {
        var violations: [(field: String, description: String)] = []
        if let name, name.isEmpty || name.unicodeScalars.count > 255 { violations.append((prefix + "name", "must be 1–255 characters")) }
        if !Address.isEmail(email) { violations.append((prefix + "email", "must be an email address")) }
        if TimeZone(identifier: timeZone) == nil { violations.append((prefix + "time_zone", "unknown time zone \"\(timeZone)\"")) }
        if !roles.contains(role) { violations.append((prefix + "role", "must be admin, responder or observer")) }
        if let problem = chatIDProblem(chatID) { violations.append((prefix + "chat_id", problem)) }
        return violations
    }

    /// A chat member id (Slack's look like U0123ABCD): 1–64 letters, digits, `.`, `_`, `-`; empty = none.
    public static func chatIDProblem(_ chatID: String) -> String? {
        guard !chatID.isEmpty else { return nil }
        guard chatID.count <= 64, chatID.unicodeScalars.allSatisfy({ $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "._-".unicodeScalars.contains($0)) })
        else { return "must be 1–64 letters, digits, '.', '_' or '-' (a chat member id such as U0123ABCD)" }
        return nil
    }
}
