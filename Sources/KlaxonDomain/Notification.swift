/// A user's notification rule, as far as scheduling is concerned.
public struct NotificationRule: Sendable, Equatable {
    public var id: UInt64
    public var contactMethodID: UInt64
    public var startDelaySeconds: UInt32
    public var urgency: Urgency

    public init(id: UInt64, contactMethodID: UInt64, startDelaySeconds: UInt32, urgency: Urgency) {
        self.id = id
        self.contactMethodID = contactMethodID
        self.startDelaySeconds = startDelaySeconds
        self.urgency = urgency
    }

    public var isMinuteZero: Bool { startDelaySeconds == 0 }
}

public struct ScheduledNotification: Sendable, Equatable {
    public var ruleID: UInt64
    public var contactMethodID: UInt64
    public var dueAt: Millis
    public var minuteZero: Bool

    public init(ruleID: UInt64, contactMethodID: UInt64, dueAt: Millis, minuteZero: Bool) {
        self.ruleID = ruleID
        self.contactMethodID = contactMethodID
        self.dueAt = dueAt
        self.minuteZero = minuteZero
    }
}

/// What to do with a due notification.
public enum NotificationDecision: Sendable, Equatable {
    /// Send the snapshot taken when the user was assigned.
    case sendSnapshot
    /// Send with the incident's current state.
    case sendCurrent
    case skip(reason: String)
}

public enum NotificationCore {
    /// One scheduled notification per rule matching the incident's urgency, due at
    /// `requestedAt + start_delay_seconds`.
    public static func expand(rules: [NotificationRule], urgency: Urgency, requestedAt: Millis)
        -> [ScheduledNotification]
    {
        rules.filter { $0.urgency == urgency }.map { rule in
            ScheduledNotification(
                ruleID: rule.id, contactMethodID: rule.contactMethodID,
                dueAt: requestedAt + Millis(rule.startDelaySeconds) * 1000, minuteZero: rule.isMinuteZero)
        }
    }

    /// Minute-zero notifications always go out with their snapshot; delayed ones only while the
    /// incident still needs this user.
    public static func decide(minuteZero: Bool, currentStatus: IncidentStatus, userStillAssigned: Bool)
        -> NotificationDecision
    {
        if minuteZero { return .sendSnapshot }
        switch currentStatus {
        case .resolved: return .skip(reason: "resolved")
        case .acknowledged: return .skip(reason: "acknowledged")
        case .triggered: return userStillAssigned ? .sendCurrent : .skip(reason: "reassigned")
        }
    }
}
