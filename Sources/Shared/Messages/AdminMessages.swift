import CProtobufC
import KlaxonDomain
import KlaxonProto

/// Wire forms of `klaxon.assignment.v1.Admin`. They carry what the client sent (zero = unset);
/// the handlers validate and turn them into domain values.
public enum AdminMethod {
    public static let createPolicy = "klaxon.assignment.v1.Admin/CreateEscalationPolicy"
    public static let updatePolicy = "klaxon.assignment.v1.Admin/UpdateEscalationPolicy"
    public static let getPolicy = "klaxon.assignment.v1.Admin/GetEscalationPolicy"
    public static let listPolicies = "klaxon.assignment.v1.Admin/ListEscalationPolicies"
    public static let deletePolicy = "klaxon.assignment.v1.Admin/DeleteEscalationPolicy"
    public static let createSchedule = "klaxon.assignment.v1.Admin/CreateSchedule"
    public static let updateSchedule = "klaxon.assignment.v1.Admin/UpdateSchedule"
    public static let getSchedule = "klaxon.assignment.v1.Admin/GetSchedule"
    public static let listSchedules = "klaxon.assignment.v1.Admin/ListSchedules"
    public static let deleteSchedule = "klaxon.assignment.v1.Admin/DeleteSchedule"
    public static let whoIsOnCall = "klaxon.assignment.v1.Admin/WhoIsOnCall"
}

public struct PolicyTargetMessage: Sendable, Equatable, CBridged {
    public var userID: UInt64
    public var scheduleID: UInt64
    public init(userID: UInt64 = 0, scheduleID: UInt64 = 0) {
        self.userID = userID
        self.scheduleID = scheduleID
    }
    nonisolated(unsafe) static let descriptor = descriptorOf { klaxon__assignment__v1__policy_target__init($0) }
    init(c: UnsafePointer<Klaxon__Assignment__V1__PolicyTarget>) {
        userID = c.pointee.user_id
        scheduleID = c.pointee.schedule_id
    }
    func fill(_ c: UnsafeMutablePointer<Klaxon__Assignment__V1__PolicyTarget>, arena: CArena) {
        c.pointee.user_id = userID
        c.pointee.schedule_id = scheduleID
    }
}

public struct PolicyLevelMessage: Sendable, Equatable, CBridged {
    public var escalationDelaySeconds: UInt32
    public var targets: [PolicyTargetMessage]
    public init(escalationDelaySeconds: UInt32, targets: [PolicyTargetMessage]) {
        self.escalationDelaySeconds = escalationDelaySeconds
        self.targets = targets
    }
    nonisolated(unsafe) static let descriptor = descriptorOf { klaxon__assignment__v1__policy_level__init($0) }
    init(c: UnsafePointer<Klaxon__Assignment__V1__PolicyLevel>) throws(WireError) {
        escalationDelaySeconds = c.pointee.escalation_delay_seconds
        targets = try CRead.messages(c.pointee.n_targets, c.pointee.targets, field: "targets")
    }
    func fill(_ c: UnsafeMutablePointer<Klaxon__Assignment__V1__PolicyLevel>, arena: CArena) {
        c.pointee.escalation_delay_seconds = escalationDelaySeconds
        (c.pointee.n_targets, c.pointee.targets) = arena.messages(targets)
    }
}

public struct PolicyMessage: Sendable, Equatable, CBridged {
    public var id: UInt64
    public var name: String
    public var levels: [PolicyLevelMessage]
    public var numLoops: UInt32
    public init(id: UInt64 = 0, name: String, levels: [PolicyLevelMessage], numLoops: UInt32 = 0) {
        self.id = id
        self.name = name
        self.levels = levels
        self.numLoops = numLoops
    }
    nonisolated(unsafe) static let descriptor = descriptorOf { klaxon__assignment__v1__escalation_policy__init($0) }
    init(c: UnsafePointer<Klaxon__Assignment__V1__EscalationPolicy>) throws(WireError) {
        id = c.pointee.id
        name = CRead.string(c.pointee.name)
        levels = try CRead.messages(c.pointee.n_levels, c.pointee.levels, field: "levels")
        numLoops = c.pointee.num_loops
    }
    func fill(_ c: UnsafeMutablePointer<Klaxon__Assignment__V1__EscalationPolicy>, arena: CArena) {
        c.pointee.id = id
        c.pointee.name = arena.string(name)
        (c.pointee.n_levels, c.pointee.levels) = arena.messages(levels)
        c.pointee.num_loops = numLoops
    }
}

