import KlaxonDomain
import Shared

/// Users: who exists, who a chat user or a mention is, and the one place users, their contact
/// methods and notification rules are validated and written.
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

    /// A user by id, with the role they act with (a one-tap link, an SMS reply, a key press).
    public static func byID(_ connection: PGConnection, _ id: UInt64) throws -> Found? {
        let rows = try connection.query("SELECT id, name, role FROM users WHERE id = $1", [Int64(id)])
        guard let found = rows.uint64(0, "id") else { return nil }
        return Found(id: found, name: rows.string(0, "name")!, role: rows.string(0, "role")!)
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

// MARK: - Writing users (the People API and `klaxon apply` both write through here)

extension UserStore {
    /// The user's fields checked by `UserRules`; an invalid one throws INVALID_ARGUMENT naming
    /// each field under `prefix`.
    public static func validate(name: String?, email: String, timeZone: String, role: String, chatID: String, prefix: String = "") throws {
        let violations = UserRules.violations(name: name, email: email, timeZone: timeZone, role: role, chatID: chatID, prefix: prefix)
        guard violations.isEmpty else {
            throw RPCError.invalidArgument(violations.map { FieldViolation(field: $0.field, description: $0.description) })
        }
    }

    /// Inserts a validated user; a chat id another user has is ALREADY_EXISTS.
    public static func create(
        _ connection: PGConnection, name: String, email: String, timeZone: String, role: String, chatID: String
    ) throws -> Int64 {
        do {
            return try connection.query(
                    "INSERT INTO users (name, email, time_zone, role, chat_id) VALUES ($1, $2, $3, $4, nullif($5, '')) RETURNING id",
                    [name, email, timeZone, role, chatID]
            ).int64(0, "id")!
        } catch let error as PostgresError where error.sqlState == "23505" {
            throw RPCError(.alreadyExists, "another user has the chat id \"\(chatID)\"")
        }
    }

    public static func update(
        _ connection: PGConnection, id: Int64, name: String, timeZone: String, role: String, chatID: String
    ) throws {
        do {
            try connection.query(
                "UPDATE users SET name = $2, time_zone = $3, role = $4, chat_id = nullif($5, '') WHERE id = $1",
                [id, name, timeZone, role, chatID])
        } catch let error as PostgresError where error.sqlState == "23505" {
            throw RPCError(.alreadyExists, "another user has the chat id \"\(chatID)\"")
        }
    }

    /// A contact method of an existing user, its type and address checked by `ContactKind`. An
    /// SMS, phone or email method is sent a verification code unless `preVerified` (ContactStore).
    public static func addContactMethod(
        _ connection: PGConnection, userID: Int64, type: String, address: String, label: String, prefix: String = "",
        preVerified: Bool = false, now: Millis
    ) throws -> Int64 {
        var violations: [FieldViolation] = []
        if let problem = ContactKind.problem(type: type, address: address) {
            violations.append(FieldViolation(field: prefix + problem.field, description: problem.description))
        }
        if label.unicodeScalars.count > 255 { violations.append(FieldViolation(field: prefix + "label", description: "must be at most 255 characters")) }
        guard violations.isEmpty else { throw RPCError.invalidArgument(violations) }
        guard try exists(connection, id: userID) else { throw RPCError(.notFound, "user \(userID) does not exist") }
        let id = try connection.query(
            "INSERT INTO contact_methods (user_id, type, address, label) VALUES ($1, $2, $3, $4) RETURNING id",
            [userID, type, address, label]).int64(0, "id")!
        try ContactStore.addressSet(connection, methodID: id, type: type, preVerified: preVerified, now: now)
        return id
    }

    /// A new type or address: verified again (a code sent) unless `preVerified`. Returns whether a code was sent.
    @discardableResult
    public static func updateContactMethod(
        _ connection: PGConnection, id: Int64, type: String, address: String, prefix: String = "", preVerified: Bool = false, now: Millis
    ) throws -> Bool {
        if let problem = ContactKind.problem(type: type, address: address) {
            throw RPCError.invalidArgument([FieldViolation(field: prefix + problem.field, description: problem.description)])
        }
        try connection.query("UPDATE contact_methods SET type = $2, address = $3 WHERE id = $1", [id, type, address])
        return try ContactStore.addressSet(connection, methodID: id, type: type, preVerified: preVerified, now: now)
    }

    /// A notification rule: the user exists and has fewer than `UserRules.maxRulesPerUser` rules
    /// (counted under the user's row lock, so concurrent calls keep the limit), and the contact
    /// method is the user's.
    public static func addRule(
        _ connection: PGConnection, userID: Int64, contactMethodID: Int64, startDelaySeconds: UInt32, urgency: Urgency
    ) throws -> Int64 {
        guard !(try connection.query("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", [userID]).isEmpty) else {
            throw RPCError(.notFound, "user \(userID) does not exist")
        }
        let count = try connection.query("SELECT count(*) AS n FROM notification_rules WHERE user_id = $1", [userID]).int(0, "n")!
        guard count < UserRules.maxRulesPerUser else {
            throw RPCError(.failedPrecondition, "user \(userID) already has \(UserRules.maxRulesPerUser) notification rules, the most allowed")
        }
        guard !(try connection.query("SELECT 1 FROM contact_methods WHERE id = $1 AND user_id = $2", [contactMethodID, userID]).isEmpty)
        else {
            throw RPCError.invalidArgument([FieldViolation(
                field: "contact_method_id", description: "contact method \(contactMethodID) is not one of user \(userID)'s")])
        }
        return try insertRule(connection, userID: userID, contactMethodID: contactMethodID, startDelaySeconds: startDelaySeconds, urgency: urgency)
    }

    /// The rule's row alone, for a caller that checked the rest (`klaxon apply` checks the whole
    /// document's rules, and may remove old ones after adding new ones in one transaction).
    public static func insertRule(
        _ connection: PGConnection, userID: Int64, contactMethodID: Int64, startDelaySeconds: UInt32, urgency: Urgency
    ) throws -> Int64 {
        try connection.query(
            "INSERT INTO notification_rules (user_id, contact_method_id, start_delay_seconds, urgency) VALUES ($1, $2, $3, $4) RETURNING id",
            [userID, contactMethodID, startDelaySeconds, urgency.rawValue]).int64(0, "id")!
    }

    /// PRODUCT.md, "Deleting things": a user on a schedule, a policy or an open incident cannot be
    /// deleted; the refusal names each reference. Their row is locked first, so a schedule or
    /// policy being saved at the same time (which KEY SHARE-locks its users) is seen.
    public static func delete(_ connection: PGConnection, id: UInt64) throws {
        let userID = Int64(id)
        let references = try { () throws -> [String] in
            guard !(try connection.query("SELECT id FROM users WHERE id = $1 FOR UPDATE", [userID])).isEmpty else {
                throw RPCError(.notFound, "user \(id) does not exist")
            }
            var references: [String] = []
            let schedules = try connection.query(
                """
                SELECT id, name FROM schedules
                WHERE jsonb_path_exists(definition, '$.layers[*].users[*] ? (@ == $u)', jsonb_build_object('u', $1::bigint))
                   OR jsonb_path_exists(definition, '$.overrides[*] ? (@.user == $u)', jsonb_build_object('u', $1::bigint))
                ORDER BY id
                """, [userID])
            for row in 0..<schedules.count {
                references.append("schedule \(schedules.int64(row, "id")!) \"\(schedules.string(row, "name")!)\"")
            }
            let policies = try connection.query(
                """
                SELECT p.id, p.name, array_to_string(array_agg(DISTINCT t.level_position ORDER BY t.level_position), ',') AS levels
                FROM escalation_targets t JOIN escalation_policies p ON p.id = t.policy_id
                WHERE t.user_id = $1 GROUP BY p.id, p.name ORDER BY p.id
                """, [userID])
            for row in 0..<policies.count {
                references.append(
                    "escalation policy \(policies.int64(row, "id")!) \"\(policies.string(row, "name")!)\" (level \(policies.string(row, "levels")!))")
            }
            let incidents = try connection.query(
                """
                SELECT i.id FROM incidents i
                WHERE i.status <> 'resolved'
                  AND (EXISTS (SELECT 1 FROM incident_assignments a WHERE a.incident_id = i.id AND a.user_id = $1)
                       OR EXISTS (SELECT 1 FROM acknowledgements k WHERE k.incident_id = i.id AND k.user_id = $1))
                ORDER BY i.id LIMIT 51
                """, [userID])
            let ids = (0..<min(incidents.count, 50)).map { String(incidents.int64($0, "id")!) }
            if !ids.isEmpty {
                references.append("open incident\(ids.count == 1 ? "" : "s") \(ids.joined(separator: ", "))\(incidents.count > 50 ? " and more" : "")")
            }
            guard references.isEmpty else { return references }
            do {
                try connection.savepoint { _ = try connection.query("DELETE FROM users WHERE id = $1", [userID]) }
            } catch let error as PostgresError where error.isForeignKeyViolation {
                return ["the history of resolved incidents (assignments, acknowledgements), kept for postmortems"]
            }
            return []
        }()
        guard references.isEmpty else {
            throw RPCError(.failedPrecondition, "user \(id) is still referenced by \(references.joined(separator: "; "))")
        }
    }


    /// Every user with their contact methods and rules, by id.
    public static func all(_ connection: PGConnection) throws -> [UserMessage] {
        let rows = try connection.query("SELECT id FROM users WHERE NOT system ORDER BY id")
        return try (0..<rows.count).compactMap { try user(connection, id: rows.int64($0, "id")!) }
    }

    /// The user with their contact methods and rules, or nil.
    public static func user(_ connection: PGConnection, id: Int64) throws -> UserMessage? {
        let row = try connection.query("SELECT name, email, time_zone, role, coalesce(chat_id, '') AS chat_id FROM users WHERE id = $1", [id])
        guard !row.isEmpty else { return nil }
        let methods = try connection.query("SELECT id, type, address, label FROM contact_methods WHERE user_id = $1 ORDER BY id", [id])
        let rules = try connection.query(
            "SELECT id, contact_method_id, start_delay_seconds, urgency FROM notification_rules WHERE user_id = $1 ORDER BY id", [id])
        var contactMethods = (0..<methods.count).map { index in
            ContactMethodMessage(
                id: methods.uint64(index, "id")!, userID: UInt64(id), type: methods.string(index, "type")!,
                address: methods.string(index, "address")!, label: methods.string(index, "label")!)
        }
        try ContactStore.annotate(connection, &contactMethods)
        return UserMessage(
            id: UInt64(id), name: row.string(0, "name")!, email: row.string(0, "email")!, timeZone: row.string(0, "time_zone")!,
            role: row.string(0, "role")!,
            contactMethods: contactMethods,
            notificationRules: (0..<rules.count).map { index in
                NotificationRuleMessage(
                    id: rules.uint64(index, "id")!, userID: UInt64(id), contactMethodID: rules.uint64(index, "contact_method_id")!,
                    startDelaySeconds: UInt32(rules.int(index, "start_delay_seconds")!), urgency: Urgency(rawValue: rules.string(index, "urgency")!))
            }, chatID: row.string(0, "chat_id")!)
    }

}
