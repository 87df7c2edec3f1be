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
    /// Held by a maintenance window: created and visible, nobody paged and nothing escalating
    /// until this instant, when level 1 is assigned (`maintenanceEnded`).
    public var heldUntil: Millis?

    /// The earliest timer set (escalation, acknowledgement timeout, auto-resolve, maintenance
    /// hold): when the timer loop next has work for this incident. The same instant as the
    /// column `incidents.next_timer_at_ms`.
    public var nextTimer: Millis? { [escalateAt, ackTimeoutAt, autoResolveAt, heldUntil].compactMap { $0 }.min() }

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
    /// The acknowledgement no longer holds (Opsgenie's unacknowledge): back to triggered, as when
    /// the ack timeout fires. Nothing happens when the incident is not acknowledged.
    case unacknowledge(actor: String)
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
    /// The maintenance window holding the incident ended.
    case maintenanceEnded
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
