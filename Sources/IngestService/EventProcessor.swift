import Foundation
import KlaxonDomain
import Logging
import Shared

/// Turns monitor events into incidents. Every reply is sent after its transaction commits.
public struct EventProcessor: Sendable {
    public static let consumerActor = "integration"
    let pool: PostgresPool
    let clock: any WallClock
    /// Poked after a commit that wrote to Assignment's outbox.
    let assignmentOutbox: Waker
    let logger: Logger

    public init(pool: PostgresPool, clock: any WallClock, assignmentOutbox: Waker, logger: Logger) {
        self.pool = pool
        self.clock = clock
        self.assignmentOutbox = assignmentOutbox
        self.logger = logger
    }

    public func process(_ event: Event, encodedSize: Int? = nil) async throws -> EventResult {
        let violations = EventValidation.violations(of: event, encodedSize: encodedSize)
        guard violations.isEmpty, let action = event.eventAction else { throw RPCError.invalidArgument(violations) }
        let now = clock.nowMs()
        let result: EventResult
        do {
            switch action {
            case .trigger:
                result = try await trigger(event, now: now)
            case .acknowledge, .resolve:
                result = try await changeStatus(event, to: action == .acknowledge ? .acknowledged : .resolved, now: now)
            }
        } catch let error as PostgresError {
            logger.error("event failed", metadata: ["db.error": "\(error)"])
            throw error.rpcError
        }
        if result.outcome == .created { assignmentOutbox.poke() }
        return result
    }

    private struct Service: Sendable {
        var id: Int64
        var urgencyRule: UrgencyRule
    }

    private static func service(_ connection: PGConnection, routingKey: String) throws -> Service {
        let rows = try connection.query(
            "SELECT s.id, s.urgency_rule FROM routing_keys k JOIN services s ON s.id = k.service_id WHERE k.key = $1",
            [routingKey])
        guard !rows.isEmpty else {
            throw RPCError.invalidArgument([FieldViolation(field: "routing_key", description: "unknown routing key")])
        }
        return Service(id: rows.int64(0, "id")!, urgencyRule: UrgencyRule(rawValue: rows.string(0, "urgency_rule")!) ?? .high)
    }

    private func trigger(_ event: Event, now: Millis) async throws -> EventResult {
        let dedupKey = event.dedupKey.isEmpty ? UUID().uuidString.lowercased() : event.dedupKey
        let payload = event.payload!
        let details = JSON.object(payload.customDetails)
        let eventJSON = Self.eventJSON(event)
        return try await pool.transaction { connection in
            let service = try Self.service(connection, routingKey: event.routingKey)
            let urgency = service.urgencyRule.urgency(for: payload.severity)
            // Join the open incident if there is one; else create it. The partial unique index
            // decides races between replicas: a loser's insert does nothing and it joins instead.
            for _ in 0..<5 {
                let open = try connection.query(
                    "SELECT id FROM incidents WHERE service_id = $1 AND dedup_key = $2 AND status <> 'resolved' FOR UPDATE",
                    [service.id, dedupKey])
                if let incidentID = open.int64(0, "id"), !open.isEmpty {
                    try connection.query(
                        """
                        UPDATE alerts SET count = count + 1, last_at_ms = $2
                        WHERE id = (SELECT min(id) FROM alerts WHERE incident_id = $1)
                        """, [incidentID, now])
                    try connection.query("UPDATE incidents SET updated_at_ms = $2 WHERE id = $1", [incidentID, now])
                    try Timeline.append(
                        connection, incidentID: incidentID,
                        TimelineEntry(at: now, type: .alertDeduplicated, actor: Self.consumerActor,
                                      details: ["summary": payload.summary, "source": payload.source]))
                    return EventResult(
                        dedupKey: dedupKey, incidentID: UInt64(incidentID), outcome: .deduplicated,
                        message: "joined the open incident with this dedup key")
                }
                let inserted = try connection.query(
                    """
                    INSERT INTO incidents (service_id, title, status, urgency, severity, dedup_key, details, created_at_ms, updated_at_ms)
                    VALUES ($1, $2, 'triggered', $3, $4, $5, $6::jsonb, $7, $7)
                    ON CONFLICT (service_id, dedup_key) WHERE status <> 'resolved' DO NOTHING
                    RETURNING id
                    """,
                    [service.id, payload.summary, urgency.rawValue, payload.severity?.rawValue ?? "", dedupKey, details, now])
                guard let incidentID = inserted.int64(0, "id"), !inserted.isEmpty else { continue }
                try connection.query(
                    """
                    INSERT INTO alerts (incident_id, summary, source, severity, event, first_at_ms, last_at_ms)
                    VALUES ($1, $2, $3, $4, $5::jsonb, $6, $6)
                    """, [incidentID, payload.summary, payload.source, payload.severity?.rawValue ?? "", eventJSON, now])
                try Timeline.append(
                    connection, incidentID: incidentID,
                    TimelineEntry(at: now, type: .trigger, actor: Self.consumerActor,
                                  details: ["summary": payload.summary, "source": payload.source, "dedup_key": dedupKey]))
                let messageID = Outbox.newMessageID()
                let message = IncidentTriggeredRequest(messageID: messageID, incidentID: UInt64(incidentID), triggeredAtMs: now)
                try Outbox.enqueue(
                    connection, destination: "assignment", method: IncidentTriggeredRequest.method,
                    messageID: messageID, body: message.wireBytes(), now: now)
                return EventResult(dedupKey: dedupKey, incidentID: UInt64(incidentID), outcome: .created, message: "incident created")
            }
            throw RPCError(.aborted, "the incident for this dedup key kept changing; retry")
        }
    }

