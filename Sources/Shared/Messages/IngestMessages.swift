import CProtobufC
import KlaxonDomain
import KlaxonProto

public struct Link: Sendable, Equatable, CBridged {
    public var href: String
    public var text: String

    public init(href: String, text: String = "") {
        self.href = href
        self.text = text
    }

    nonisolated(unsafe) static let descriptor = descriptorOf { klaxon__ingest__v1__link__init($0) }

    init(c: UnsafePointer<Klaxon__Ingest__V1__Link>) {
        href = CRead.string(c.pointee.href)
        text = CRead.string(c.pointee.text)
    }

    func fill(_ c: UnsafeMutablePointer<Klaxon__Ingest__V1__Link>, arena: CArena) {
        c.pointee.href = arena.string(href)
        c.pointee.text = arena.string(text)
    }
}

public struct Image: Sendable, Equatable, CBridged {
    public var src: String
    public var href: String
    public var alt: String

    public init(src: String, href: String = "", alt: String = "") {
        self.src = src
        self.href = href
        self.alt = alt
    }

    nonisolated(unsafe) static let descriptor = descriptorOf { klaxon__ingest__v1__image__init($0) }

    init(c: UnsafePointer<Klaxon__Ingest__V1__Image>) {
        src = CRead.string(c.pointee.src)
        href = CRead.string(c.pointee.href)
        alt = CRead.string(c.pointee.alt)
    }

    func fill(_ c: UnsafeMutablePointer<Klaxon__Ingest__V1__Image>, arena: CArena) {
        c.pointee.src = arena.string(src)
        c.pointee.href = arena.string(href)
        c.pointee.alt = arena.string(alt)
    }
}

public struct Payload: Sendable, Equatable, CBridged {
    public var summary: String
    public var source: String
    public var severity: Severity?
    public var timestampMs: Int64
    public var component: String
    public var group: String
    public var eventClass: String
    public var customDetails: [String: String]

    public init(
        summary: String, source: String, severity: Severity? = nil, timestampMs: Int64 = 0,
        component: String = "", group: String = "", eventClass: String = "", customDetails: [String: String] = [:]
    ) {
        self.summary = summary
        self.source = source
        self.severity = severity
        self.timestampMs = timestampMs
        self.component = component
        self.group = group
        self.eventClass = eventClass
        self.customDetails = customDetails
    }

    nonisolated(unsafe) static let descriptor = descriptorOf { klaxon__ingest__v1__payload__init($0) }
    nonisolated(unsafe) static let customDetailsEntryDescriptor: UnsafePointer<ProtobufCMessageDescriptor> = messageDescriptor { klaxon__ingest__v1__payload__custom_details_entry__init($0) }

    init(c: UnsafePointer<Klaxon__Ingest__V1__Payload>) throws(WireError) {
        summary = CRead.string(c.pointee.summary)
        source = CRead.string(c.pointee.source)
        severity = try WireEnum.decode(c.pointee.severity.rawValue, field: "severity")
        timestampMs = c.pointee.timestamp_ms
        component = CRead.string(c.pointee.component)
        group = CRead.string(c.pointee.group)
        eventClass = CRead.string(c.pointee.class_)
        customDetails = CRead.map(c.pointee.n_custom_details, c.pointee.custom_details) {
            (CRead.string($0.pointee.key), CRead.string($0.pointee.value))
        }
    }

    func fill(_ c: UnsafeMutablePointer<Klaxon__Ingest__V1__Payload>, arena: CArena) {
        c.pointee.summary = arena.string(summary)
        c.pointee.source = arena.string(source)
        c.pointee.severity = Klaxon__Ingest__V1__Severity(rawValue: WireEnum.encode(severity))
        c.pointee.timestamp_ms = timestampMs
        c.pointee.component = arena.string(component)
        c.pointee.group = arena.string(group)
        c.pointee.class_ = arena.string(eventClass)
        (c.pointee.n_custom_details, c.pointee.custom_details) = arena.map(customDetails, Self.customDetailsEntryDescriptor) {
            (entry: UnsafeMutablePointer<Klaxon__Ingest__V1__Payload__CustomDetailsEntry>, key, value) in
            entry.pointee.key = key
            entry.pointee.value = value
        }
    }
}

/// A monitor event (PagerDuty Events API v2 fields).
public struct Event: Sendable, Equatable, CBridged {
    public var routingKey: String
    public var eventAction: EventAction?
    public var dedupKey: String
    public var payload: Payload?
    public var links: [Link]
    public var images: [Image]
    public var client: String
    public var clientURL: String

    public init(
        routingKey: String, eventAction: EventAction?, dedupKey: String = "", payload: Payload? = nil,
        links: [Link] = [], images: [Image] = [], client: String = "", clientURL: String = ""
    ) {
        self.routingKey = routingKey
        self.eventAction = eventAction
        self.dedupKey = dedupKey
        self.payload = payload
        self.links = links
        self.images = images
        self.client = client
        self.clientURL = clientURL
    }

