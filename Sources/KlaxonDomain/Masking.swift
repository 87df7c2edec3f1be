import Foundation

/// How secrets in addresses appear in timelines and lists: enough to recognise, not enough to leak.
public enum Masking {
    /// scheme://host/… — the path and query of a URL may hold tokens (a chat webhook's does).
    public static func url(_ address: String) -> String {
        guard let schemeEnd = address.range(of: "://") else { return "…" }
        let rest = address[schemeEnd.upperBound...]
        let host = rest.prefix { $0 != "/" && $0 != "?" }
        return "\(address[..<schemeEnd.upperBound])\(host)/…"
    }
}

/// Address checks every wing shares.
public enum AddressRules {
    /// nil when `address` is an http(s) URL with a host, otherwise what is wrong with it.
    public static func httpURLProblem(_ address: String) -> String? {
        guard let url = URL(string: address), let scheme = url.scheme?.lowercased(), ["http", "https"].contains(scheme),
              url.host?.isEmpty == false
        else { return "must be an http or https URL" }
        return nil
    }
}
