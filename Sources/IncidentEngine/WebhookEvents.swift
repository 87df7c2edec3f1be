import Foundation
import KlaxonDomain
import NIOCore
import Shared
import Synchronization

/// Outbound webhook events (issue 28, point 5) in PagerDuty's v3 shape,
/// `{"event": {id, event_type, resource_type, occurred_at, agent, client, data}}`, one delivery row
/// per matching subscription, written in the transaction of the change (queued with the save:
/// no round trip of its own).
public enum WebhookEvents {
    public static let types = [
        "incident.triggered", "incident.acknowledged", "incident.unacknowledged", "incident.escalated", "incident.reassigned",
        "incident.resolved", "incident.annotated", "incident.priority_updated", "incident.responder.added", "incident.responder.replied",
        "incident.status_update_published", "incident.major_declared", "heartbeat.expired", "heartbeat.restored",
        "maintenance_window.started", "maintenance_window.ended",
    ]

    /// Fields an event adds to `data` beside the incident's (the responder, the status update…).
    public typealias Extra = @Sendable (inout JSONWriter) -> Void

    /// A new subscription's secret: `whsec_` and 24 random bytes in base64 (Standard Webhooks'
    /// format; PagerDuty's signature keys on the whole text).
    public static func newSecret() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<24).map { _ in UInt8.random(in: 0...255, using: &generator) }
        return "whsec_" + Data(bytes).base64EncodedString()
    }

    /// A secret given in YAML: Standard Webhooks' `whsec_` and base64 of 24–64 bytes.
    public static func validSecret(_ secret: String) -> Bool {
        guard secret.hasPrefix("whsec_"), let bytes = Data(base64Encoded: String(secret.dropFirst(6))) else { return false }
        return (24...64).contains(bytes.count)
    }

    static let insert = """
        INSERT INTO webhook_deliveries (subscription_id, event_id, event_type, incident_id, body, next_attempt_at_ms, created_at_ms)
        SELECT s.id, $1, $2, $3, $4, $5, $5 FROM webhook_subscriptions s
        WHERE s.enabled AND (cardinality(s.event_types) = 0 OR $2 = ANY(s.event_types))
          AND (cardinality(s.service_ids) = 0 OR $6::bigint = ANY(s.service_ids))
        """

    /// Who did it: a user, an integration, or nobody in particular (Klaxon's own timers).
    struct Agent: Equatable {
        var type: String
        var id: String
        var summary: String
    }

    /// The events a transition is, in order.
    static func events(old: IncidentState, transition: IncidentTransition) -> [(type: String, agent: Agent?)] {
        var events: [(type: String, agent: Agent?)] = []
        let new = transition.state
        if !old.triggerApplied && new.triggerApplied { events.append(("incident.triggered", nil)) }
        var newAcks = new.acknowledgements.dropFirst(old.acknowledgements.count).makeIterator()
        for effect in transition.effects {
            guard case let .timeline(entry) = effect else { continue }
            let agent = agent(entry.actor)
            switch entry.type {
            case .acknowledge:
                let ack = newAcks.next()
                events.append(("incident.acknowledged", ack?.user.map { Agent(type: "user_reference", id: String($0), summary: entry.actor) } ?? agent))
            case .unacknowledge, .ackTimeout: events.append(("incident.unacknowledged", agent))
            case .escalate where entry.details["reason"] != "empty level": events.append(("incident.escalated", agent))
            case .reassign: events.append(("incident.reassigned", agent))
            case .resolve: events.append(("incident.resolved", agent))
            case .note: events.append(("incident.annotated", agent))
            default: break
            }
        }
        return events
    }

    static func agent(_ actor: String) -> Agent? {
        switch actor {
        case "system", "": return nil
        case "integration": return Agent(type: "integration_reference", id: "integration", summary: "a monitor's event")
        default:
            // "user 3 (alice's phone)" from the API and chat; a token's name otherwise.
            let parts = actor.split(separator: " ")
            if parts.count >= 2, parts[0] == "user", let id = UInt64(parts[1]) { return Agent(type: "user_reference", id: String(id), summary: actor) }
            return Agent(type: "api_token_reference", id: actor, summary: actor)
        }
    }

    /// `{"event": {id, event_type, resource_type, occurred_at, agent, client, "data": {` — the
    /// caller writes data's fields, then closes the three objects.
    static func beginEnvelope(_ json: inout JSONWriter, eventID: String, type: String, resourceType: String, agent: Agent?, now: Millis) {
        json.beginObject()
        json.beginObject("event")
        json.field("id", eventID)
        json.field("event_type", type)
        json.field("resource_type", resourceType)
        json.field("occurred_at", RFC3339.string(millis: now))
        if let agent {
            json.beginObject("agent")
            json.field("id", agent.id)
            json.field("type", agent.type)
            json.field("summary", agent.summary)
            json.endObject()
        } else {
            json.field("agent", json: "null")
        }
        json.field("client", json: "null")
        json.beginObject("data")
    }

    static func body(
        _ record: IncidentRecord, state: IncidentState, type: String, agent: Agent?, eventID: String, now: Millis, note: String?, extra: Extra? = nil
    ) -> String {
        var json = JSONWriter(capacity: 1024)
        beginEnvelope(&json, eventID: eventID, type: type, resourceType: "incident", agent: agent, now: now)
        json.field("id", String(record.id))
        json.field("type", "incident")
        json.field("number", record.number)
        json.field("title", record.title)
        json.field("status", state.status.rawValue)
        json.field("urgency", state.urgency.rawValue)
        json.field("incident_key", record.dedupKey)
        json.field("created_at", RFC3339.string(millis: record.createdAtMs))
        json.beginObject("service")
        json.field("id", String(record.serviceID))
        json.field("type", "service_reference")
        json.field("summary", record.serviceName)
        json.endObject()
        json.beginArray("assignees")
        for user in state.assignees {
            json.beginObject()
            json.field("id", String(user))
            json.field("type", "user_reference")
            json.endObject()
        }
        json.endArray()
        json.field("escalation_level", Int64(state.level))
        if let note { json.field("note", note) }
        extra?(&json)
        json.endObject()
        json.endObject()
        json.endObject()
        return json.string
    }

    /// Whether any subscription is enabled, per database, as last read (and until when that
    /// holds, monotonic: a cache age, not a domain instant): the hot path pays nothing while
    /// nobody subscribes. A subscription made in this process counts at once (`subscribed()`),
    /// one made elsewhere within 2 s.
    static let known = Mutex<[String: (any: Bool, until: NIODeadline)]>([:])

    public static func subscribed() { known.withLock { $0.removeAll() } }

    public static func anySubscription(_ connection: PGConnection) throws -> Bool {
        let key = connection.databaseKey
        if let cached = known.withLock({ $0[key] }), NIODeadline.now() < cached.until { return cached.any }
        let any = try connection.query("SELECT EXISTS (SELECT 1 FROM webhook_subscriptions WHERE enabled) AS any").bool(0, "any") ?? true
        known.withLock { $0[key] = (any, .now() + .seconds(2)) }
        return any
    }

    /// Queues the transition's events for every matching subscription (nothing when none match).
    static func enqueue(_ connection: PGConnection, _ record: IncidentRecord, old: IncidentState, transition: IncidentTransition, now: Millis) throws {
        let events = events(old: old, transition: transition)
        guard !events.isEmpty, try anySubscription(connection) else { return }
        let notes = transition.effects.compactMap { effect -> String? in
            if case let .timeline(entry) = effect, entry.type == .note { entry.details["text"] } else { nil }
        }
        var noteIndex = 0
        for event in events {
            var note: String?
            if event.type == "incident.annotated", noteIndex < notes.count {
                note = notes[noteIndex]
                noteIndex += 1
            }
            let eventID = RandomID.uuid()
            try connection.enqueue(insert, [
                eventID, event.type, record.id, body(record, state: transition.state, type: event.type, agent: event.agent, eventID: eventID, now: now, note: note),
                now, record.serviceID,
            ])
        }
    }

    /// A maintenance window's occurrence began or ended: no incident; a subscription filtered by
    /// service hears it when the window covers one of its services.
    static func enqueueWindow(
        _ connection: PGConnection, _ window: MaintenanceWindow, description: String, services: [Int64], type: String,
        occurrence: (start: Millis, end: Millis), now: Millis
    ) throws {
        let eventID = RandomID.uuid()
        var json = JSONWriter(capacity: 512)
        beginEnvelope(&json, eventID: eventID, type: type, resourceType: "maintenance_window", agent: nil, now: now)
        json.field("id", String(window.id))
        json.field("type", "maintenance_window")
        json.field("description", description)
        json.field("mode", window.mode.rawValue)
        json.field("start_time", RFC3339.string(millis: occurrence.start))
        json.field("end_time", RFC3339.string(millis: occurrence.end))
        json.beginArray("services")
        for service in services {
            json.beginObject()
            json.field("id", String(service))
            json.field("type", "service_reference")
            json.endObject()
        }
        json.endArray()
        json.endObject()
        json.endObject()
        json.endObject()
        try connection.enqueue(
            """
            INSERT INTO webhook_deliveries (subscription_id, event_id, event_type, incident_id, body, next_attempt_at_ms, created_at_ms)
            SELECT s.id, $1, $2, NULL, $3, $4, $4 FROM webhook_subscriptions s
            WHERE s.enabled AND (cardinality(s.event_types) = 0 OR $2 = ANY(s.event_types))
              AND (cardinality(s.service_ids) = 0 OR s.service_ids && $5::bigint[])
            """, [eventID, type, json.string, now, PGArray(services)])
    }

    /// One event about an incident changed outside the incident rules (its priority; declared
    /// major; a responder requested or answering; a status update; its heartbeat), in the
    /// caller's transaction. `agentUser` names the user who did it when the actor text does not.
    public static func enqueue(
        _ connection: PGConnection, incidentID: Int64, type: String, actor: String, agentUser: UInt64? = nil, now: Millis, extra: Extra? = nil
    ) throws {
        guard try anySubscription(connection), let record = try IncidentStore.load(connection, id: incidentID) else { return }
        let eventID = RandomID.uuid()
        let who = agentUser.map { Agent(type: "user_reference", id: String($0), summary: actor) } ?? agent(actor)
        try connection.enqueue(insert, [
            eventID, type, record.id, body(record, state: record.state, type: type, agent: who, eventID: eventID, now: now, note: nil, extra: extra),
            now, record.serviceID,
        ])
    }
}
