import IncidentEngine
import KlaxonDomain
import Shared

/// `klaxon.assignment.v1.Admin`: escalation policies and schedules, validated with the limits
/// of PRODUCT.md; who is on call for a schedule or policy at an instant.
public struct AdminAPI: Sendable {
    let pool: PostgresPool
    let clock: any WallClock
    let authenticator: TokenAuthenticator?

    public init(pool: PostgresPool, clock: any WallClock, authenticator: TokenAuthenticator? = nil) {
        self.pool = pool
        self.clock = clock
        self.authenticator = authenticator
    }

    public func register(into router: inout RPCRouter) {
        registerServices(into: &router)
        registerTokens(into: &router)
        registerConfiguration(into: &router)
        registerFeeds(into: &router)
        registerMonitors(into: &router)
        registerWebhooks(into: &router)
        router.register(Admin.CreateEscalationPolicy) { (request: PolicyMessage, _) in try await savePolicy(request, create: true) }
        router.register(Admin.UpdateEscalationPolicy) { (request: PolicyMessage, _) in try await savePolicy(request, create: false) }
        router.register(Admin.GetEscalationPolicy) { (request: AdminIDRequest, _) in
            guard let policy = try await pool.withConnection({ try Self.policyMessage($0, id: Int64(request.id)) }) else {
                throw RPCError(.notFound, "escalation policy \(request.id) does not exist")
            }
            return policy
        }
        router.register(Admin.ListEscalationPolicies) { (_: Empty, _) in
            try await pool.withConnection { connection in
                let rows = try connection.query("SELECT id FROM escalation_policies WHERE NOT system ORDER BY id")
                return PolicyListMessage(policies: try (0..<rows.count).compactMap { try Self.policyMessage(connection, id: rows.int64($0, "id")!) })
            }
        }
        router.register(Admin.DeleteEscalationPolicy) { (request: AdminIDRequest, _) in
            try await pool.transaction { connection in
                let users = try connection.query("SELECT name FROM services WHERE escalation_policy_id = $1 ORDER BY id", [Int64(request.id)])
                guard users.isEmpty else {
                    let names = (0..<users.count).compactMap { users.string($0, "name") }.joined(separator: ", ")
                    throw RPCError(.failedPrecondition, "escalation policy \(request.id) is used by service(s) \(names)")
                }
                guard try connection.query("DELETE FROM escalation_policies WHERE id = $1", [Int64(request.id)]).affectedRows == 1 else {
                    throw RPCError(.notFound, "escalation policy \(request.id) does not exist")
                }
            }
            return Empty()
        }
        router.register(Admin.CreateSchedule) { (request: ScheduleMessage, _) in try await saveSchedule(request, create: true) }
        router.register(Admin.UpdateSchedule) { (request: ScheduleMessage, _) in try await saveSchedule(request, create: false) }
        router.register(Admin.GetSchedule) { (request: AdminIDRequest, _) in
            guard let found = try await pool.withConnection({ try ScheduleStore.load($0, ids: [Int64(request.id)])[Int64(request.id)] }) else {
                throw RPCError(.notFound, "schedule \(request.id) does not exist")
            }
            return Self.scheduleMessage(id: request.id, name: found.name, found.schedule)
        }
        router.register(Admin.ListSchedules) { (_: Empty, _) in
            try await pool.withConnection { connection in
                let rows = try connection.query("SELECT id FROM schedules ORDER BY id")
                let ids = (0..<rows.count).map { rows.int64($0, "id")! }
                let schedules = try ScheduleStore.load(connection, ids: ids)
                return ScheduleListMessage(schedules: ids.compactMap { id in
                    schedules[id].map { Self.scheduleMessage(id: UInt64(id), name: $0.name, $0.schedule) }
                })
            }
        }
        router.register(Admin.DeleteSchedule) { (request: AdminIDRequest, _) in
            try await pool.transaction { connection in
                let used = try connection.query(
                    "SELECT DISTINCT policy_id FROM escalation_targets WHERE schedule_id = $1 ORDER BY policy_id", [Int64(request.id)])
                guard used.isEmpty else {
                    let ids = (0..<used.count).compactMap { used.string($0, "policy_id") }.joined(separator: ", ")
                    throw RPCError(.failedPrecondition, "schedule \(request.id) is a target of escalation policy \(ids)")
                }
                guard try connection.query("DELETE FROM schedules WHERE id = $1", [Int64(request.id)]).affectedRows == 1 else {
                    throw RPCError(.notFound, "schedule \(request.id) does not exist")
                }
            }
            return Empty()
        }
        router.register(Admin.WhoIsOnCall) { (request: WhoIsOnCallRequest, _) in try await whoIsOnCall(request) }
    }

