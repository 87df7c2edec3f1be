import Foundation
import IncidentEngine
import KlaxonDomain
import Shared

/// The Opsgenie Alert API (issue 27, point 1), so monitors configured for Opsgenie — Alertmanager's
/// `opsgenie_configs`, Grafana's Opsgenie contact point, Zabbix's stock media type, the SDKs — only
/// change the host. The API key (`Authorization: GenieKey …`) is a routing key; an alert is an
/// incident, its alias the dedup key. Every call is processed and committed before its 202, and
/// its outcome kept for `GET /v2/alerts/requests/{id}` in Opsgenie's shape (`data.success`,
/// `status`, `alertId`, `alias`): closing a closed alert is a success, an unknown alias is
/// `success: false`, "Alert does not exist", and a close before any create creates nothing.
public enum OpsgenieAlerts {
    public static let maxMessage = 130
    public static let maxAlias = 512
    public static let maxDescription = 15_000
    public static let maxNote = 25_000

    /// An alias as the incident's dedup key (one longer than a dedup key allows is hashed).
    public static func dedupKey(alias: String) -> String {
        alias.count <= EventValidation.maxDedupKey ? alias : "opsgenie-" + Secrets.sha256Hex(alias, bytes: 16)
    }

    /// Opsgenie's priority as the event's severity: P1 critical, P2 error, P3 warning, P4–P5 info.
    public static func severity(priority: String) -> Severity {
        switch priority {
        case "P1": .critical
        case "P2": .error
        case "P3": .warning
        default: .info
        }
    }

    /// A create request (`POST /v2/alerts`).
    public struct Create: Sendable, Equatable {
        public var message: String
        public var alias: String
        public var description: String
        public var priority: String
        public var source: String
        public var entity: String
        public var user: String
        public var note: String
        public var tags: [String]
        public var details: [String: String]
    }

