import CProtobufC
import KlaxonDomain
import KlaxonProto

/// The request of the incident actions (`klaxon.assignment.v1.Assignment/Acknowledge`, …).
public struct IncidentActionRequest: Sendable, Equatable, CBridged {
    public static let acknowledge = "klaxon.assignment.v1.Assignment/Acknowledge"
    public static let resolve = "klaxon.assignment.v1.Assignment/Resolve"
    public static let reassign = "klaxon.assignment.v1.Assignment/Reassign"
    public static let escalate = "klaxon.assignment.v1.Assignment/Escalate"
    public static let snooze = "klaxon.assignment.v1.Assignment/Snooze"
    public static let addNote = "klaxon.assignment.v1.Assignment/AddNote"

    public var incidentID: UInt64
    public var userID: UInt64
    public var userIDs: [UInt64]
    public var toPolicy: Bool
    public var level: UInt32
    public var durationSeconds: UInt32
    public var text: String

    public init(
        incidentID: UInt64, userID: UInt64, userIDs: [UInt64] = [], toPolicy: Bool = false, level: UInt32 = 0,
        durationSeconds: UInt32 = 0, text: String = ""
    ) {
        self.incidentID = incidentID
        self.userID = userID
        self.userIDs = userIDs
        self.toPolicy = toPolicy
        self.level = level
        self.durationSeconds = durationSeconds
        self.text = text
    }

    nonisolated(unsafe) static let descriptor = descriptorOf { klaxon__assignment__v1__incident_action_request__init($0) }

    init(c: UnsafePointer<Klaxon__Assignment__V1__IncidentActionRequest>) {
        incidentID = c.pointee.incident_id
        userID = c.pointee.user_id
        userIDs = CRead.scalars(c.pointee.n_user_ids, c.pointee.user_ids)
        toPolicy = c.pointee.to_policy != 0
        level = c.pointee.level
        durationSeconds = c.pointee.duration_seconds
        text = CRead.string(c.pointee.text)
    }

    func fill(_ c: UnsafeMutablePointer<Klaxon__Assignment__V1__IncidentActionRequest>, arena: CArena) {
        c.pointee.incident_id = incidentID
        c.pointee.user_id = userID
        (c.pointee.n_user_ids, c.pointee.user_ids) = arena.scalars(userIDs)
        c.pointee.to_policy = toPolicy ? 1 : 0
        c.pointee.level = level
        c.pointee.duration_seconds = durationSeconds
        c.pointee.text = arena.string(text)
    }
}

public struct AcknowledgementView: Sendable, Equatable, CBridged {
    public var userID: UInt64
    public var actor: String
    public var atMs: Int64
    public var closedAtMs: Int64

    public init(userID: UInt64, actor: String, atMs: Int64, closedAtMs: Int64) {
        self.userID = userID
        self.actor = actor
        self.atMs = atMs
        self.closedAtMs = closedAtMs
    }

    nonisolated(unsafe) static let descriptor = descriptorOf { klaxon__assignment__v1__acknowledgement__init($0) }

    init(c: UnsafePointer<Klaxon__Assignment__V1__Acknowledgement>) {
        userID = c.pointee.user_id
        actor = CRead.string(c.pointee.actor)
        atMs = c.pointee.at_ms
        closedAtMs = c.pointee.closed_at_ms
    }

    func fill(_ c: UnsafeMutablePointer<Klaxon__Assignment__V1__Acknowledgement>, arena: CArena) {
        c.pointee.user_id = userID
        c.pointee.actor = arena.string(actor)
        c.pointee.at_ms = atMs
        c.pointee.closed_at_ms = closedAtMs
    }
}

/// An incident's assignment state; instants are 0 when not set.
public struct IncidentView: Sendable, Equatable, CBridged {
    public var incidentID: UInt64
    public var status: IncidentStatus?
    public var level: UInt32
    public var loop: UInt32
    public var assigneeIDs: [UInt64]
    public var acknowledgements: [AcknowledgementView]
    public var escalateAtMs: Int64
    public var ackTimeoutAtMs: Int64
    public var snoozedUntilMs: Int64
    public var autoResolveAtMs: Int64
    public var exhausted: Bool

    public init(incidentID: UInt64, state: IncidentState) {
        self.incidentID = incidentID
        status = state.status
        level = UInt32(state.level)
        loop = UInt32(state.loop)
        assigneeIDs = state.assignees
        acknowledgements = state.acknowledgements.map {
            AcknowledgementView(userID: $0.user ?? 0, actor: $0.actor, atMs: $0.at, closedAtMs: $0.closedAt ?? 0)
        }
        escalateAtMs = state.escalateAt ?? 0
        ackTimeoutAtMs = state.ackTimeoutAt ?? 0
        snoozedUntilMs = state.snoozedUntil ?? 0
        autoResolveAtMs = state.autoResolveAt ?? 0
        exhausted = state.exhausted
    }

    nonisolated(unsafe) static let descriptor = descriptorOf { klaxon__assignment__v1__incident_view__init($0) }

    init(c: UnsafePointer<Klaxon__Assignment__V1__IncidentView>) throws(WireError) {
        incidentID = c.pointee.incident_id
        status = try WireEnum.decode(c.pointee.status.rawValue, field: "status")
        level = c.pointee.level
        loop = c.pointee.loop
        assigneeIDs = CRead.scalars(c.pointee.n_assignee_ids, c.pointee.assignee_ids)
        acknowledgements = try CRead.messages(c.pointee.n_acknowledgements, c.pointee.acknowledgements, field: "acknowledgements")
        escalateAtMs = c.pointee.escalate_at_ms
        ackTimeoutAtMs = c.pointee.ack_timeout_at_ms
        snoozedUntilMs = c.pointee.snoozed_until_ms
        autoResolveAtMs = c.pointee.auto_resolve_at_ms
        exhausted = c.pointee.exhausted != 0
    }

    func fill(_ c: UnsafeMutablePointer<Klaxon__Assignment__V1__IncidentView>, arena: CArena) {
        c.pointee.incident_id = incidentID
        c.pointee.status = Klaxon__Incident__V1__IncidentStatus(rawValue: WireEnum.encode(status))
        c.pointee.level = level
        c.pointee.loop = loop
        (c.pointee.n_assignee_ids, c.pointee.assignee_ids) = arena.scalars(assigneeIDs)
        (c.pointee.n_acknowledgements, c.pointee.acknowledgements) = arena.messages(acknowledgements)
        c.pointee.escalate_at_ms = escalateAtMs
        c.pointee.ack_timeout_at_ms = ackTimeoutAtMs
        c.pointee.snoozed_until_ms = snoozedUntilMs
        c.pointee.auto_resolve_at_ms = autoResolveAtMs
        c.pointee.exhausted = exhausted ? 1 : 0
    }
}