public struct AdminIDRequest: Sendable, Equatable, CBridged {
    public var id: UInt64
    public init(id: UInt64) { self.id = id }
    nonisolated(unsafe) static let descriptor = descriptorOf { klaxon__assignment__v1__admin_id_request__init($0) }
    init(c: UnsafePointer<Klaxon__Assignment__V1__AdminIdRequest>) { id = c.pointee.id }
    func fill(_ c: UnsafeMutablePointer<Klaxon__Assignment__V1__AdminIdRequest>, arena: CArena) { c.pointee.id = id }
}

public struct PolicyListMessage: Sendable, Equatable, CBridged {
    public var policies: [PolicyMessage]
    public init(policies: [PolicyMessage]) { self.policies = policies }
    nonisolated(unsafe) static let descriptor = descriptorOf { klaxon__assignment__v1__escalation_policy_list__init($0) }
    init(c: UnsafePointer<Klaxon__Assignment__V1__EscalationPolicyList>) throws(WireError) {
        policies = try CRead.messages(c.pointee.n_policies, c.pointee.policies, field: "policies")
    }
    func fill(_ c: UnsafeMutablePointer<Klaxon__Assignment__V1__EscalationPolicyList>, arena: CArena) {
        (c.pointee.n_policies, c.pointee.policies) = arena.messages(policies)
    }
}

public struct RestrictionMessage: Sendable, Equatable, CBridged {
    /// 1 daily, 2 weekly (wire numbers of RestrictionKind).
    public var kind: UInt32
    public var weekday: UInt32
    public var startSecondOfDay: UInt32
    public var durationSeconds: UInt32
    public init(kind: UInt32, weekday: UInt32 = 0, startSecondOfDay: UInt32, durationSeconds: UInt32) {
        self.kind = kind
        self.weekday = weekday
        self.startSecondOfDay = startSecondOfDay
        self.durationSeconds = durationSeconds
    }
    nonisolated(unsafe) static let descriptor = descriptorOf { klaxon__assignment__v1__schedule_restriction__init($0) }
    init(c: UnsafePointer<Klaxon__Assignment__V1__ScheduleRestriction>) {
        kind = c.pointee.kind.rawValue
        weekday = c.pointee.weekday
        startSecondOfDay = c.pointee.start_second_of_day
        durationSeconds = c.pointee.duration_seconds
    }
    func fill(_ c: UnsafeMutablePointer<Klaxon__Assignment__V1__ScheduleRestriction>, arena: CArena) {
        c.pointee.kind = Klaxon__Assignment__V1__RestrictionKind(rawValue: kind)
        c.pointee.weekday = weekday
        c.pointee.start_second_of_day = startSecondOfDay
        c.pointee.duration_seconds = durationSeconds
    }
}