    // MARK: - Policies

    static func domainPolicy(_ message: PolicyMessage) throws -> EscalationPolicy {
        var violations: [FieldViolation] = []
        if message.name.isEmpty || message.name.unicodeScalars.count > 255 {
            violations.append(FieldViolation(field: "name", description: "must be 1–255 characters"))
        }
        var levels: [EscalationLevel] = []
        var levelsWithBadTargets = Set<Int>()
        for (levelIndex, level) in message.levels.enumerated() {
            var targets: [EscalationTarget] = []
            for (targetIndex, target) in level.targets.enumerated() {
                switch (target.userID, target.scheduleID) {
                case let (user, 0) where user != 0: targets.append(.user(user))
                case let (0, schedule) where schedule != 0: targets.append(.schedule(schedule))
                default:
                    levelsWithBadTargets.insert(levelIndex)
                    violations.append(FieldViolation(
                        field: "levels[\(levelIndex)].targets[\(targetIndex)]", description: "set exactly one of user_id and schedule_id"))
                }
            }
            levels.append(EscalationLevel(delaySeconds: level.escalationDelaySeconds, targets: targets))
        }
        let policy = EscalationPolicy(levels: levels, numLoops: Int(message.numLoops))
        // A level whose targets were already named is not reported again as short of targets.
        violations += policy.violations()
            .filter { violation in !levelsWithBadTargets.contains { violation.field == "levels[\($0)].targets" } }
            .map { FieldViolation(field: $0.field, description: $0.description) }
        guard violations.isEmpty else { throw RPCError.invalidArgument(violations) }
        return policy
    }

    func savePolicy(_ message: PolicyMessage, create: Bool) async throws -> PolicyMessage {
        _ = try Self.domainPolicy(message)  // validates; the message is what is written
        if !create, message.id == 0 { throw RPCError.invalidArgument([FieldViolation(field: "id", description: "is required")]) }
        let id = try await pool.transaction { connection in try Self.writePolicy(connection, message, create: create) }
        var saved = message
        saved.id = UInt64(id)
        return saved
    }

    /// Writes a policy (validated again here) in the caller's transaction; returns its id.
    static func writePolicy(_ connection: PGConnection, _ message: PolicyMessage, create: Bool) throws -> Int64 {
            let policy = try Self.domainPolicy(message)
            try Self.checkTargetsExist(policy, connection: connection)
            let id: Int64
            if create {
                id = try connection.query(
                    "INSERT INTO escalation_policies (name, num_loops) VALUES ($1, $2) RETURNING id", [message.name, policy.numLoops]
                ).int64(0, "id")!
            } else {
                id = Int64(message.id)
                guard try connection.query(
                    "UPDATE escalation_policies SET name = $2, num_loops = $3 WHERE id = $1", [id, message.name, policy.numLoops]
                ).affectedRows == 1 else { throw RPCError(.notFound, "escalation policy \(message.id) does not exist") }
                try connection.query("DELETE FROM escalation_levels WHERE policy_id = $1", [id])
            }
            for (levelIndex, level) in policy.levels.enumerated() {
                try connection.query(
                    "INSERT INTO escalation_levels (policy_id, position, escalation_delay_seconds) VALUES ($1, $2, $3)",
                    [id, levelIndex + 1, level.delaySeconds])
                for (targetIndex, target) in level.targets.enumerated() {
                    let (user, schedule): (Int64?, Int64?) = switch target {
                    case let .user(user): (Int64(user), nil)
                    case let .schedule(schedule): (nil, Int64(schedule))
                    }
                    try connection.query(
                        "INSERT INTO escalation_targets (policy_id, level_position, position, user_id, schedule_id) VALUES ($1, $2, $3, $4, $5)",
                        [id, levelIndex + 1, targetIndex + 1, user, schedule])
                }
            }
            return id
    }

