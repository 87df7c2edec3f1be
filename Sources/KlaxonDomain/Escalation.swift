/// A target of an escalation level: a user, or a schedule resolved to whoever is on call.
public enum EscalationTarget: Sendable, Equatable, Hashable {
    case user(UInt64)
    case schedule(UInt64)
}

public struct EscalationLevel: Sendable, Equatable {
    public static let maxTargets = 10
    public var delaySeconds: UInt32
    public var targets: [EscalationTarget]

    public init(delaySeconds: UInt32, targets: [EscalationTarget]) {
        self.delaySeconds = delaySeconds
        self.targets = targets
    }
}

public struct EscalationPolicy: Sendable, Equatable {
    public var levels: [EscalationLevel]
    public var numLoops: Int

    public init(levels: [EscalationLevel], numLoops: Int = 0) {
        self.levels = levels
        self.numLoops = numLoops
    }
}

/// What the assignment core asks its I/O shell to do, in order, inside one transaction.
public enum AssignmentEffect: Sendable, Equatable {
    /// The assignees become exactly `users` at level `level` (1-based) and loop `loop`.
    case assign(users: [UInt64], level: Int, loop: Int)
    /// Page `user` with a snapshot of the incident taken at this instant.
    case notify(user: UInt64, reason: NotifyReason)
    /// Move on at `at` if the incident is still triggered; nil cancels the escalation timer.
    case setEscalationTimer(at: Millis?)
    case timeline(TimelineEntry)
}

/// The escalation rules: pure, time comes in as a value.
public enum EscalationCore {
    /// A new incident starts at level 1, loop 0. Levels that resolve to nobody are skipped at
    /// once; each newly assigned user is paged. Low urgency pages level 1 and does not escalate.
    public static func start(
        policy: EscalationPolicy, urgency: Urgency, now: Millis,
        resolve: (EscalationTarget, Millis) -> [UInt64]
    ) -> [AssignmentEffect] {
        var effects: [AssignmentEffect] = []
        for (index, level) in policy.levels.enumerated() {
            let users = assignees(of: level, at: now, resolve: resolve)
            guard !users.isEmpty else {
                effects.append(.timeline(TimelineEntry(
                    at: now, type: .escalate, actor: "system",
                    details: ["level": String(index + 1), "reason": "empty level"])))
                continue
            }
            effects.append(.assign(users: users, level: index + 1, loop: 0))
            effects.append(.timeline(TimelineEntry(
                at: now, type: .assign, actor: "system",
                details: ["level": String(index + 1), "users": users.map(String.init).joined(separator: ",")])))
            for user in users { effects.append(.notify(user: user, reason: .assigned)) }
            let escalates = urgency == .high && (index + 1 < policy.levels.count || policy.numLoops > 0)
            effects.append(.setEscalationTimer(at: escalates ? now + Millis(level.delaySeconds) * 1000 : nil))
            return effects
        }
        effects.append(.timeline(TimelineEntry(
            at: now, type: .exhaustEscalationPath, actor: "system", details: ["reason": "no level has anyone to page"])))
        effects.append(.setEscalationTimer(at: nil))
        return effects
    }

    /// The union of a level's targets at `now`, schedules resolved, duplicates removed, in
    /// target order.
    public static func assignees(
        of level: EscalationLevel, at now: Millis, resolve: (EscalationTarget, Millis) -> [UInt64]
    ) -> [UInt64] {
        var seen = Set<UInt64>()
        var users: [UInt64] = []
        for target in level.targets {
            for user in resolve(target, now) where seen.insert(user).inserted { users.append(user) }
        }
        return users
    }
}
