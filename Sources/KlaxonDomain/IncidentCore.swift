/// An acknowledgement of an incident; closed (kept in history) when the incident goes back to
/// triggered.
public struct Acknowledgement: Sendable, Equatable {
    public var user: UInt64?
    public var actor: String
    public var at: Millis
    public var closedAt: Millis?

    public init(user: UInt64?, actor: String, at: Millis, closedAt: Millis? = nil) {
        self.user = user
        self.actor = actor
        self.at = at
        self.closedAt = closedAt
    }
}

/// The service settings the incident rules depend on.
public struct IncidentSettings: Sendable, Equatable {
    /// 0 = off.
    public var ackTimeoutSeconds: UInt32
    /// 0 = off.
    public var autoResolveSeconds: UInt32

    public init(ackTimeoutSeconds: UInt32 = 1800, autoResolveSeconds: UInt32 = 14400) {
        self.ackTimeoutSeconds = ackTimeoutSeconds
        self.autoResolveSeconds = autoResolveSeconds
    }
}

/// Everything the assignment rules need to know about one incident. Timers are instants; nil
/// means not set.
public struct IncidentState: Sendable, Equatable {
    public var status: IncidentStatus
    public var urgency: Urgency
    /// 1-based level of the escalation policy; 0 when assigned outside the policy (reassign to users).
    public var level: Int
    public var loop: Int
    public var assignees: [UInt64]
    public var acknowledgements: [Acknowledgement]
    public var escalateAt: Millis?
    public var ackTimeoutAt: Millis?
    public var snoozedUntil: Millis?
    public var autoResolveAt: Millis?
    /// The escalation path ran out: nobody more to escalate to.
    public var exhausted: Bool
    /// The trigger's level 1 was assigned and paged. Until then the incident exists (Ingest wrote
    /// it) but nobody was told; whatever command reaches it first applies the trigger first.
    public var triggerApplied: Bool

    public init(urgency: Urgency) {
        status = .triggered
        self.urgency = urgency
        level = 0
        loop = 0
        assignees = []
        acknowledgements = []
        exhausted = false
        triggerApplied = false
    }

    public var openAcknowledgements: [Acknowledgement] { acknowledgements.filter { $0.closedAt == nil } }
}

/// What can happen to an incident: actions by people or integrations, and timers firing.
public enum IncidentCommand: Sendable, Equatable {
    /// A new incident: level 1 of the policy.
    case trigger
    case acknowledge(user: UInt64?, actor: String)
    case resolve(actor: String, reason: String)
    case reassign(users: [UInt64], actor: String)
    /// Start the (given) policy over at level 1 with these assignees' notifications.
    case reassignToPolicy(actor: String)
    case escalate(level: Int, actor: String)
    case snooze(seconds: UInt32, actor: String)
    case note(text: String, actor: String)
    case escalationTimerFired
    case ackTimeoutFired
    case autoResolveTimerFired
}

/// What the shell does besides saving the new state: page people and write the timeline.
public enum IncidentEffect: Sendable, Equatable {
    /// Page `user`; the request carries a snapshot of the incident with `status` (its status at
    /// that step of the transition: a trigger applied just before an acknowledge pages with
    /// `triggered`).
    case notify(user: UInt64, reason: NotifyReason, status: IncidentStatus)
    case timeline(TimelineEntry)
}

public struct IncidentTransition: Sendable, Equatable {
    public var state: IncidentState
    public var effects: [IncidentEffect]
}

/// Why a command was refused; the shell maps these to status codes.
public enum IncidentCommandError: Error, Sendable, Equatable {
    /// FAILED_PRECONDITION: e.g. any action on a resolved incident, snooze while not acknowledged.
    case failedPrecondition(String)
    /// INVALID_ARGUMENT naming the field.
    case invalidArgument(field: String, description: String)
}

