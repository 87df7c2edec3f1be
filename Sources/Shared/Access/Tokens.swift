import Crypto
import KlaxonDomain

/// Secrets made by Klaxon: bearer tokens (256 bits), routing keys (32 characters) and feed
/// tokens, all from the system CSPRNG (SystemRandomNumberGenerator: getrandom(2) on Linux).
public enum Secrets {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789".utf8)

    /// `count` characters of [A-Za-z0-9], each uniform (rejection sampling: no modulo bias).
    public static func text(count: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        var out = [UInt8]()
        out.reserveCapacity(count)
        while out.count < count {
            let byte = UInt8.random(in: 0...255, using: &generator)
            if byte < 248 { out.append(alphabet[Int(byte % 62)]) }  // 248 = 4 × 62
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// A routing key: 32 characters (≈ 190 bits).
    public static func routingKey() -> String { text(count: 32) }

    /// A bearer token: `klx_` and 43 characters (≥ 256 bits of randomness: 43 × log2(62) ≈ 256.1).
    public static func token() -> String { "klx_" + text(count: 43) }

    public static func sha256(_ text: String) -> [UInt8] { Array(SHA256.hash(data: Array(text.utf8))) }

    /// The first `bytes` bytes of `text`'s SHA-256, as lowercase hex (a stable key from a long text).
    public static func sha256Hex(_ text: String, bytes: Int = 32) -> String {
        sha256(text).prefix(bytes).map { String(format: "%02x", $0) }.joined()
    }

    /// Compares two byte strings in time that depends on their length only.
    public static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }

    /// What people see of a secret after it was shown once: its first 4 and last 4 characters.
    public static func mask(_ secret: String) -> String {
        guard secret.count > 12 else { return String(repeating: "*", count: secret.count) }
        return String(secret.prefix(4)) + String(repeating: "*", count: secret.count - 8) + String(secret.suffix(4))
    }
}

/// Bearer tokens in PostgreSQL (`api_tokens`): only the SHA-256 hash is stored.
public enum TokenStore {
    public struct Issued: Sendable {
        public var id: Int64
        public var token: String
        public var prefix: String
    }

    /// Inserts a new token and returns it in full (the only time it exists outside the caller).
    public static func issue(
        _ connection: PGConnection, name: String, role: TokenRole, userID: Int64?, now: Millis, token: String = Secrets.token()
    ) throws -> Issued {
        let prefix = String(token.prefix(8))
        let id = try connection.query(
            """
            INSERT INTO api_tokens (name, role, user_id, token_hash, prefix, created_at_ms)
            VALUES ($1, $2, $3, $4, $5, $6) RETURNING id
            """, [name, role.rawValue, userID, Secrets.sha256(token), prefix, now]).int64(0, "id")!
        return Issued(id: id, token: token, prefix: prefix)
    }

    /// The principal behind a presented token; nil when unknown or revoked.
    public static func principal(_ connection: PGConnection, token: String) throws -> Principal? {
        let hash = Secrets.sha256(token)
        let rows = try connection.query(
            "SELECT id, name, role, user_id, token_hash FROM api_tokens WHERE token_hash = $1 AND revoked_at_ms IS NULL", [hash])
        guard !rows.isEmpty, let stored = rows.bytes(0, "token_hash"), Secrets.constantTimeEquals(stored, hash),
            let role = TokenRole(rawValue: rows.string(0, "role") ?? "")
        else { return nil }
        return Principal(tokenID: rows.int64(0, "id")!, name: rows.string(0, "name")!, role: role, userID: rows.int64(0, "user_id"))
    }

    /// `KLAXON_BOOTSTRAP_TOKEN`: makes that value an admin token (idempotent: a second start with
    /// the same value changes nothing). Returns false when it already existed.
    @discardableResult
    public static func bootstrap(_ connection: PGConnection, token: String, now: Millis) throws -> Bool {
        let rows = try connection.query("SELECT revoked_at_ms FROM api_tokens WHERE token_hash = $1", [Secrets.sha256(token)])
        if !rows.isEmpty { return false }
        _ = try issue(connection, name: "bootstrap", role: .admin, userID: nil, now: now, token: token)
        return true
    }

    /// Whether any admin token that is not revoked exists.
    public static func hasAdmin(_ connection: PGConnection) throws -> Bool {
        !(try connection.query("SELECT 1 FROM api_tokens WHERE role = 'admin' AND revoked_at_ms IS NULL LIMIT 1").isEmpty)
    }
}