public struct LayerMessage: Sendable, Equatable, CBridged {
    public var userIDs: [UInt64]
    public var rotationVirtualStartMs: Int64
    public var rotationTurnLengthSeconds: UInt32
    public var restrictions: [RestrictionMessage]
    public var startMs: Int64
    public var endMs: Int64
    public init(
        userIDs: [UInt64], rotationVirtualStartMs: Int64, rotationTurnLengthSeconds: UInt32,
        restrictions: [RestrictionMessage] = [], startMs: Int64 = 0, endMs: Int64 = 0
    ) {
        self.userIDs = userIDs
        self.rotationVirtualStartMs = rotationVirtualStartMs
        self.rotationTurnLengthSeconds = rotationTurnLengthSeconds
        self.restrictions = restrictions
        self.startMs = startMs
        self.endMs = endMs
    }
    nonisolated(unsafe) static let descriptor = descriptorOf { klaxon__assignment__v1__schedule_layer__init($0) }
    init(c: UnsafePointer<Klaxon__Assignment__V1__ScheduleLayer>) throws(WireError) {
        userIDs = CRead.scalars(c.pointee.n_user_ids, c.pointee.user_ids)
        rotationVirtualStartMs = c.pointee.rotation_virtual_start_ms
        rotationTurnLengthSeconds = c.pointee.rotation_turn_length_seconds
        restrictions = try CRead.messages(c.pointee.n_restrictions, c.pointee.restrictions, field: "restrictions")
        startMs = c.pointee.start_ms
        endMs = c.pointee.end_ms
    }
    func fill(_ c: UnsafeMutablePointer<Klaxon__Assignment__V1__ScheduleLayer>, arena: CArena) {
        (c.pointee.n_user_ids, c.pointee.user_ids) = arena.scalars(userIDs)
        c.pointee.rotation_virtual_start_ms = rotationVirtualStartMs
        c.pointee.rotation_turn_length_seconds = rotationTurnLengthSeconds
        (c.pointee.n_restrictions, c.pointee.restrictions) = arena.messages(restrictions)
        c.pointee.start_ms = startMs
        c.pointee.end_ms = endMs
    }
}

public struct OverrideMessage: Sendable, Equatable, CBridged {
    public var userID: UInt64
    public var startMs: Int64
    public var endMs: Int64
    public init(userID: UInt64, startMs: Int64, endMs: Int64) {
        self.userID = userID
        self.startMs = startMs
        self.endMs = endMs
    }
    nonisolated(unsafe) static let descriptor = descriptorOf { klaxon__assignment__v1__schedule_override__init($0) }
    init(c: UnsafePointer<Klaxon__Assignment__V1__ScheduleOverride>) {
        userID = c.pointee.user_id
        startMs = c.pointee.start_ms
        endMs = c.pointee.end_ms
    }
    func fill(_ c: UnsafeMutablePointer<Klaxon__Assignment__V1__ScheduleOverride>, arena: CArena) {
        c.pointee.user_id = userID
        c.pointee.start_ms = startMs
        c.pointee.end_ms = endMs
    }
}

public struct ScheduleMessage: Sendable, Equatable, CBridged {
    public var id: UInt64
    public var name: String
    public var timeZone: String
    public var layers: [LayerMessage]
    public var overrides: [OverrideMessage]
    public init(id: UInt64 = 0, name: String, timeZone: String, layers: [LayerMessage], overrides: [OverrideMessage] = []) {
        self.id = id
        self.name = name
        self.timeZone = timeZone
        self.layers = layers
        self.overrides = overrides
    }
    nonisolated(unsafe) static let descriptor = descriptorOf { klaxon__assignment__v1__schedule__init($0) }
    init(c: UnsafePointer<Klaxon__Assignment__V1__Schedule>) throws(WireError) {
        id = c.pointee.id
        name = CRead.string(c.pointee.name)
        timeZone = CRead.string(c.pointee.time_zone)
        layers = try CRead.messages(c.pointee.n_layers, c.pointee.layers, field: "layers")
        overrides = try CRead.messages(c.pointee.n_overrides, c.pointee.overrides, field: "overrides")
    }
    func fill(_ c: UnsafeMutablePointer<Klaxon__Assignment__V1__Schedule>, arena: CArena) {
        c.pointee.id = id
        c.pointee.name = arena.string(name)
        c.pointee.time_zone = arena.string(timeZone)
        (c.pointee.n_layers, c.pointee.layers) = arena.messages(layers)
        (c.pointee.n_overrides, c.pointee.overrides) = arena.messages(overrides)
    }
}

