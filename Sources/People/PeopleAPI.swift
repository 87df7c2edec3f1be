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
    let clock: any WallClock
    /// Pokes Notifier's sender of codes and test pages when this process is Notifier (others poll).
    let noticeWaker: Waker?
    /// How long TestPage waits for its outcomes before answering with those still pending.
    let testPageWaitMs: Millis

    public init(pool: PostgresPool, clock: any WallClock = SystemWallClock(), noticeWaker: Waker? = nil, testPageWaitMs: Millis = 30_000) {
        self.pool = pool
        self.clock = clock
        self.noticeWaker = noticeWaker
        self.testPageWaitMs = testPageWaitMs
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
        router.register(People.VerifyContactMethod) { (request: VerifyContactRequest, context) in try await verify(request, context) }
        router.register(People.SendVerificationCode) { (request: IDRequest, context) in try await sendCode(request.id, context) }
        router.register(People.TestPage) { (request: IDRequest, context) in try await testPage(user: request.id, context) }
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

    /// Created unverified, with a code sent, when its kind needs one (`verified` pre-verifies:
    /// this method is an admin's).
    func createContactMethod(_ method: ContactMethodMessage) async throws -> ContactMethodMessage {
        let now = clock.nowMs()
        let created = try await pool.transaction { connection in
            let id = try UserStore.addContactMethod(
                connection, userID: Int64(method.userID), type: method.type, address: method.address, label: method.label,
                preVerified: method.verified, now: now)
            return try Self.contactMethod(connection, id: id)
        }
        noticeWaker?.poke()
        return created
    }

    static func contactMethod(_ connection: PGConnection, id: Int64) throws -> ContactMethodMessage {
        let rows = try connection.query("SELECT user_id, type, address, label FROM contact_methods WHERE id = $1", [id])
        guard !rows.isEmpty else { throw RPCError(.notFound, "contact method \(id) does not exist") }
        var methods = [ContactMethodMessage(
            id: UInt64(id), userID: rows.uint64(0, "user_id")!, type: rows.string(0, "type")!, address: rows.string(0, "address")!,
            label: rows.string(0, "label")!)]
        try ContactStore.annotate(connection, &methods)
        return methods[0]
    }

    /// The method's owner, checked against the caller (an admin, or the responder it belongs to).
    func owned(_ connection: PGConnection, _ id: UInt64, _ context: RPCContext) throws -> ContactStore.Method {
        guard let method = try ContactStore.method(connection, id: Int64(id)) else {
            throw RPCError(.notFound, "contact method \(id) does not exist")
        }
        try context.mayManageContacts(of: method.userID)
        return method
    }

    func verify(_ request: VerifyContactRequest, _ context: RPCContext) async throws -> ContactMethodMessage {
        let code = request.code.trimmingCharacters(in: .whitespaces)
        guard ContactVerification.isWellFormed(code) else {
            throw RPCError.invalidArgument([FieldViolation(field: "code", description: "must be the 6 digits sent to the address")])
        }
        let now = clock.nowMs()
        let id = request.contactMethodID
        // A wrong try is committed (it costs one), then refused.
        let (verdict, method) = try await pool.transaction { connection in
            _ = try owned(connection, id, context)
            let verdict = try ContactStore.verify(connection, methodID: Int64(id), code: code, now: now)
            return (verdict, try Self.contactMethod(connection, id: Int64(id)))
        }
        let newCode = "ask for a new one with klaxon contact send-code \(id)"
        switch verdict {
        case .verified: return method
        case let .wrong(left) where left > 0:
            throw RPCError(.failedPrecondition, "wrong code for contact method \(id): \(left) \(left == 1 ? "try" : "tries") left")
        case .wrong, .exhausted:
            throw RPCError(.failedPrecondition, "wrong code for contact method \(id), and no tries left: \(newCode)")
        case .expired:
            throw RPCError(.failedPrecondition, "the code for contact method \(id) expired (codes last 10 minutes): \(newCode)")
        case .noCode:
            throw RPCError(.failedPrecondition, "contact method \(id) has no code waiting: \(newCode)")
        }
    }

    func sendCode(_ id: UInt64, _ context: RPCContext) async throws -> ContactMethodMessage {
        let now = clock.nowMs()
        let method = try await pool.transaction { connection in
            _ = try owned(connection, id, context)
            try ContactStore.resend(connection, methodID: Int64(id), now: now)
            return try Self.contactMethod(connection, id: Int64(id))
        }
        noticeWaker?.poke()
        return method
    }

    /// A test page through every verified method of the user; waits (up to `testPageWaitMs`) for
    /// each outcome. An unverified method is listed as skipped, with how to verify it.
    func testPage(user id: UInt64, _ context: RPCContext) async throws -> TestPageReply {
        let userID = Int64(id)
        try context.mayManageContacts(of: userID)
        let now = clock.nowMs()
        let batch = try await pool.transaction { connection in try ContactStore.testPage(connection, userID: userID, now: now) }
        noticeWaker?.poke()
        let deadline = ContinuousClock.now + .milliseconds(testPageWaitMs)
        while ContinuousClock.now < deadline {
            if try await pool.withConnection({ try ContactStore.testPending($0, batch: batch) }) == 0 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        return TestPageReply(outcomes: try await pool.withConnection { connection in
            try ContactStore.testOutcomes(connection, userID: userID, batch: batch).map { outcome in
                var outcome = outcome
                if outcome.status == "pending" { outcome.detail = "no outcome within \(testPageWaitMs / 1000) s; still trying" }
                return outcome
            }
        })
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