    static func checkTargetsExist(_ policy: EscalationPolicy, connection: PGConnection) throws {
        var violations: [FieldViolation] = []
        for (levelIndex, level) in policy.levels.enumerated() {
            for (targetIndex, target) in level.targets.enumerated() {
                let (table, id, what): (String, UInt64, String) = switch target {
                case let .user(id): ("users", id, "user")
                case let .schedule(id): ("schedules", id, "schedule")
                }
                if try connection.query("SELECT 1 FROM \(table) WHERE id = $1", [Int64(id)]).isEmpty {
                    violations.append(FieldViolation(field: "levels[\(levelIndex)].targets[\(targetIndex)]", description: "\(what) \(id) does not exist"))
                }
            }
        }
        guard violations.isEmpty else { throw RPCError.invalidArgument(violations) }
    }

    static func policyMessage(_ connection: PGConnection, id: Int64) throws -> PolicyMessage? {
        let row = try connection.query("SELECT name FROM escalation_policies WHERE id = $1", [id])
        guard let name = row.string(0, "name"), !row.isEmpty, let policy = try IncidentStore.policy(connection, id: id) else { return nil }
        return PolicyMessage(
            id: UInt64(id), name: name,
            levels: policy.levels.map { level in
                PolicyLevelMessage(escalationDelaySeconds: level.delaySeconds, targets: level.targets.map { target in
                    switch target {
                    case let .user(user): PolicyTargetMessage(userID: user)
                    case let .schedule(schedule): PolicyTargetMessage(scheduleID: schedule)
                    }
                })
            },
            numLoops: UInt32(policy.numLoops))
    }

    // MARK: - Schedules

    static func domainSchedule(_ message: ScheduleMessage) throws -> Schedule {
        var violations: [FieldViolation] = []
        if message.name.isEmpty { violations.append(FieldViolation(field: "name", description: "is required")) }
        var layers: [ScheduleLayer] = []
        for (index, layer) in message.layers.enumerated() {
            var restrictions: [ScheduleRestriction] = []
            for (restrictionIndex, restriction) in layer.restrictions.enumerated() {
                switch restriction.kind {
                case .daily: restrictions.append(.daily(startSecondOfDay: Int(restriction.startSecondOfDay), durationSeconds: Int(restriction.durationSeconds)))
                case .weekly:
                    restrictions.append(.weekly(
                        weekday: Int(restriction.weekday), startSecondOfDay: Int(restriction.startSecondOfDay),
                        durationSeconds: Int(restriction.durationSeconds)))
                default:
                    violations.append(FieldViolation(field: "layers[\(index)].restrictions[\(restrictionIndex)].kind", description: "must be DAILY or WEEKLY"))
                }
            }
            layers.append(ScheduleLayer(
                users: layer.userIDs, rotationVirtualStart: layer.rotationVirtualStartMs, turnLengthSeconds: layer.rotationTurnLengthSeconds,
                restrictions: restrictions, start: layer.startMs == 0 ? nil : layer.startMs, end: layer.endMs == 0 ? nil : layer.endMs))
        }
        let schedule = Schedule(
            timeZone: message.timeZone, layers: layers,
            overrides: message.overrides.map { ScheduleOverride(user: $0.userID, start: $0.startMs, end: $0.endMs) })
        violations += schedule.violations().map { FieldViolation(field: $0.field, description: $0.description) }
        guard violations.isEmpty else { throw RPCError.invalidArgument(violations) }
        return schedule
    }