/// The incident rules of PRODUCT.md, "Assignment and escalation": pure, `now` comes in as a
/// value. The only place these rules live; services load state, call `apply`, save the result.
public struct IncidentCore: Sendable {
    public static let maxReassignUsers = 10
    public static let snoozeRange: ClosedRange<UInt32> = 1...(7 * 24 * 3600)

    public var policy: EscalationPolicy
    public var settings: IncidentSettings
    /// Who a target means at an instant (schedules resolved to whoever is on call).
    public var resolve: @Sendable (EscalationTarget, Millis) -> [UInt64]

    public init(
        policy: EscalationPolicy, settings: IncidentSettings,
        resolve: @escaping @Sendable (EscalationTarget, Millis) -> [UInt64]
    ) {
        self.policy = policy
        self.settings = settings
        self.resolve = resolve
    }

    public func apply(_ command: IncidentCommand, to state: IncidentState, now: Millis) throws(IncidentCommandError)
        -> IncidentTransition
    {
        if command != .trigger, !state.triggerApplied {
            // PRODUCT.md: the trigger's assignment and minute-zero pages happen whatever arrived
            // first. An acknowledge, resolve or reassign that reaches the incident before the
            // trigger was processed finds it triggered, as it was: the trigger applies first (its
            // snapshot says `triggered`), then the command, so the escalation state follows
            // what happened and the timeline reads in order.
            let triggered = try apply(.trigger, to: state, now: now)
            var transition = try apply(command, to: triggered.state, now: now)
            transition.effects = triggered.effects + transition.effects
            return transition
        }
        var next = state
        var effects: [IncidentEffect] = []
        func timeline(_ type: TimelineType, _ actor: String, _ details: [String: String] = [:]) {
            effects.append(.timeline(TimelineEntry(at: now, type: type, actor: actor, details: details)))
        }
        let isTimer: Bool
        switch command {
        case .escalationTimerFired, .ackTimeoutFired, .autoResolveTimerFired: isTimer = true
        default: isTimer = false
        }
        if command == .trigger {
            // Applied once: a redelivered trigger changes nothing.
            guard !state.triggerApplied else { return IncidentTransition(state: state, effects: []) }
            next.triggerApplied = true
            if settings.autoResolveSeconds > 0 { next.autoResolveAt = now + Millis(settings.autoResolveSeconds) * 1000 }
            let previous = state.assignees
            enterLevel(1, loop: 0, reason: .assigned, actor: "system", state: &next, effects: &effects, now: now)
            // Only rows written before the trigger rule existed can be acknowledged or resolved
            // here: page level 1 all the same, keep who acknowledged, and start no escalation.
            for user in previous where !next.assignees.contains(user) { next.assignees.append(user) }
            if state.status != .triggered {
                next.status = state.status
                next.escalateAt = nil
                if state.status == .resolved { next.autoResolveAt = nil }
            }
            return IncidentTransition(state: next, effects: effects)
        }
        if state.status == .resolved {
            // A late timer is harmless; an action is refused.
            if isTimer { return IncidentTransition(state: state, effects: []) }
            throw .failedPrecondition("the incident is resolved")
        }

        switch command {
        case .trigger:
            break  // handled above

        case let .acknowledge(user, actor):
            if let user, !next.assignees.contains(user) { next.assignees.append(user) }
            next.status = .acknowledged
            next.acknowledgements.append(Acknowledgement(user: user, actor: actor, at: now))
            next.escalateAt = nil
            next.snoozedUntil = nil
            // Measured from the latest acknowledgement: every new one moves it.
            next.ackTimeoutAt = settings.ackTimeoutSeconds > 0 ? now + Millis(settings.ackTimeoutSeconds) * 1000 : nil
            timeline(.acknowledge, actor, user.map { ["user": String($0)] } ?? [:])

        case let .resolve(actor, reason):
            resolveIncident(&next, now: now)
            timeline(.resolve, actor, reason.isEmpty ? [:] : ["reason": reason])

        case let .reassign(users, actor):
            var unique: [UInt64] = []
            for user in users where !unique.contains(user) { unique.append(user) }
            guard !unique.isEmpty else { throw .invalidArgument(field: "users", description: "at least one user is required") }
            guard unique.count <= Self.maxReassignUsers else {
                throw .invalidArgument(field: "users", description: "at most \(Self.maxReassignUsers) users, got \(unique.count)")
            }
            backToTriggered(&next, now: now)
            next.assignees = unique
            next.level = 0
            next.loop = 0
            next.exhausted = false
            // Assigned by hand, outside the policy: these users are responsible until they act or someone reassigns.
            next.escalateAt = nil
            timeline(.reassign, actor, ["users": unique.map(String.init).joined(separator: ",")])
            for user in unique { effects.append(.notify(user: user, reason: .reassigned, status: .triggered)) }

        case let .reassignToPolicy(actor):
            backToTriggered(&next, now: now)
            next.exhausted = false
            timeline(.reassign, actor, ["policy": "restart at level 1"])
            enterLevel(1, loop: 0, reason: .reassigned, actor: actor, state: &next, effects: &effects, now: now)

        case let .escalate(level, actor):
            guard (1...max(policy.levels.count, 1)).contains(level), !policy.levels.isEmpty else {
                throw .invalidArgument(field: "level", description: "must be 1–\(policy.levels.count), got \(level)")
            }
            backToTriggered(&next, now: now)
            next.exhausted = false
            timeline(.escalate, actor, ["level": String(level), "manual": "true"])
            enterLevel(level, loop: next.loop, reason: .manual, actor: actor, state: &next, effects: &effects, now: now)

        case let .snooze(seconds, actor):
            guard Self.snoozeRange.contains(seconds) else {
                throw .invalidArgument(field: "seconds", description: "must be 1–\(Self.snoozeRange.upperBound) (7 days), got \(seconds)")
            }
            guard next.status == .acknowledged else { throw .failedPrecondition("only an acknowledged incident can be snoozed") }
            let until = now + Millis(seconds) * 1000
            next.snoozedUntil = until
            next.ackTimeoutAt = until  // the snooze end replaces the ack timeout
            timeline(.snooze, actor, ["until_ms": String(until)])

        case let .note(text, actor):
            guard !text.isEmpty else { throw .invalidArgument(field: "text", description: "is required") }
            timeline(.note, actor, ["text": text])

        case .escalationTimerFired:
            guard next.status == .triggered, let due = next.escalateAt, due <= now else { break }
            escalateFromTimer(&next, effects: &effects, now: now)

        case .ackTimeoutFired:
            guard next.status == .acknowledged, let due = next.ackTimeoutAt, due <= now else { break }
            let wasSnooze = next.snoozedUntil != nil
            backToTriggered(&next, now: now)
            timeline(.ackTimeout, "system", wasSnooze ? ["reason": "snooze ended"] : [:])
            for user in next.assignees { effects.append(.notify(user: user, reason: .ackTimeout, status: .triggered)) }
            // The current level's escalation timer starts again.
            next.escalateAt = escalationInstant(level: next.level, loop: next.loop, urgency: next.urgency, now: now)

        case .autoResolveTimerFired:
            guard let due = next.autoResolveAt, due <= now else { break }
            resolveIncident(&next, now: now)
            timeline(.resolve, "system", ["reason": "auto-resolve timeout"])
        }
        return IncidentTransition(state: next, effects: effects)
    }

