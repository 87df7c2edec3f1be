import Foundation
import KlaxonDomain
import Shared

/// `klaxon.notifier.v1.People`: users, their contact methods and notification rules, validated;
/// and the notifications of an incident with their state.
public struct PeopleAPI: Sendable {
    public static let maxRulesPerUser = 20
    public static let roles: Set<String> = ["admin", "responder", "observer"]
    public static var contactTypes: [String] { ChannelKind.all.map(\.name) }
    let pool: PostgresPool

    public init(pool: PostgresPool) {
        self.pool = pool
    }

    public func register(into router: inout RPCRouter) {
        router.register(People.CreateUser) { (user: UserMessage, _) in try await createUser(user) }
        router.register(People.GetUser) { (request: IDRequest, _) in
            guard let user = try await pool.withConnection({ try Self.user($0, id: Int64(request.id)) }) else {
                throw RPCError(.notFound, "user \(request.id) does not exist")
            }
            return user
        }
        router.register(People.ListUsers) { (_: Empty, _) in
            try await pool.withConnection { connection in
                let rows = try connection.query("SELECT id FROM users ORDER BY id")
                return UserListMessage(users: try (0..<rows.count).compactMap { try Self.user(connection, id: rows.int64($0, "id")!) })
            }
        }
        router.register(People.DeleteUser) { (request: IDRequest, _) in
            try await deleteUser(request.id)
        }
        router.register(People.CreateContactMethod) { (method: ContactMethodMessage, _) in try await createContactMethod(method) }
        router.register(People.DeleteContactMethod) { (request: IDRequest, _) in
            try await delete("contact_methods", request.id, what: "contact method", inUse: "a notification rule uses it")
        }
        router.register(People.CreateNotificationRule) { (rule: NotificationRuleMessage, _) in try await createRule(rule) }
        router.register(People.DeleteNotificationRule) { (request: IDRequest, _) in
            try await delete("notification_rules", request.id, what: "notification rule", inUse: "")
        }
        router.register(People.ListIncidentNotifications) { (request: IDRequest, _) in try await notifications(incident: request.id) }
    }

    func createUser(_ user: UserMessage) async throws -> UserMessage {
        var violations: [FieldViolation] = []
        let timeZone = user.timeZone.isEmpty ? "UTC" : user.timeZone
        let role = user.role.isEmpty ? "responder" : user.role
        if user.name.isEmpty || user.name.unicodeScalars.count > 255 { violations.append(.init(field: "name", description: "must be 1–255 characters")) }
        if !Address.isEmail(user.email) { violations.append(.init(field: "email", description: "must be an email address")) }
        if TimeZone(identifier: timeZone) == nil { violations.append(.init(field: "time_zone", description: "unknown time zone \"\(timeZone)\"")) }
        if !Self.roles.contains(role) { violations.append(.init(field: "role", description: "must be admin, responder or observer")) }
        if let problem = Self.chatIDProblem(user.chatID) { violations.append(.init(field: "chat_id", description: problem)) }
        guard violations.isEmpty else { throw RPCError.invalidArgument(violations) }
        let id: Int64
        do {
            id = try await pool.withConnection { connection in
                try connection.query(
                    "INSERT INTO users (name, email, time_zone, role, chat_id) VALUES ($1, $2, $3, $4, nullif($5, '')) RETURNING id",
                    [user.name, user.email, timeZone, role, user.chatID]
                ).int64(0, "id")!
            }
        } catch let error as PostgresError where error.sqlState == "23505" {
            throw RPCError(.alreadyExists, "another user has the chat id \"\(user.chatID)\"")
        }
        return UserMessage(id: UInt64(id), name: user.name, email: user.email, timeZone: timeZone, role: role, chatID: user.chatID)
    }