    private func changeStatus(_ event: Event, to status: IncidentStatus, now: Millis) async throws -> EventResult {
        try await pool.transaction { connection in
            let service = try Self.service(connection, routingKey: event.routingKey)
            let open = try connection.query(
                "SELECT id, status FROM incidents WHERE service_id = $1 AND dedup_key = $2 AND status <> 'resolved' FOR UPDATE",
                [service.id, event.dedupKey])
            guard let incidentID = open.int64(0, "id"), !open.isEmpty else {
                return EventResult(dedupKey: event.dedupKey, incidentID: 0, outcome: .ignored, message: "no open incident with this dedup key")
            }
            let outcome: EventOutcome = status == .resolved ? .resolved : .acknowledged
            if status == .resolved {
                try connection.query(
                    "UPDATE incidents SET status = 'resolved', resolved_at_ms = $2, updated_at_ms = $2, escalate_at_ms = NULL WHERE id = $1",
                    [incidentID, now])
                try Timeline.append(connection, incidentID: incidentID, TimelineEntry(at: now, type: .resolve, actor: Self.consumerActor))
            } else {
                try connection.query(
                    "UPDATE incidents SET status = 'acknowledged', updated_at_ms = $2, escalate_at_ms = NULL WHERE id = $1",
                    [incidentID, now])
                try connection.query(
                    "INSERT INTO acknowledgements (incident_id, actor, at_ms) VALUES ($1, $2, $3)",
                    [incidentID, Self.consumerActor, now])
                try Timeline.append(connection, incidentID: incidentID, TimelineEntry(at: now, type: .acknowledge, actor: Self.consumerActor))
            }
            return EventResult(dedupKey: event.dedupKey, incidentID: UInt64(incidentID), outcome: outcome, message: "incident \(outcome.rawValue)")
        }
    }

    /// The event as stored on its alert (for the incident page and postmortems).
    static func eventJSON(_ event: Event) -> String {
        var object: [String: Any] = ["routing_key_suffix": String(event.routingKey.suffix(4)), "dedup_key": event.dedupKey]
        if let payload = event.payload {
            object["payload"] = [
                "summary": payload.summary, "source": payload.source, "severity": payload.severity?.rawValue ?? "",
                "timestamp_ms": payload.timestampMs, "component": payload.component, "group": payload.group,
                "class": payload.eventClass, "custom_details": payload.customDetails,
            ] as [String: Any]
        }
        object["links"] = event.links.map { ["href": $0.href, "text": $0.text] }
        object["images"] = event.images.map { ["src": $0.src, "href": $0.href, "alt": $0.alt] }
        object["client"] = event.client
        object["client_url"] = event.clientURL
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }
}
