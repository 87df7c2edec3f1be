import CProtobufC
import KlaxonDomain
import KlaxonProto

/// What an incident looked like at `atMs`.
public struct IncidentSnapshot: Sendable, Equatable, CBridged {
    public var incidentID: UInt64
    public var number: UInt64
    public var title: String
    public var status: IncidentStatus?
    public var urgency: Urgency?
    public var serviceID: UInt64
    public var serviceName: String
    public var severity: String
    public var dedupKey: String
    public var createdAtMs: Int64
    public var atMs: Int64
    public var details: [String: String]

    public init(
        incidentID: UInt64, number: UInt64, title: String, status: IncidentStatus?, urgency: Urgency?,
        serviceID: UInt64, serviceName: String, severity: String, dedupKey: String, createdAtMs: Int64,
        atMs: Int64, details: [String: String] = [:]
    ) {
        self.incidentID = incidentID
        self.number = number
        self.title = title
        self.status = status
        self.urgency = urgency
        self.serviceID = serviceID
        self.serviceName = serviceName
        self.severity = severity
        self.dedupKey = dedupKey
        self.createdAtMs = createdAtMs
        self.atMs = atMs
        self.details = details
    }

    nonisolated(unsafe) static let descriptor = descriptorOf { klaxon__incident__v1__incident_snapshot__init($0) }
    nonisolated(unsafe) static let detailsEntryDescriptor: UnsafePointer<ProtobufCMessageDescriptor> = messageDescriptor { klaxon__incident__v1__incident_snapshot__details_entry__init($0) }

    init(c: UnsafePointer<Klaxon__Incident__V1__IncidentSnapshot>) throws(WireError) {
        incidentID = c.pointee.incident_id
        number = c.pointee.number
        title = CRead.string(c.pointee.title)
        status = try WireEnum.decode(c.pointee.status.rawValue, field: "status")
        urgency = try WireEnum.decode(c.pointee.urgency.rawValue, field: "urgency")
        serviceID = c.pointee.service_id
        serviceName = CRead.string(c.pointee.service_name)
        severity = CRead.string(c.pointee.severity)
        dedupKey = CRead.string(c.pointee.dedup_key)
        createdAtMs = c.pointee.created_at_ms
        atMs = c.pointee.at_ms
        details = CRead.map(c.pointee.n_details, c.pointee.details) {
            (CRead.string($0.pointee.key), CRead.string($0.pointee.value))
        }
    }

    func fill(_ c: UnsafeMutablePointer<Klaxon__Incident__V1__IncidentSnapshot>, arena: CArena) {
        c.pointee.incident_id = incidentID
        c.pointee.number = number
        c.pointee.title = arena.string(title)
        c.pointee.status = Klaxon__Incident__V1__IncidentStatus(rawValue: WireEnum.encode(status))
        c.pointee.urgency = Klaxon__Incident__V1__Urgency(rawValue: WireEnum.encode(urgency))
        c.pointee.service_id = serviceID
        c.pointee.service_name = arena.string(serviceName)
        c.pointee.severity = arena.string(severity)
        c.pointee.dedup_key = arena.string(dedupKey)
        c.pointee.created_at_ms = createdAtMs
        c.pointee.at_ms = atMs
        (c.pointee.n_details, c.pointee.details) = arena.map(details, Self.detailsEntryDescriptor) {
            (entry: UnsafeMutablePointer<Klaxon__Incident__V1__IncidentSnapshot__DetailsEntry>, key, value) in
            entry.pointee.key = key
            entry.pointee.value = value
        }
    }
}

/// Ingest → Assignment: a new incident committed. Idempotent by `messageID`.
public struct IncidentTriggeredRequest: Sendable, Equatable, CBridged {
    public static let method = "klaxon.assignment.v1.Assignment/IncidentTriggered"
    public var messageID: String
    public var incidentID: UInt64
    public var triggeredAtMs: Int64

    public init(messageID: String, incidentID: UInt64, triggeredAtMs: Int64) {
        self.messageID = messageID
        self.incidentID = incidentID
        self.triggeredAtMs = triggeredAtMs
    }

    nonisolated(unsafe) static let descriptor = descriptorOf { klaxon__assignment__v1__incident_triggered_request__init($0) }

    init(c: UnsafePointer<Klaxon__Assignment__V1__IncidentTriggeredRequest>) {
        messageID = CRead.string(c.pointee.message_id)
        incidentID = c.pointee.incident_id
        triggeredAtMs = c.pointee.triggered_at_ms
    }

    func fill(_ c: UnsafeMutablePointer<Klaxon__Assignment__V1__IncidentTriggeredRequest>, arena: CArena) {
        c.pointee.message_id = arena.string(messageID)
        c.pointee.incident_id = incidentID
        c.pointee.triggered_at_ms = triggeredAtMs
    }
}

/// Assignment → Notifier: page one user. Idempotent per (requestID, notification rule).
public struct NotifyRequest: Sendable, Equatable, CBridged {
    public static let method = "klaxon.notifier.v1.Notifier/Notify"
    public var requestID: String
    public var incidentID: UInt64
    public var userID: UInt64
    public var reason: NotifyReason?
    public var snapshot: IncidentSnapshot?
    public var requestedAtMs: Int64

    public init(
        requestID: String, incidentID: UInt64, userID: UInt64, reason: NotifyReason?, snapshot: IncidentSnapshot?,
        requestedAtMs: Int64
    ) {
        self.requestID = requestID
        self.incidentID = incidentID
        self.userID = userID
        self.reason = reason
        self.snapshot = snapshot
        self.requestedAtMs = requestedAtMs
    }

    nonisolated(unsafe) static let descriptor = descriptorOf { klaxon__notifier__v1__notify_request__init($0) }

    init(c: UnsafePointer<Klaxon__Notifier__V1__NotifyRequest>) throws(WireError) {
        requestID = CRead.string(c.pointee.request_id)
        incidentID = c.pointee.incident_id
        userID = c.pointee.user_id
        reason = try WireEnum.decode(c.pointee.reason.rawValue, field: "reason")
        snapshot = try CRead.nested(c.pointee.snapshot, field: "snapshot")
        requestedAtMs = c.pointee.requested_at_ms
    }

    func fill(_ c: UnsafeMutablePointer<Klaxon__Notifier__V1__NotifyRequest>, arena: CArena) {
        c.pointee.request_id = arena.string(requestID)
        c.pointee.incident_id = incidentID
        c.pointee.user_id = userID
        c.pointee.reason = Klaxon__Notifier__V1__NotifyReason(rawValue: WireEnum.encode(reason))
        c.pointee.snapshot = snapshot?.makeC(arena: arena)
        c.pointee.requested_at_ms = requestedAtMs
    }
}