    nonisolated(unsafe) static let descriptor = descriptorOf { klaxon__ingest__v1__event__init($0) }

    init(c: UnsafePointer<Klaxon__Ingest__V1__Event>) throws(WireError) {
        routingKey = CRead.string(c.pointee.routing_key)
        eventAction = try WireEnum.decode(c.pointee.event_action.rawValue, field: "event_action")
        dedupKey = CRead.string(c.pointee.dedup_key)
        payload = try CRead.nested(c.pointee.payload, field: "payload")
        links = try CRead.messages(c.pointee.n_links, c.pointee.links, field: "links")
        images = try CRead.messages(c.pointee.n_images, c.pointee.images, field: "images")
        client = CRead.string(c.pointee.client)
        clientURL = CRead.string(c.pointee.client_url)
    }

    func fill(_ c: UnsafeMutablePointer<Klaxon__Ingest__V1__Event>, arena: CArena) {
        c.pointee.routing_key = arena.string(routingKey)
        c.pointee.event_action = Klaxon__Ingest__V1__EventAction(rawValue: WireEnum.encode(eventAction))
        c.pointee.dedup_key = arena.string(dedupKey)
        c.pointee.payload = payload?.makeC(arena: arena)
        (c.pointee.n_links, c.pointee.links) = arena.messages(links)
        (c.pointee.n_images, c.pointee.images) = arena.messages(images)
        c.pointee.client = arena.string(client)
        c.pointee.client_url = arena.string(clientURL)
    }
}

public struct EventResult: Sendable, Equatable, CBridged {
    public var dedupKey: String
    public var incidentID: UInt64
    public var outcome: EventOutcome?
    public var message: String

    public init(dedupKey: String, incidentID: UInt64, outcome: EventOutcome?, message: String = "") {
        self.dedupKey = dedupKey
        self.incidentID = incidentID
        self.outcome = outcome
        self.message = message
    }

    nonisolated(unsafe) static let descriptor = descriptorOf { klaxon__ingest__v1__event_result__init($0) }

    init(c: UnsafePointer<Klaxon__Ingest__V1__EventResult>) throws(WireError) {
        dedupKey = CRead.string(c.pointee.dedup_key)
        incidentID = c.pointee.incident_id
        outcome = try WireEnum.decode(c.pointee.outcome.rawValue, field: "outcome")
        message = CRead.string(c.pointee.message)
    }

    func fill(_ c: UnsafeMutablePointer<Klaxon__Ingest__V1__EventResult>, arena: CArena) {
        c.pointee.dedup_key = arena.string(dedupKey)
        c.pointee.incident_id = incidentID
        c.pointee.outcome = Klaxon__Ingest__V1__Outcome(rawValue: WireEnum.encode(outcome))
        c.pointee.message = arena.string(message)
    }
}

public struct SendEventsRequest: Sendable, Equatable, CBridged {
    public var events: [Event]
    public init(events: [Event]) { self.events = events }

    nonisolated(unsafe) static let descriptor = descriptorOf { klaxon__ingest__v1__send_events_request__init($0) }

    init(c: UnsafePointer<Klaxon__Ingest__V1__SendEventsRequest>) throws(WireError) {
        events = try CRead.messages(c.pointee.n_events, c.pointee.events, field: "events")
    }

    func fill(_ c: UnsafeMutablePointer<Klaxon__Ingest__V1__SendEventsRequest>, arena: CArena) {
        (c.pointee.n_events, c.pointee.events) = arena.messages(events)
    }
}

public struct SendEventsReply: Sendable, Equatable, CBridged {
    public struct Item: Sendable, Equatable, CBridged {
        public var status: RPCStatus
        public var result: EventResult?

        public init(status: RPCStatus, result: EventResult?) {
            self.status = status
            self.result = result
        }

        nonisolated(unsafe) static let descriptor = descriptorOf { klaxon__ingest__v1__send_events_reply__item__init($0) }

        init(c: UnsafePointer<Klaxon__Ingest__V1__SendEventsReply__Item>) throws(WireError) {
            status = try CRead.nested(c.pointee.status, field: "status") ?? .ok
            result = try CRead.nested(c.pointee.result, field: "result")
        }

        func fill(_ c: UnsafeMutablePointer<Klaxon__Ingest__V1__SendEventsReply__Item>, arena: CArena) {
            c.pointee.status = status.makeC(arena: arena)
            c.pointee.result = result?.makeC(arena: arena)
        }
    }

    public var items: [Item]
    public init(items: [Item]) { self.items = items }

    nonisolated(unsafe) static let descriptor = descriptorOf { klaxon__ingest__v1__send_events_reply__init($0) }

    init(c: UnsafePointer<Klaxon__Ingest__V1__SendEventsReply>) throws(WireError) {
        items = try CRead.messages(c.pointee.n_items, c.pointee.items, field: "items")
    }

    func fill(_ c: UnsafeMutablePointer<Klaxon__Ingest__V1__SendEventsReply>, arena: CArena) {
        (c.pointee.n_items, c.pointee.items) = arena.messages(items)
    }
}
