import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// Where Klaxon may send what users configure (webhooks, channel webhooks, providers, chat
/// reply URLs): never to link-local or cloud-metadata addresses (169.254.0.0/16, fe80::/10,
/// IPv4-mapped forms), by address or by what a name resolves to at send time — whoever may add a
/// webhook must not make Klaxon fetch a cloud's instance credentials. `KLAXON_ALLOW_LINK_LOCAL_DESTINATIONS=true`
/// allows them (a lab that really pages a link-local host).
public enum OutboundGuard {
    private static let allowed = NIOLockedValueBox(false)

    public static var allowLinkLocal: Bool {
        get { allowed.withLockedValue { $0 } }
        set { allowed.withLockedValue { $0 = newValue } }
    }

    /// nil when `host` (a name, an IPv4 or an IPv6 literal, brackets allowed) may be reached;
    /// otherwise why not. A name that does not resolve is not refused here (the send fails on it).
    public static func refusal(host: String) async -> String? {
        guard !allowLinkLocal else { return nil }
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        if let literal = linkLocalLiteral(bare) {
            return literal ? "\(bare) is a link-local address (cloud metadata lives there)" : nil
        }
        // A name's verdict is kept 10 s (a page storm to one webhook resolves it once, not per page).
        let now = NIODeadline.now()
        if let (until, verdict) = verdicts.withLockedValue({ $0[bare] }), now < until { return verdict }
        let addresses = (try? await NIOThreadPool.singleton.runIfActive { resolve(bare) }) ?? []
        var verdict: String?
        if let bad = addresses.first(where: { linkLocalLiteral($0) == true }) {
            verdict = "\(bare) resolves to \(bad), a link-local address (cloud metadata lives there)"
        }
        verdicts.withLockedValue { cache in
            if cache.count > 4096 { cache.removeAll() }
            cache[bare] = (now + .seconds(10), verdict)
        }
        return verdict
    }

    private static let verdicts = NIOLockedValueBox<[String: (NIODeadline, String?)]>([:])

    /// true/false for an IP literal (link-local or not); nil when `text` is not one.
    static func linkLocalLiteral(_ text: String) -> Bool? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            let bytes = withUnsafeBytes(of: v4.s_addr) { Array($0) }
            return bytes[0] == 169 && bytes[1] == 254
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            let bytes = withUnsafeBytes(of: v6) { Array($0) }
            if bytes[0] == 0xFE && (bytes[1] & 0xC0) == 0x80 { return true }
            // ::ffff:a.b.c.d
            if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF {
                return bytes[12] == 169 && bytes[13] == 254
            }
            return false
        }
        return nil
    }

    /// Every address `name` resolves to, as text (getaddrinfo: blocking, run off the event loops).
    static func resolve(_ name: String) -> [String] {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(name, nil, &hints, &result) == 0, let first = result else { return [] }
        defer { freeaddrinfo(first) }
        var addresses: [String] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let info = cursor {
            var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            if info.pointee.ai_family == AF_INET, let address = info.pointee.ai_addr {
                address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { pointer in
                    var value = pointer.pointee.sin_addr
                    _ = inet_ntop(AF_INET, &value, &buffer, socklen_t(buffer.count))
                }
            } else if info.pointee.ai_family == AF_INET6, let address = info.pointee.ai_addr {
                address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { pointer in
                    var value = pointer.pointee.sin6_addr
                    _ = inet_ntop(AF_INET6, &value, &buffer, socklen_t(buffer.count))
                }
            }
            let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if !text.isEmpty { addresses.append(text) }
            cursor = info.pointee.ai_next
        }
        return addresses
    }
}