    // MARK: - Rules shared by several commands

    private func resolveIncident(_ state: inout IncidentState, now: Millis) {
        state.status = .resolved
        state.escalateAt = nil
        state.ackTimeoutAt = nil
        state.snoozedUntil = nil
        state.autoResolveAt = nil
    }

    /// Status triggered, open acknowledgements closed (kept in history), ack timer off.
    private func backToTriggered(_ state: inout IncidentState, now: Millis) {
        state.status = .triggered
        for index in state.acknowledgements.indices where state.acknowledgements[index].closedAt == nil {
            state.acknowledgements[index].closedAt = now
        }
        state.ackTimeoutAt = nil
        state.snoozedUntil = nil
    }

    /// When the incident moves on from `level`: after the level's delay; never for low urgency or
    /// outside the policy. The last level of the last loop waits its delay too, then records
    /// that the path is exhausted.
    private func escalationInstant(level: Int, loop: Int, urgency: Urgency, now: Millis) -> Millis? {
        guard urgency == .high, level >= 1, level <= policy.levels.count else { return nil }
        return now + Millis(policy.levels[level - 1].delaySeconds) * 1000
    }

    /// Assigns `level` (1-based) at `loop`, skipping levels that resolve to nobody at once. Past
    /// the last level the path repeats while loops remain, else it is exhausted.
    private func enterLevel(
        _ start: Int, loop startLoop: Int, reason: NotifyReason, actor: String, state: inout IncidentState,
        effects: inout [IncidentEffect], now: Millis
    ) {
        var level = start
        var loop = startLoop
        var emptyInARow = 0
        while !policy.levels.isEmpty {
            if level > policy.levels.count {
                guard loop < policy.numLoops else { break }
                loop += 1
                level = 1
                effects.append(.timeline(TimelineEntry(at: now, type: .repeatEscalationPath, actor: "system", details: ["loop": String(loop)])))
            }
            let users = EscalationCore.assignees(of: policy.levels[level - 1], at: now, resolve: resolve)
            if users.isEmpty {
                effects.append(.timeline(TimelineEntry(
                    at: now, type: .escalate, actor: "system", details: ["level": String(level), "reason": "empty level"])))
                emptyInARow += 1
                if emptyInARow >= policy.levels.count { break }  // a whole cycle with nobody: stop
                level += 1
                continue
            }
            state.assignees = users
            state.level = level
            state.loop = loop
            state.exhausted = false
            effects.append(.timeline(TimelineEntry(
                at: now, type: .assign, actor: actor,
                details: ["level": String(level), "loop": String(loop), "users": users.map(String.init).joined(separator: ",")])))
            for user in users { effects.append(.notify(user: user, reason: reason, status: .triggered)) }
            state.escalateAt = escalationInstant(level: level, loop: loop, urgency: state.urgency, now: now)
            return
        }
        state.exhausted = true
        state.escalateAt = nil
        effects.append(.timeline(TimelineEntry(
            at: now, type: .exhaustEscalationPath, actor: "system", details: ["reason": "nobody left to escalate to"])))
    }

    /// The escalation delay of the current level elapsed while still triggered.
    private func escalateFromTimer(_ state: inout IncidentState, effects: inout [IncidentEffect], now: Millis) {
        let isLastLevel = state.level >= policy.levels.count
        if isLastLevel && state.loop >= policy.numLoops {
            // Stays on the last level; nothing more will happen by itself.
            state.exhausted = true
            state.escalateAt = nil
            effects.append(.timeline(TimelineEntry(
                at: now, type: .exhaustEscalationPath, actor: "system",
                details: ["level": String(state.level), "loop": String(state.loop)])))
            return
        }
        let fromLevel = state.level
        let delay = policy.levels.indices.contains(fromLevel - 1) ? policy.levels[fromLevel - 1].delaySeconds : 0
        let mark = effects.count
        enterLevel(fromLevel + 1, loop: state.loop, reason: .escalated, actor: "system", state: &state, effects: &effects, now: now)
        // Written before the assignment it causes, once the level it lands on is known.
        effects.insert(.timeline(TimelineEntry(
            at: now, type: .escalate, actor: "system",
            details: ["from_level": String(fromLevel), "to_level": String(state.level),
                      "reason": "not acknowledged within \(delay) s"])), at: mark)
    }
}