    /// A chat member id (Slack's look like U0123ABCD): 1–64 letters, digits, `.`, `_`, `-`; empty = none.
    public static func chatIDProblem(_ chatID: String) -> String? {
        guard !chatID.isEmpty else { return nil }
        guard chatID.count <= 64, chatID.unicodeScalars.allSatisfy({ $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "._-".unicodeScalars.contains($0)) })
        else { return "must be 1–64 letters, digits, '.', '_' or '-' (a chat member id such as U0123ABCD)" }
        return nil
    }

    func createContactMethod(_ method: ContactMethodMessage) async throws -> ContactMethodMessage {
        var violations: [FieldViolation] = []
        if let kind = ChannelKind.named(method.type) {
            if let problem = kind.addressProblem(method.address) { violations.append(.init(field: "address", description: problem)) }
        } else {
            let names = Self.contactTypes
            violations.append(.init(field: "type", description: "must be \(names.dropLast().joined(separator: ", ")) or \(names.last!)"))
        }
        if method.label.unicodeScalars.count > 255 { violations.append(.init(field: "label", description: "must be at most 255 characters")) }
        guard violations.isEmpty else { throw RPCError.invalidArgument(violations) }
        let id = try await pool.transaction { connection -> Int64 in
            guard !(try connection.query("SELECT 1 FROM users WHERE id = $1", [Int64(method.userID)]).isEmpty) else {
                throw RPCError(.notFound, "user \(method.userID) does not exist")
            }
            return try connection.query(
                "INSERT INTO contact_methods (user_id, type, address, label) VALUES ($1, $2, $3, $4) RETURNING id",
                [Int64(method.userID), method.type, method.address, method.label]).int64(0, "id")!
        }
        var created = method
        created.id = UInt64(id)
        return created
    }

    func createRule(_ rule: NotificationRuleMessage) async throws -> NotificationRuleMessage {
        guard let urgency = rule.urgency else {
            throw RPCError.invalidArgument([FieldViolation(field: "urgency", description: "must be HIGH or LOW")])
        }
        let id = try await pool.transaction { connection -> Int64 in
            // Counting under the user's row lock keeps the limit true with concurrent calls.
            guard !(try connection.query("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", [Int64(rule.userID)]).isEmpty) else {
                throw RPCError(.notFound, "user \(rule.userID) does not exist")
            }
            let count = try connection.query("SELECT count(*) AS n FROM notification_rules WHERE user_id = $1", [Int64(rule.userID)]).int(0, "n")!
            guard count < Self.maxRulesPerUser else {
                throw RPCError(.failedPrecondition, "user \(rule.userID) already has \(Self.maxRulesPerUser) notification rules, the most allowed")
            }
            guard !(try connection.query(
                "SELECT 1 FROM contact_methods WHERE id = $1 AND user_id = $2", [Int64(rule.contactMethodID), Int64(rule.userID)]).isEmpty)
            else {
                throw RPCError.invalidArgument([FieldViolation(
                    field: "contact_method_id", description: "contact method \(rule.contactMethodID) is not one of user \(rule.userID)'s")])
            }
            return try connection.query(
                "INSERT INTO notification_rules (user_id, contact_method_id, start_delay_seconds, urgency) VALUES ($1, $2, $3, $4) RETURNING id",
                [Int64(rule.userID), Int64(rule.contactMethodID), rule.startDelaySeconds, urgency.rawValue]).int64(0, "id")!
        }
        var created = rule
        created.id = UInt64(id)
        return created
    }

    /// PRODUCT.md, "Deleting things": a user on a schedule, a policy or an open incident cannot be
    /// deleted; the refusal names each reference. Their row is locked first, so a schedule or
    /// policy being saved at the same time (which KEY SHARE-locks its users) is seen.
    func deleteUser(_ id: UInt64) async throws -> Empty {
        let userID = Int64(id)
        let references = try await pool.transaction { connection -> [String] in
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
        }
        guard references.isEmpty else {
            throw RPCError(.failedPrecondition, "user \(id) is still referenced by \(references.joined(separator: "; "))")
        }
        return Empty()
    }

    func delete(_ table: String, _ id: UInt64, what: String, inUse: String) async throws -> Empty {
        do {
            let deleted = try await pool.withConnection { connection in
                try connection.query("DELETE FROM \(table) WHERE id = $1", [Int64(id)]).affectedRows
            }
            guard deleted == 1 else { throw RPCError(.notFound, "\(what) \(id) does not exist") }
        } catch let error as PostgresError where error.isForeignKeyViolation {
            throw RPCError(.failedPrecondition, "\(what) \(id) is in use: \(inUse)")
        }
        return Empty()
    }

    func notifications(incident id: UInt64) async throws -> NotificationListMessage {
        try await pool.withConnection { connection in
            let rows = try connection.query(
                """
                SELECT n.id::text AS id, n.user_id, n.rule_id, c.type, c.address, n.status, n.attempts, n.minute_zero, n.reason,
                       n.due_at_ms, n.finished_at_ms, n.last_error
                FROM notifications n JOIN contact_methods c ON c.id = n.contact_method_id
                WHERE n.incident_id = $1 ORDER BY n.due_at_ms, n.id
                """, [Int64(id)])
            return NotificationListMessage(notifications: (0..<rows.count).map { row in
                let channel = rows.string(row, "type")!
                return NotificationMessage(
                    id: rows.string(row, "id")!, userID: rows.uint64(row, "user_id")!, ruleID: rows.uint64(row, "rule_id")!,
                    channel: channel, address: AddressMask.mask(rows.string(row, "address")!, channel: channel),
                    status: rows.string(row, "status")!, attempts: UInt32(rows.int(row, "attempts")!),
                    minuteZero: rows.bool(row, "minute_zero")!, reason: NotifyReason(rawValue: rows.string(row, "reason")!),
                    dueAtMs: rows.int64(row, "due_at_ms")!, finishedAtMs: rows.int64(row, "finished_at_ms") ?? 0,
                    lastError: rows.string(row, "last_error") ?? "")
            })
        }
    }

    static func user(_ connection: PGConnection, id: Int64) throws -> UserMessage? {
        let row = try connection.query("SELECT name, email, time_zone, role, coalesce(chat_id, '') AS chat_id FROM users WHERE id = $1", [id])
        guard !row.isEmpty else { return nil }
        let methods = try connection.query("SELECT id, type, address, label FROM contact_methods WHERE user_id = $1 ORDER BY id", [id])
        let rules = try connection.query(
            "SELECT id, contact_method_id, start_delay_seconds, urgency FROM notification_rules WHERE user_id = $1 ORDER BY id", [id])
        return UserMessage(
            id: UInt64(id), name: row.string(0, "name")!, email: row.string(0, "email")!, timeZone: row.string(0, "time_zone")!,
            role: row.string(0, "role")!,
            contactMethods: (0..<methods.count).map { index in
                ContactMethodMessage(
                    id: methods.uint64(index, "id")!, userID: UInt64(id), type: methods.string(index, "type")!,
                    address: methods.string(index, "address")!, label: methods.string(index, "label")!)
            },
            notificationRules: (0..<rules.count).map { index in
                NotificationRuleMessage(
                    id: rules.uint64(index, "id")!, userID: UInt64(id), contactMethodID: rules.uint64(index, "contact_method_id")!,
                    startDelaySeconds: UInt32(rules.int(index, "start_delay_seconds")!), urgency: Urgency(rawValue: rules.string(index, "urgency")!))
            }, chatID: row.string(0, "chat_id")!)
    }

    // MARK: - Address formats
}
