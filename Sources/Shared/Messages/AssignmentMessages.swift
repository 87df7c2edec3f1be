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
    public var policyID: UInt64

    public init(
        incidentID: UInt64, userID: UInt64, userIDs: [UInt64] = [], toPolicy: Bool = false, level: UInt32 = 0,
        durationSeconds: UInt32 = 0, text: String = "", policyID: UInt64 = 0
    ) {
        self.policyID = policyID
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
        policyID = c.pointee.policy_id
    }

    func fill(_ c: UnsafeMutablePointer<Klaxon__Assignment__V1__IncidentActionRequest>, arena: CArena) {
        c.pointee.policy_id = policyID
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

public struct GetIncidentRequest: Sendable, Equatable, CBridged {
    public static let getIncident = "klaxon.assignment.v1.Assignment/GetIncident"
    public static let getTimeline = "klaxon.assignment.v1.Assignment/GetTimeline"
    public var incidentID: UInt64
    public init(incidentID: UInt64) { self.incidentID = incidentID }

    nonisolated(unsafe) static let descriptor = descriptorOf { klaxon__assignment__v1__get_incident_request__init($0) }
    init(c: UnsafePointer<Klaxon__Assignment__V1__GetIncidentRequest>) { incidentID = c.pointee.incident_id }
    func fill(_ c: UnsafeMutablePointer<Klaxon__Assignment__V1__GetIncidentRequest>, arena: CArena) { c.pointee.incident_id = incidentID }
}

/// An incident as the queries return it.
public struct IncidentInfo: Sendable, Equatable, CBridged {
    public var id: UInt64
    public var number: UInt64
    public var title: String
    public var urgency: Urgency?
    public var serviceID: UInt64
    public var serviceName: String
    public var dedupKey: String
    public var severity: String
    public var createdAtMs: Int64
    public var resolvedAtMs: Int64
    public var alertCount: UInt32
    public var state: IncidentView?

    public init(
        id: UInt64, number: UInt64, title: String, urgency: Urgency?, serviceID: UInt64, serviceName: String, dedupKey: String,
        severity: String, createdAtMs: Int64, resolvedAtMs: Int64, alertCount: UInt32, state: IncidentView?
    ) {
        self.id = id
        self.number = number
        self.title = title
        self.urgency = urgency
        self.serviceID = serviceID
        self.serviceName = serviceName
        self.dedupKey = dedupKey
        self.severity = severity
        self.createdAtMs = createdAtMs
        self.resolvedAtMs = resolvedAtMs
        self.alertCount = alertCount
        self.state = state
    }

    nonisolated(unsafe) static let descriptor = descriptorOf { klaxon__assignment__v1__incident__init($0) }

    init(c: UnsafePointer<Klaxon__Assignment__V1__Incident>) throws(WireError) {
        id = c.pointee.id
        number = c.pointee.number
        title = CRead.string(c.pointee.title)
        urgency = try WireEnum.decode(c.pointee.urgency.rawValue, field: "urgency")
        serviceID = c.pointee.service_id
        serviceName = CRead.string(c.pointee.service_name)
        dedupKey = CRead.string(c.pointee.dedup_key)
        severity = CRead.string(c.pointee.severity)
        createdAtMs = c.pointee.created_at_ms
        resolvedAtMs = c.pointee.resolved_at_ms
        alertCount = c.pointee.alert_count
        state = try CRead.nested(c.pointee.state, field: "state")
    }

    func fill(_ c: UnsafeMutablePointer<Klaxon__Assignment__V1__Incident>, arena: CArena) {
        c.pointee.id = id
        c.pointee.number = number
        c.pointee.title = arena.string(title)
        c.pointee.urgency = Klaxon__Incident__V1__Urgency(rawValue: WireEnum.encode(urgency))
        c.pointee.service_id = serviceID
        c.pointee.service_name = arena.string(serviceName)
        c.pointee.dedup_key = arena.string(dedupKey)
        c.pointee.severity = arena.string(severity)
        c.pointee.created_at_ms = createdAtMs
        c.pointee.resolved_at_ms = resolvedAtMs
        c.pointee.alert_count = alertCount
        c.pointee.state = state?.makeC(arena: arena)
    }
}

public struct ListIncidentsRequest: Sendable, Equatable, CBridged {
    public static let method = "klaxon.assignment.v1.Assignment/ListIncidents"
    public var statuses: [IncidentStatus]
    public var serviceID: UInt64
    public var pageSize: UInt32
    public var beforeID: UInt64

    public init(statuses: [IncidentStatus] = [], serviceID: UInt64 = 0, pageSize: UInt32 = 0, beforeID: UInt64 = 0) {
        self.statuses = statuses
        self.serviceID = serviceID
        self.pageSize = pageSize
        self.beforeID = beforeID
    }

    nonisolated(unsafe) static let descriptor = descriptorOf { klaxon__assignment__v1__list_incidents_request__init($0) }

    init(c: UnsafePointer<Klaxon__Assignment__V1__ListIncidentsRequest>) throws(WireError) {
        var statuses: [IncidentStatus] = []
        for (index, raw) in CRead.scalars(c.pointee.n_statuses, c.pointee.statuses).enumerated() {
            guard let status: IncidentStatus = try WireEnum.decode(raw.rawValue, field: "statuses[\(index)]") else {
                throw WireError(field: "statuses[\(index)]", reason: "must not be unspecified")
            }
            statuses.append(status)
        }
        self.statuses = statuses
        serviceID = c.pointee.service_id
        pageSize = c.pointee.page_size
        beforeID = c.pointee.before_id
    }

    func fill(_ c: UnsafeMutablePointer<Klaxon__Assignment__V1__ListIncidentsRequest>, arena: CArena) {
        (c.pointee.n_statuses, c.pointee.statuses) = arena.scalars(
            statuses.map { Klaxon__Incident__V1__IncidentStatus(rawValue: WireEnum.encode($0)) })
        c.pointee.service_id = serviceID
        c.pointee.page_size = pageSize
        c.pointee.before_id = beforeID
    }
}

public struct ListIncidentsReply: Sendable, Equatable, CBridged {
    public var incidents: [IncidentInfo]
    public var nextBeforeID: UInt64

    public init(incidents: [IncidentInfo], nextBeforeID: UInt64) {
        self.incidents = incidents
        self.nextBeforeID = nextBeforeID
    }

    nonisolated(unsafe) static let descriptor = descriptorOf { klaxon__assignment__v1__list_incidents_reply__init($0) }

    init(c: UnsafePointer<Klaxon__Assignment__V1__ListIncidentsReply>) throws(WireError) {
        incidents = try CRead.messages(c.pointee.n_incidents, c.pointee.incidents, field: "incidents")
        nextBeforeID = c.pointee.next_before_id
    }

    func fill(_ c: UnsafeMutablePointer<Klaxon__Assignment__V1__ListIncidentsReply>, arena: CArena) {
        (c.pointee.n_incidents, c.pointee.incidents) = arena.messages(incidents)
        c.pointee.next_before_id = nextBeforeID
    }
}

public struct TimelineEntryView: Sendable, Equatable, CBridged {
    public var atMs: Int64
    public var type: String
    public var actor: String
    public var details: [String: String]

    public init(atMs: Int64, type: String, actor: String, details: [String: String]) {
        self.atMs = atMs
        self.type = type
        self.actor = actor
        self.details = details
    }

    nonisolated(unsafe) static let descriptor = descriptorOf { klaxon__assignment__v1__timeline_entry__init($0) }
    nonisolated(unsafe) static let detailsEntryDescriptor: UnsafePointer<ProtobufCMessageDescriptor> = messageDescriptor { klaxon__assignment__v1__timeline_entry__details_entry__init($0) }

    init(c: UnsafePointer<Klaxon__Assignment__V1__TimelineEntry>) {
        atMs = c.pointee.at_ms
        type = CRead.string(c.pointee.type)
        actor = CRead.string(c.pointee.actor)
        details = CRead.map(c.pointee.n_details, c.pointee.details) { (CRead.string($0.pointee.key), CRead.string($0.pointee.value)) }
    }

    func fill(_ c: UnsafeMutablePointer<Klaxon__Assignment__V1__TimelineEntry>, arena: CArena) {
        c.pointee.at_ms = atMs
        c.pointee.type = arena.string(type)
        c.pointee.actor = arena.string(actor)
        (c.pointee.n_details, c.pointee.details) = arena.map(details, Self.detailsEntryDescriptor) {
            (entry: UnsafeMutablePointer<Klaxon__Assignment__V1__TimelineEntry__DetailsEntry>, key, value) in
            entry.pointee.key = key
            entry.pointee.value = value
        }
    }
}

public struct GetTimelineReply: Sendable, Equatable, CBridged {
    public var entries: [TimelineEntryView]
    public init(entries: [TimelineEntryView]) { self.entries = entries }

    nonisolated(unsafe) static let descriptor = descriptorOf { klaxon__assignment__v1__get_timeline_reply__init($0) }

    init(c: UnsafePointer<Klaxon__Assignment__V1__GetTimelineReply>) throws(WireError) {
        entries = try CRead.messages(c.pointee.n_entries, c.pointee.entries, field: "entries")
    }

    func fill(_ c: UnsafeMutablePointer<Klaxon__Assignment__V1__GetTimelineReply>, arena: CArena) {
        (c.pointee.n_entries, c.pointee.entries) = arena.messages(entries)
    }
}