    /// The body as a JSON object, or Opsgenie's 422 message.
    static func object(_ body: [UInt8], empty: Bool = false) -> (object: [String: Any]?, problem: String?) {
        if empty, body.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) { return ([:], nil) }
        if let problem = StrictJSON.problem(body) { return (nil, "Body is not valid JSON: \(problem)") }
        guard let object = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] else { return (nil, "Body must be a JSON object") }
        if PagerDutyEvents.containsNUL(object) { return (nil, "Body contains a NUL character") }
        return (object, nil)
    }

    static func text(_ object: [String: Any], _ key: String, _ problems: inout [String]) -> String {
        switch object[key] {
        case nil, is NSNull: return ""
        case let value as String: return value
        default:
            problems.append("\(key) must be a string")
            return ""
        }
    }

    public static func parseCreate(_ body: [UInt8]) -> (create: Create?, problem: String?) {
        let (object, problem) = object(body)
        guard let object else { return (nil, problem) }
        var problems: [String] = []
        var create = Create(
            message: text(object, "message", &problems), alias: text(object, "alias", &problems), description: text(object, "description", &problems),
            priority: text(object, "priority", &problems), source: text(object, "source", &problems), entity: text(object, "entity", &problems),
            user: text(object, "user", &problems), note: text(object, "note", &problems), tags: [], details: [:])
        if create.message.trimmingCharacters(in: .whitespaces).isEmpty { problems.append("Message can not be empty.") }
        if create.alias.count > maxAlias { problems.append("Alias can not be longer than \(maxAlias) characters.") }
        if create.priority.isEmpty { create.priority = "P3" }
        if !["P1", "P2", "P3", "P4", "P5"].contains(create.priority) { problems.append("Priority should be one of [P1, P2, P3, P4, P5].") }
        switch object["tags"] {
        case nil, is NSNull: break
        case let tags as [Any]: create.tags = tags.compactMap { $0 as? String }
        default: problems.append("tags must be an array of strings")
        }
        switch object["details"] {
        case nil, is NSNull: break
        case let details as [String: Any]:
            create.details = details.mapValues { ($0 as? String) ?? "\($0)" }
        default: problems.append("details must be an object")
        }
        // Opsgenie cuts what is too long rather than refusing it.
        if create.message.count > maxMessage { create.message = String(create.message.prefix(maxMessage)) }
        if create.description.count > maxDescription { create.description = String(create.description.prefix(maxDescription)) }
        return problems.isEmpty ? (create, nil) : (nil, problems.joined(separator: " "))
    }

    /// The event a create is.
    public static func event(_ create: Create, routingKey: String) -> (event: Event, customDetailsJSON: String) {
        var details = JSONWriter(capacity: 512)
        details.beginObject()
        details.field("description", create.description)
        details.field("entity", create.entity)
        details.field("priority", create.priority)
        details.field("tags", create.tags.joined(separator: ","))
        details.field("details", create.details)
        details.endObject()
        var flat: [String: String] = [:]
        for (key, value) in create.details.prefix(EventValidation.maxCustomDetails - 2) where !key.isEmpty && key.count <= EventValidation.maxShortField {
            flat[key] = value
        }
        if !create.description.isEmpty { flat["description"] = create.description }
        if !create.entity.isEmpty { flat["entity"] = create.entity }
        let source = create.source.isEmpty ? "opsgenie" : String(create.source.prefix(EventValidation.maxSource))
        return (Event(
            routingKey: routingKey, eventAction: .trigger, dedupKey: create.alias.isEmpty ? RandomID.uuid() : dedupKey(alias: create.alias),
            payload: Payload(summary: create.message, source: source, severity: severity(priority: create.priority), customDetails: flat),
            client: "Opsgenie Alert API"), details.string)
    }

    /// An alert named by a call: `id` (the incident id), `alias` (its dedup key) or `tiny` (its
    /// number), on the key's service. By alias, the open incident, else the latest one.
    public enum IdentifierType: String, Sendable {
        case id, alias, tiny
    }

    public struct Alert: Sendable {
        public var incidentID: Int64
        public var dedupKey: String
        public var resolved: Bool
    }

    static func find(_ connection: PGConnection, serviceID: Int64, identifier: String, type: IdentifierType) throws -> Alert? {
        let rows: PGResult
        switch type {
        case .alias:
            rows = try connection.query(
                "SELECT id, dedup_key, status FROM incidents WHERE service_id = $1 AND dedup_key = $2 ORDER BY status <> 'resolved' DESC, id DESC LIMIT 1",
                [serviceID, dedupKey(alias: identifier)])
        case .id, .tiny:
            guard let number = Int64(identifier), number > 0 else { return nil }
            rows = try connection.query(
                "SELECT id, dedup_key, status FROM incidents WHERE service_id = $1 AND \(type == .id ? "id" : "number") = $2",
                [serviceID, number])
        }
        guard let id = rows.int64(0, "id") else { return nil }
        return Alert(incidentID: id, dedupKey: rows.string(0, "dedup_key")!, resolved: rows.string(0, "status") == "resolved")
    }

    /// The outcome of one call, kept for `GET /v2/alerts/requests/{id}` (three days).
    public struct Outcome: Sendable {
        public var action: String
        public var success: Bool
        public var status: String
        public var alertID: String
        public var alias: String
    }

    static let insertRequests = BatchedRows.Statement("""
        INSERT INTO opsgenie_requests (id, service_id, action, success, status, alert_id, alias, processed_at_ms)
        SELECT r.id::uuid, r.service_id, r.action, r.success, r.status, r.alert_id, r.alias, r.processed_at_ms
        FROM unnest($1::text[], $2::bigint[], $3::text[], $4::boolean[], $5::text[], $6::text[], $7::text[], $8::bigint[])
             AS r(id, service_id, action, success, status, alert_id, alias, processed_at_ms)
        """)

    /// The call's outcome, as a row of the batch's one insert.
    static func record(_ connection: PGConnection, _ rows: BatchedRows, requestID: String, serviceID: Int64, _ outcome: Outcome, now: Millis) throws {
        rows.add(insertRequests, [
            .text(requestID), .int(serviceID), .text(outcome.action), .bool(outcome.success), .text(outcome.status), .text(outcome.alertID),
            .text(outcome.alias), .int(now),
        ])
        // Now and then (one call in 16), the outcomes older than three days go.
        if requestID.hasPrefix("0") {
            try connection.enqueue(
                "DELETE FROM opsgenie_requests WHERE id IN (SELECT id FROM opsgenie_requests WHERE processed_at_ms < $1 LIMIT 1000)",
                [now - 3 * 86_400_000])
        }
    }

    /// Opsgenie's reply bodies.
    static func accepted(requestID: String, took: Double) -> [UInt8] {
        PagerDutyEvents.body(["result": "Request will be processed", "took": took, "requestId": requestID])
    }

    static func failure(_ message: String, requestID: String) -> [UInt8] {
        PagerDutyEvents.body(["message": message, "took": 0.0, "requestId": requestID])
    }

    static func requestStatus(_ rows: PGResult, requestID: String) -> [UInt8] {
        let processed = Date(timeIntervalSince1970: Double(rows.int64(0, "processed_at_ms")!) / 1000)
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let success = rows.bool(0, "success")!
        return PagerDutyEvents.body([
            "data": [
                "success": success, "isSuccess": success, "action": rows.string(0, "action")!, "processedAt": formatter.string(from: processed),
                "integrationId": String(rows.int64(0, "service_id")!), "status": rows.string(0, "status")!,
                "alertId": rows.string(0, "alert_id")!, "alias": rows.string(0, "alias")!,
            ] as [String: Any],
            "took": 0.001, "requestId": RandomID.uuid(),
        ])
    }
}
