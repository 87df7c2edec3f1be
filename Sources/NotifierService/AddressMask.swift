/// How a contact address appears in the timeline: enough to recognise it in a postmortem,
/// not enough to leak it. Webhook URLs often carry secrets in their path or query.
public enum AddressMask {
    public static func mask(_ address: String, channel: String) -> String {
        switch channel {
        case "email":
            guard let at = address.firstIndex(of: "@") else { return String(repeating: "*", count: address.count) }
            let local = address[..<at]
            return "\(local.prefix(1))***\(address[at...])"
        case "sms", "phone":
            let digits = address.filter(\.isNumber)
            guard digits.count > 4 else { return "****" }
            return "\(address.hasPrefix("+") ? "+" : "")\(String(repeating: "*", count: digits.count - 4))\(digits.suffix(4))"
        default:
            // scheme://host/… — the path and query may hold tokens.
            guard let schemeEnd = address.range(of: "://") else { return "…" }
            let rest = address[schemeEnd.upperBound...]
            let host = rest.prefix { $0 != "/" && $0 != "?" }
            return "\(address[..<schemeEnd.upperBound])\(host)/…"
        }
    }
}