public struct ScheduleListMessage: Sendable, Equatable, CBridged {
    public var schedules: [ScheduleMessage]
    public init(schedules: [ScheduleMessage]) { self.schedules = schedules }
    nonisolated(unsafe) static let descriptor = descriptorOf { klaxon__assignment__v1__schedule_list__init($0) }
    init(c: UnsafePointer<Klaxon__Assignment__V1__ScheduleList>) throws(WireError) {
        schedules = try CRead.messages(c.pointee.n_schedules, c.pointee.schedules, field: "schedules")
    }
    func fill(_ c: UnsafeMutablePointer<Klaxon__Assignment__V1__ScheduleList>, arena: CArena) {
        (c.pointee.n_schedules, c.pointee.schedules) = arena.messages(schedules)
    }
}

public struct WhoIsOnCallRequest: Sendable, Equatable, CBridged {
    public var scheduleID: UInt64
    public var policyID: UInt64
    public var atMs: Int64
    public init(scheduleID: UInt64 = 0, policyID: UInt64 = 0, atMs: Int64 = 0) {
        self.scheduleID = scheduleID
        self.policyID = policyID
        self.atMs = atMs
    }
    nonisolated(unsafe) static let descriptor = descriptorOf { klaxon__assignment__v1__who_is_on_call_request__init($0) }
    init(c: UnsafePointer<Klaxon__Assignment__V1__WhoIsOnCallRequest>) {
        scheduleID = c.pointee.schedule_id
        policyID = c.pointee.policy_id
        atMs = c.pointee.at_ms
    }
    func fill(_ c: UnsafeMutablePointer<Klaxon__Assignment__V1__WhoIsOnCallRequest>, arena: CArena) {
        c.pointee.schedule_id = scheduleID
        c.pointee.policy_id = policyID
        c.pointee.at_ms = atMs
    }
}

public struct WhoIsOnCallReply: Sendable, Equatable, CBridged {
    public struct Level: Sendable, Equatable, CBridged {
        public var level: UInt32
        public var userIDs: [UInt64]
        public init(level: UInt32, userIDs: [UInt64]) {
            self.level = level
            self.userIDs = userIDs
        }
        nonisolated(unsafe) static let descriptor = descriptorOf { klaxon__assignment__v1__who_is_on_call_reply__level__init($0) }
        init(c: UnsafePointer<Klaxon__Assignment__V1__WhoIsOnCallReply__Level>) {
            level = c.pointee.level
            userIDs = CRead.scalars(c.pointee.n_user_ids, c.pointee.user_ids)
        }
        func fill(_ c: UnsafeMutablePointer<Klaxon__Assignment__V1__WhoIsOnCallReply__Level>, arena: CArena) {
            c.pointee.level = level
            (c.pointee.n_user_ids, c.pointee.user_ids) = arena.scalars(userIDs)
        }
    }

    public var userIDs: [UInt64]
    public var levels: [Level]
    public init(userIDs: [UInt64], levels: [Level] = []) {
        self.userIDs = userIDs
        self.levels = levels
    }
    nonisolated(unsafe) static let descriptor = descriptorOf { klaxon__assignment__v1__who_is_on_call_reply__init($0) }
    init(c: UnsafePointer<Klaxon__Assignment__V1__WhoIsOnCallReply>) throws(WireError) {
        userIDs = CRead.scalars(c.pointee.n_user_ids, c.pointee.user_ids)
        levels = try CRead.messages(c.pointee.n_levels, c.pointee.levels, field: "levels")
    }
    func fill(_ c: UnsafeMutablePointer<Klaxon__Assignment__V1__WhoIsOnCallReply>, arena: CArena) {
        (c.pointee.n_user_ids, c.pointee.user_ids) = arena.scalars(userIDs)
        (c.pointee.n_levels, c.pointee.levels) = arena.messages(levels)
    }
}
