import Foundation
import IncidentEngine
import KlaxonDomain
import Shared

/// `klaxon.notifier.v1.People`: users, their contact methods and notification rules, validated;
/// and the notifications of an incident with their state. Served by Notifier, whose package it is,
/// and by Assignment, so one address (the CLI's) serves every operator call. The rules and the
/// writes are `UserStore`'s, which `klaxon apply` shares.
public struct PeopleAPI: Sendable {
    let pool: PostgresPool

    public init(pool: PostgresPool) {
        self.pool = pool
    }

    public func register(into router: inout RPCRouter) {
        router.register(People.CreateUser) { (user: UserMessage, _) in try await createUser(user) }
        router.register(People.GetUser) { (request: IDRequest, _) in
            guard let user = try await pool.withConnection({ try UserStore.user($0, id: Int64(request.id)) }) else {
                throw RPCError(.notFound, "user \(request.id) does not exist")
            }
            return user
        }
        router.register(People.ListUsers) { (_: Empty, _) in
            UserListMessage(users: try await pool.withConnection { try UserStore.all($0) })
        }
        router.register(People.DeleteUser) { (request: IDRequest, _) in
            try await pool.transaction { try UserStore.delete($0, id: request.id) }
            return Empty()
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
        let timeZone = user.timeZone.isEmpty ? UserRules.defaultTimeZone : user.timeZone
        let role = user.role.isEmpty ? UserRules.defaultRole : user.role
        try UserStore.validate(name: user.name, email: user.email, timeZone: timeZone, role: role, chatID: user.chatID)
        let id = try await pool.transaction { connection in
            try UserStore.create(connection, name: user.name, email: user.email, timeZone: timeZone, role: role, chatID: user.chatID)
        }
        return UserMessage(id: UInt64(id), name: user.name, email: user.email, timeZone: timeZone, role: role, chatID: user.chatID)
    }

    func createContactMethod(_ method: ContactMethodMessage) async throws -> ContactMethodMessage {
        let id = try await pool.transaction { connection in
            try UserStore.addContactMethod(
                connection, userID: Int64(method.userID), type: method.type, address: method.address, label: method.label)
        }
        var created = method
        created.id = UInt64(id)
        return created
    }

    func createRule(_ rule: NotificationRuleMessage) async throws -> NotificationRuleMessage {
        guard let urgency = rule.urgency else {
            throw RPCError.invalidArgument([FieldViolation(field: "urgency", description: "must be HIGH or LOW")])
        }
        let id = try await pool.transaction { connection in
            try UserStore.addRule(
                connection, userID: Int64(rule.userID), contactMethodID: Int64(rule.contactMethodID),
                startDelaySeconds: rule.startDelaySeconds, urgency: urgency)
        }
        var created = rule
        created.id = UInt64(id)
        return created
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
}
