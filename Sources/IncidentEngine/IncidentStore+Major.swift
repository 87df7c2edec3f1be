import KlaxonDomain
import Shared

/// Priorities, major incidents and their children: the incident rows' side of major-incident
/// response (the response itself is ResponseStore's). Every caller — the API, chat, the surge
/// loop — opens, declares and links through here.
extension IncidentStore {
    /// Klaxon's own service that major incidents opened from nothing belong to (never listed,
    /// exported or pruned; made on first use).
    public static let majorIncidentsService = "Major incidents"

    /// Points an open incident at another escalation policy; the rules then restart it at level 1
    /// (`reassignToPolicy`).
    public static func switchPolicy(_ connection: PGConnection, incidentID: Int64, policyID: Int64) throws {
        guard try policy(connection, id: policyID) != nil else {
            throw RPCError.invalidArgument([FieldViolation(field: "policy_id", description: "escalation policy \(policyID) does not exist")])
        }
        let status = try connection.query("SELECT status FROM incidents WHERE id = $1 FOR UPDATE", [incidentID])
        guard let current = status.string(0, "status"), !status.isEmpty else {
            throw RPCError(.notFound, "incident \(incidentID) does not exist")
        }
        guard current != IncidentStatus.resolved.rawValue else { throw IncidentCommandError.failedPrecondition("the incident is resolved") }
        try connection.query("UPDATE incidents SET escalation_policy_id = $2 WHERE id = $1", [incidentID, policyID])
    }

    public static func setPriority(_ connection: PGConnection, incidentID: Int64, _ priority: Priority?, actor: String, now: Millis) throws {
        let updated = try connection.query(
            "UPDATE incidents SET priority = $2, updated_at_ms = $3 WHERE id = $1 RETURNING id", [incidentID, priority?.rawValue, now])
        guard updated.count == 1 else { throw RPCError(.notFound, "incident \(incidentID) does not exist") }
        try Timeline.append(connection, incidentID: incidentID, TimelineEntry(
            at: now, type: .note, actor: actor, details: ["priority": priority?.rawValue ?? "none"]))
        try WebhookEvents.enqueue(connection, incidentID: incidentID, type: "incident.priority_updated", actor: actor, now: now)
    }

    /// A new major incident, on Klaxon's own service.
    public static func openMajor(_ connection: PGConnection, title: String, priority: Priority, actor: String, now: Millis) throws -> Int64 {
        var serviceID = try connection.query(
            "SELECT id FROM services WHERE system AND name = $1 AND deleted_at_ms IS NULL", [majorIncidentsService]).int64(0, "id")
        if serviceID == nil {
            serviceID = try connection.query(
                """
                INSERT INTO services (name, system, ack_timeout_seconds, auto_resolve_timeout_seconds, urgency_rule, events_per_minute)
                VALUES ($1, true, 0, 0, 'high', 0) RETURNING id
                """, [majorIncidentsService]).int64(0, "id")
        }
        let majorID = try connection.query(
            """
            INSERT INTO incidents (service_id, title, status, urgency, dedup_key, priority, major, trigger_applied, created_at_ms, updated_at_ms)
            VALUES ($1, $2, 'triggered', 'high', 'major-' || gen_random_uuid(), $4, true, true, $3, $3) RETURNING id
            """, [serviceID!, title, now, priority.rawValue]).int64(0, "id")!
        try Timeline.append(connection, incidentID: majorID, TimelineEntry(
            at: now, type: .majorDeclared, actor: actor, details: ["reason": title, "priority": priority.rawValue]))
        try WebhookEvents.enqueue(connection, incidentID: majorID, type: "incident.major_declared", actor: actor, now: now)
        return majorID
    }

