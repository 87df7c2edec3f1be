import KlaxonDomain
import Shared

/// Reading users for the response wing and chat: who exists, who a chat user or a mention is.
public enum UserStore {
    public static func exists(_ connection: PGConnection, id: Int64) throws -> Bool {
        !(try connection.query("SELECT 1 FROM users WHERE id = $1", [id]).isEmpty)
    }

    /// Names by id (unknown ids are left out).
    public static func names(_ connection: PGConnection, ids: [UInt64]) throws -> [UInt64: String] {
        let rows = try connection.query("SELECT id, name FROM users WHERE id = ANY($1::bigint[])", [PGArray(ids.map(Int64.init))])
        var names: [UInt64: String] = [:]
        for row in 0..<rows.count { names[rows.uint64(row, "id")!] = rows.string(row, "name")! }
        return names
    }

    public struct Found: Sendable {
        public var id: UInt64
        public var name: String
        public var role: String
    }

    /// The one user whose chat id is `chatID`, else whose email is `email` (case-insensitive).
    public static func byChat(_ connection: PGConnection, chatID: String, email: String) throws -> Found? {
        var rows = try connection.query("SELECT id, name, role FROM users WHERE chat_id = $1", [chatID])
        if rows.count != 1, !email.isEmpty {
            rows = try connection.query("SELECT id, name, role FROM users WHERE lower(email) = lower($1)", [email])
        }
        guard rows.count == 1 else { return nil }
        return Found(id: rows.uint64(0, "id")!, name: rows.string(0, "name")!, role: rows.string(0, "role")!)
    }

    /// The one user a mention names: by chat id, email, name (case-insensitive) or id, in that order.
    public static func mentioned(_ connection: PGConnection, _ key: String) throws -> Found? {
        for sql in [
            "SELECT id, name, role FROM users WHERE chat_id = $1",
            "SELECT id, name, role FROM users WHERE lower(email) = lower($1)",
            "SELECT id, name, role FROM users WHERE lower(name) = lower($1)",
            "SELECT id, name, role FROM users WHERE id::text = $1",
        ] {
            let rows = try connection.query(sql, [key])
            if rows.count == 1 { return Found(id: rows.uint64(0, "id")!, name: rows.string(0, "name")!, role: rows.string(0, "role")!) }
        }
        return nil
    }
}
