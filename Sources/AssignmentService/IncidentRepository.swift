import KlaxonDomain
import Shared

/// An incident row as Assignment needs it.
struct IncidentRecord: Sendable {
    var id: Int64
    var number: Int64
    var serviceID: Int64
    var serviceName: String
    var policyID: Int64?
    var title: String
    var status: IncidentStatus
    var urgency: Urgency
    var severity: String
    var dedupKey: String
    var details: [String: String]
    var createdAtMs: Millis

    func snapshot(at now: Millis) -> IncidentSnapshot {
        IncidentSnapshot(
            incidentID: UInt64(id), number: UInt64(number), title: title, status: status, urgency: urgency,
            serviceID: UInt64(serviceID), serviceName: serviceName, severity: severity, dedupKey: dedupKey,
            createdAtMs: createdAtMs, atMs: now, details: details)
    }
}

/// The SQL Assignment runs; every function runs inside the caller's transaction.
enum IncidentRepository {
    /// Loads and locks the incident, so actions on one incident are serialised.
    static func lock(_ connection: PGConnection, id: Int64) throws -> IncidentRecord? {
        let rows = try connection.query(
            """
            SELECT i.id, i.number, i.service_id, s.name AS service_name, s.escalation_policy_id, i.title, i.status,
                   i.urgency, i.severity, i.dedup_key, i.details::text AS details, i.created_at_ms
            FROM incidents i JOIN services s ON s.id = i.service_id
            WHERE i.id = $1 FOR UPDATE OF i
            """, [id])
        guard !rows.isEmpty else { return nil }
        return IncidentRecord(
            id: rows.int64(0, "id")!, number: rows.int64(0, "number")!, serviceID: rows.int64(0, "service_id")!,
            serviceName: rows.string(0, "service_name")!, policyID: rows.int64(0, "escalation_policy_id"),
            title: rows.string(0, "title")!, status: IncidentStatus(rawValue: rows.string(0, "status")!) ?? .triggered,
            urgency: Urgency(rawValue: rows.string(0, "urgency")!) ?? .high, severity: rows.string(0, "severity")!,
            dedupKey: rows.string(0, "dedup_key")!, details: JSON.stringMap(rows.string(0, "details")!),
            createdAtMs: rows.int64(0, "created_at_ms")!)
    }

    static func policy(_ connection: PGConnection, id: Int64) throws -> EscalationPolicy? {
        let policy = try connection.query("SELECT num_loops FROM escalation_policies WHERE id = $1", [id])
        guard let numLoops = policy.int(0, "num_loops"), !policy.isEmpty else { return nil }
        let rows = try connection.query(
            """
            SELECT l.position, l.escalation_delay_seconds, t.user_id
            FROM escalation_levels l LEFT JOIN escalation_targets t
              ON t.policy_id = l.policy_id AND t.level_position = l.position
            WHERE l.policy_id = $1 ORDER BY l.position, t.position
            """, [id])
        var levels: [EscalationLevel] = []
        var lastPosition = -1
        for row in 0..<rows.count {
            let position = rows.int(row, "position")!
            if position != lastPosition {
                levels.append(EscalationLevel(delaySeconds: UInt32(rows.int(row, "escalation_delay_seconds")!), targets: []))
                lastPosition = position
            }
            if let user = rows.uint64(row, "user_id") { levels[levels.count - 1].targets.append(.user(user)) }
        }
        return EscalationPolicy(levels: levels, numLoops: numLoops)
    }
}