    func saveSchedule(_ message: ScheduleMessage, create: Bool) async throws -> ScheduleMessage {
        let schedule = try Self.domainSchedule(message)
        if !create, message.id == 0 { throw RPCError.invalidArgument([FieldViolation(field: "id", description: "is required")]) }
        let users = Array(Set(schedule.layers.flatMap(\.users) + schedule.overrides.map(\.user)))
        let id = try await pool.transaction { connection -> Int64 in
            // KEY SHARE: a concurrent DeleteUser waits for this schedule and then sees it.
            let found = try connection.query(
                "SELECT id FROM users WHERE id = ANY($1::bigint[]) FOR KEY SHARE", [PGArray(users.map(Int64.init))])
            guard found.count == users.count else {
                throw RPCError.invalidArgument([FieldViolation(field: "layers", description: "refers to a user that does not exist")])
            }
            let definition = ScheduleStore.encode(schedule)
            if create {
                return try connection.query(
                    "INSERT INTO schedules (name, time_zone, definition) VALUES ($1, $2, $3::jsonb) RETURNING id",
                    [message.name, schedule.timeZone, definition]).int64(0, "id")!
            }
            guard try connection.query(
                "UPDATE schedules SET name = $2, time_zone = $3, definition = $4::jsonb WHERE id = $1",
                [Int64(message.id), message.name, schedule.timeZone, definition]).affectedRows == 1
            else { throw RPCError(.notFound, "schedule \(message.id) does not exist") }
            return Int64(message.id)
        }
        return Self.scheduleMessage(id: UInt64(id), name: message.name, schedule)
    }

    static func scheduleMessage(id: UInt64, name: String, _ schedule: Schedule) -> ScheduleMessage {
        ScheduleMessage(
            id: id, name: name, timeZone: schedule.timeZone,
            layers: schedule.layers.map { layer in
                LayerMessage(
                    userIDs: layer.users, rotationVirtualStartMs: layer.rotationVirtualStart, rotationTurnLengthSeconds: layer.turnLengthSeconds,
                    restrictions: layer.restrictions.map { restriction in
                        switch restriction {
                        case let .daily(start, duration):
                            RestrictionMessage(kind: .daily, startSecondOfDay: UInt32(start), durationSeconds: UInt32(duration))
                        case let .weekly(weekday, start, duration):
                            RestrictionMessage(kind: .weekly, weekday: UInt32(weekday), startSecondOfDay: UInt32(start), durationSeconds: UInt32(duration))
                        }
                    },
                    startMs: layer.start ?? 0, endMs: layer.end ?? 0)
            },
            overrides: schedule.overrides.map { OverrideMessage(userID: $0.user, startMs: $0.start, endMs: $0.end) })
    }

    // MARK: - Who is on call

    func whoIsOnCall(_ request: WhoIsOnCallRequest) async throws -> WhoIsOnCallReply {
        guard (request.scheduleID == 0) != (request.policyID == 0) else {
            throw RPCError.invalidArgument([FieldViolation(field: "schedule_id", description: "set exactly one of schedule_id and policy_id")])
        }
        let at = request.atMs == 0 ? clock.nowMs() : request.atMs
        return try await pool.withConnection { connection in
            if request.scheduleID != 0 {
                guard let found = try ScheduleStore.load(connection, ids: [Int64(request.scheduleID)])[Int64(request.scheduleID)] else {
                    throw RPCError(.notFound, "schedule \(request.scheduleID) does not exist")
                }
                return WhoIsOnCallReply(userIDs: found.schedule.onCall(at: at))
            }
            guard let policy = try IncidentStore.policy(connection, id: Int64(request.policyID)) else {
                throw RPCError(.notFound, "escalation policy \(request.policyID) does not exist")
            }
            let core = IncidentCore(policy: policy, settings: IncidentSettings(), schedules: try ScheduleStore.schedules(connection, for: policy))
            let levels = policy.levels.indices.map { index in
                WhoIsOnCallReply.Level(level: UInt32(index + 1), userIDs: core.assignees(ofLevel: index + 1, at: at))
            }
            return WhoIsOnCallReply(userIDs: levels.first?.userIDs ?? [], levels: levels)
        }
    }
}