    /// An open incident becomes major (once; not a child of another major incident).
    public static func declareMajor(_ connection: PGConnection, incidentID: Int64, priority: Priority, actor: String, now: Millis) throws {
        let found = try connection.query("SELECT major, major_incident_id, status FROM incidents WHERE id = $1 FOR UPDATE", [incidentID])
        guard found.count == 1 else { throw RPCError(.notFound, "incident \(incidentID) does not exist") }
        if found.bool(0, "major")! { throw RPCError(.failedPrecondition, "incident \(incidentID) is already major") }
        if let parent = found.int64(0, "major_incident_id") {
            throw RPCError(.failedPrecondition, "incident \(incidentID) is linked to major incident \(parent): declare that one, or unlink it first")
        }
        if found.string(0, "status") == IncidentStatus.resolved.rawValue {
            throw RPCError(.failedPrecondition, "incident \(incidentID) is resolved")
        }
        try connection.query("UPDATE incidents SET major = true, priority = $2, updated_at_ms = $3 WHERE id = $1", [incidentID, priority.rawValue, now])
        try Timeline.append(connection, incidentID: incidentID, TimelineEntry(
            at: now, type: .majorDeclared, actor: actor, details: ["priority": priority.rawValue]))
        try WebhookEvents.enqueue(connection, incidentID: incidentID, type: "incident.major_declared", actor: actor, now: now)
    }

    /// Links children to an open major incident (its response must be open: ResponseCore's
    /// rule); merging moves their alerts to it and resolves them (their timelines stay).
    public static func link(
        _ connection: PGConnection, majorID: Int64, children requested: [Int64], merge: Bool, actor: String, now: Millis
    ) throws -> Int {
        let ids = Array(Set(requested)).sorted()
        try ResponseStore.run(
            .link(children: ids.map(UInt64.init), merge: merge, actor: actor), incidentID: majorID, connection: connection, now: now)
        let children = try connection.query(
            "SELECT id, major, major_incident_id FROM incidents WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE", [PGArray(ids)])
        var problems: [String] = []
        let found = Set((0..<children.count).map { children.int64($0, "id")! })
        for id in ids where !found.contains(id) { problems.append("incident \(id) does not exist") }
        for row in 0..<children.count {
            let id = children.int64(row, "id")!
            if id == majorID { problems.append("incident \(id) is the major incident itself") }
            else if children.bool(row, "major")! { problems.append("incident \(id) is itself a major incident") }
            else if let other = children.int64(row, "major_incident_id"), other != majorID {
                problems.append("incident \(id) is linked to major incident \(other)")
            }
        }
        guard problems.isEmpty else { throw RPCError(.failedPrecondition, problems.joined(separator: "; ")) }
        try connection.query("UPDATE incidents SET major_incident_id = $1 WHERE id = ANY($2::bigint[])", [majorID, PGArray(ids)])
        try Timeline.enqueueMany(connection, ids.map { id in
            (id, TimelineEntry(at: now, type: .linked, actor: actor,
                               details: ["major_incident": String(majorID), "merged": merge ? "true" : "false"]))
        })
        var notified = 0
        if merge {
            try connection.query("UPDATE alerts SET incident_id = $1 WHERE incident_id = ANY($2::bigint[])", [majorID, PGArray(ids)])
            let open = try connection.query(
                "SELECT id FROM incidents WHERE id = ANY($1::bigint[]) AND status <> 'resolved' ORDER BY id", [PGArray(ids)])
            for row in 0..<open.count {
                notified += try run(
                    .resolve(actor: actor, reason: "merged into major incident \(majorID)"), incidentID: open.int64(row, "id")!,
                    connection: connection, now: now)?.notified ?? 0
            }
        }
        return notified
    }

    /// Surge detection's links: the incidents created in (after, upTo] not linked yet join the
    /// surge's major incident. Returns how many.
    @discardableResult
    public static func linkSurge(_ connection: PGConnection, majorID: Int64, after: Millis, upTo: Millis, now: Millis) throws -> Int {
        let linked = try connection.query(
            """
            UPDATE incidents SET major_incident_id = $1
            WHERE created_at_ms > $2::bigint AND created_at_ms <= $3::bigint AND NOT major AND NOT canary AND major_incident_id IS NULL
            RETURNING id
            """, [majorID, after, upTo])
        guard linked.count > 0 else { return 0 }
        let ids = (0..<linked.count).map { linked.int64($0, "id")! }
        let actor = "surge detection"
        try Timeline.enqueueMany(connection, ids.map { id in
            (id, TimelineEntry(at: now, type: .linked, actor: actor, details: ["major_incident": String(majorID)]))
        } + [(majorID, TimelineEntry(at: now, type: .linked, actor: actor, details: ["children": String(ids.count)]))])
        return ids.count
    }
}
