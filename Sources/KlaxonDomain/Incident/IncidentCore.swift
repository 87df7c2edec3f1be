/// The incident rules of PRODUCT.md, "Assignment and escalation": pure, `now` comes in as a
/// value. The only place these rules live; services load state, call `apply` (or
/// `fireDueTimers`), save the result. Each rule has its file, named for it: Trigger,
/// Acknowledge (with the ack timeout and snooze), Escalation, Reassign, Resolve (with
/// auto-resolve), Timers (which timer is due, what a stale one means).
public struct IncidentCore: Sendable {
    public static let maxReassignUsers = 10
    public static let snoozeRange: ClosedRange<UInt32> = 1...(7 * 24 * 3600)

    public var policy: EscalationPolicy
    public var settings: IncidentSettings
    /// The schedules the policy's targets name, by id (data, loaded with the incident): who is
    /// on call at an instant is `Schedule.onCall(at:)`; an unknown schedule has nobody.
    public var schedules: [UInt64: Schedule]

    public init(policy: EscalationPolicy, settings: IncidentSettings, schedules: [UInt64: Schedule] = [:]) {
        self.policy = policy
        self.settings = settings
        self.schedules = schedules
    }

    /// Who a target means at an instant.
    func onCall(_ target: EscalationTarget, at instant: Millis) -> [UInt64] {
        switch target {
        case let .user(id): [id]
        case let .schedule(id): schedules[id]?.onCall(at: instant) ?? []
        }
    }

    /// Who level `level` (1-based) of the policy means at `instant`: each target's users, in order, once.
    public func assignees(ofLevel level: Int, at instant: Millis) -> [UInt64] {
        guard policy.levels.indices.contains(level - 1) else { return [] }
        return EscalationCore.assignees(of: policy.levels[level - 1], at: instant) { onCall($0, at: $1) }
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
        var step = RuleStep(state: state, now: now)
        if command == .trigger {
            trigger(&step)
            return step.transition
        }
        if state.status == .resolved {
            // A late timer is harmless; an action is refused.
            if command.isTimer { return IncidentTransition(state: state, effects: []) }
            throw .failedPrecondition("the incident is resolved")
        }
        switch command {
        case .trigger: break  // above
        case let .acknowledge(user, actor): acknowledge(user: user, actor: actor, &step)
        case let .unacknowledge(actor): unacknowledge(actor: actor, &step)
        case let .resolve(actor, reason): resolve(actor: actor, reason: reason, &step)
        case let .reassign(users, actor): try reassign(users: users, actor: actor, &step)
        case let .reassignToPolicy(actor): reassignToPolicy(actor: actor, &step)
        case let .escalate(level, actor): try escalate(to: level, actor: actor, &step)
        case let .snooze(seconds, actor): try snooze(seconds: seconds, actor: actor, &step)
        case let .note(text, actor):
            guard !text.isEmpty else { throw .invalidArgument(field: "text", description: "is required") }
            step.timeline(.note, actor, ["text": text])
        case .escalationTimerFired: escalationTimerFired(&step)
        case .ackTimeoutFired: ackTimeoutFired(&step)
        case .autoResolveTimerFired: autoResolveTimerFired(&step)
        case .maintenanceEnded: maintenanceEnded(&step)
        }
        // A person who escalates or reassigns a held incident takes it out of maintenance; a
        // resolved one has nothing left to hold.
        switch command {
        case .reassign, .reassignToPolicy, .escalate, .resolve, .autoResolveTimerFired: step.state.heldUntil = nil
        default: break
        }
        return step.transition
    }
}

extension IncidentCommand {
    public var isTimer: Bool {
        switch self {
        case .escalationTimerFired, .ackTimeoutFired, .autoResolveTimerFired, .maintenanceEnded: true
        default: false
        }
    }
}

/// One transition being built: the next state and its effects, at `now`.
struct RuleStep {
    var state: IncidentState
    var effects: [IncidentEffect] = []
    let now: Millis

    init(state: IncidentState, now: Millis) {
        self.state = state
        self.now = now
    }

    var transition: IncidentTransition { IncidentTransition(state: state, effects: effects) }

    mutating func timeline(_ type: TimelineType, _ actor: String, _ details: [String: String] = [:]) {
        effects.append(.timeline(TimelineEntry(at: now, type: type, actor: actor, details: details)))
    }

    mutating func notify(_ user: UInt64, _ reason: NotifyReason) {
        effects.append(.notify(user: user, reason: reason, status: .triggered))
    }

    /// Status triggered, open acknowledgements closed (kept in history), ack timer off.
    mutating func backToTriggered() {
        state.status = .triggered
        for index in state.acknowledgements.indices where state.acknowledgements[index].closedAt == nil {
            state.acknowledgements[index].closedAt = now
        }
        state.ackTimeoutAt = nil
        state.snoozedUntil = nil
    }
}
