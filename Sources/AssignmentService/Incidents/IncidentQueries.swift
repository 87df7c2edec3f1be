import IncidentEngine
import KlaxonDomain
import Shared

/// Read-only incident queries over the binary protocol.
public struct IncidentQueries: Sendable {
    public static let defaultPageSize: UInt32 = 50
    public static let maxPageSize: UInt32 = 500
    let pool: PostgresPool

    public init(pool: PostgresPool) {
        self.pool = pool
    }

    public func register(into router: inout RPCRouter) {
        router.register(Assignment.GetIncident) { (request: GetIncidentRequest, _) in
            try await getIncident(request.incidentID)
        }
        router.register(Assignment.GetTimeline) { (request: GetIncidentRequest, _) in
            try await timeline(request.incidentID)
        }
        router.register(Assignment.ListIncidents) { (request: ListIncidentsRequest, _) in
            try await list(request)
        }
    }

    func getIncident(_ id: UInt64) async throws -> IncidentInfo {
        guard id > 0 else { throw RPCError.invalidArgument([FieldViolation(field: "incident_id", description: "is required")]) }
        guard let info = try await pool.withConnection({ connection -> IncidentInfo? in
            guard var info = try Self.info(connection, id: Int64(id)) else { return nil }
            info.alerts = try Self.alerts(connection, incidentID: Int64(id))
            info.recentChanges = try ChangeStore.list(connection, serviceID: Int64(info.serviceID), before: info.createdAtMs, limit: 20)
            return info
        }) else {
            throw RPCError(.notFound, "incident \(id) does not exist")
        }
        return info
    }

    /// The incident's alerts, oldest first (at most 500: an Alertmanager group can be large).
    static func alerts(_ connection: PGConnection, incidentID: Int64) throws -> [AlertInfo] {
        let rows = try connection.query(
            """
            SELECT id, summary, source, severity, count, first_at_ms, last_at_ms, coalesce(fingerprint, '') AS fingerprint, status,
                   coalesce(event -> 'labels', '{}') AS labels, coalesce(event -> 'annotations', '{}') AS annotations,
                   coalesce(event ->> 'generatorURL', '') AS generator_url,
                   coalesce((event ->> 'starts_at_ms')::bigint, 0) AS starts_at_ms, coalesce((event ->> 'ends_at_ms')::bigint, 0) AS ends_at_ms
            FROM alerts WHERE incident_id = $1 ORDER BY id LIMIT 500
            """, [incidentID])
        func strings(_ row: Int, _ column: String) -> [String: String] { JSON.stringMap(rows.string(row, column) ?? "{}") }
        return (0..<rows.count).map { row in
            AlertInfo(
                id: rows.uint64(row, "id")!, summary: rows.string(row, "summary")!, source: rows.string(row, "source")!,
                severity: rows.string(row, "severity")!, count: UInt32(rows.int(row, "count")!), firstAtMs: rows.int64(row, "first_at_ms")!,
                lastAtMs: rows.int64(row, "last_at_ms")!, fingerprint: rows.string(row, "fingerprint")!, status: rows.string(row, "status")!,
                labels: strings(row, "labels"), annotations: strings(row, "annotations"), startsAtMs: rows.int64(row, "starts_at_ms")!,
                endsAtMs: rows.int64(row, "ends_at_ms")!, generatorURL: rows.string(row, "generator_url")!)
        }
    }

    func timeline(_ id: UInt64) async throws -> GetTimelineReply {
        guard id > 0 else { throw RPCError.invalidArgument([FieldViolation(field: "incident_id", description: "is required")]) }
        let entries = try await pool.withConnection { connection -> [TimelineEntry]? in
            guard !(try connection.query("SELECT 1 FROM incidents WHERE id = $1", [Int64(id)]).isEmpty) else { return nil }
            return try Timeline.entries(connection, incidentID: Int64(id))
        }
        guard let entries else { throw RPCError(.notFound, "incident \(id) does not exist") }
        return GetTimelineReply(entries: entries.map {
            TimelineEntryView(atMs: $0.at, type: $0.type.rawValue, actor: $0.actor, details: $0.details)
        })
    }

    func list(_ request: ListIncidentsRequest) async throws -> ListIncidentsReply {
        guard request.pageSize <= Self.maxPageSize else {
            throw RPCError.invalidArgument([FieldViolation(field: "page_size", description: "must be at most \(Self.maxPageSize)")])
        }
        let pageSize = Int(request.pageSize == 0 ? Self.defaultPageSize : request.pageSize)
        return try await pool.withConnection { connection in
            let rows = try connection.query(
                """
                SELECT id FROM incidents
                WHERE ($1::text[] IS NULL OR status = ANY($1::text[]))
                  AND ($2::bigint = 0 OR service_id = $2::bigint)
                  AND ($3::bigint = 0 OR id < $3::bigint)
                  AND ($5::bigint = 0 OR major_incident_id = $5::bigint)
                  AND NOT canary
                ORDER BY id DESC LIMIT $4
                """,
                [request.statuses.isEmpty ? nil : PGArray(request.statuses.map(\.rawValue)), Int64(request.serviceID),
                 Int64(request.beforeID), pageSize + 1, Int64(request.majorIncidentID)])
            let ids = (0..<rows.count).map { rows.int64($0, "id")! }
            let page = Array(ids.prefix(pageSize))
            let incidents = try Self.infos(connection, ids: page)
            return ListIncidentsReply(incidents: incidents, nextBeforeID: ids.count > pageSize ? UInt64(page.last!) : 0)
        }
    }

    /// A page of incidents in four queries whatever its size: rows, assignees, acknowledgements, alert counts.
    static func infos(_ connection: PGConnection, ids: [Int64]) throws -> [IncidentInfo] {
        guard !ids.isEmpty else { return [] }
        let idArray = PGArray(ids)
        let rows = try connection.query(
            """
            SELECT i.id, i.number, i.service_id, s.name AS service_name, i.title, i.status, i.urgency, i.severity, i.dedup_key,
                   i.created_at_ms, i.resolved_at_ms, i.current_level, i.current_loop, i.escalate_at_ms, i.ack_timeout_at_ms,
                   i.snoozed_until_ms, i.auto_resolve_at_ms, i.exhausted, i.trigger_applied, i.held_until_ms, i.priority, i.major, i.major_incident_id,
                   i.conference_url, i.conference_phone,
                   CASE WHEN i.major THEN (SELECT count(*) FROM incidents c WHERE c.major_incident_id = i.id) ELSE 0 END AS child_count
            FROM incidents i JOIN services s ON s.id = i.service_id
            WHERE i.id = ANY($1::bigint[]) ORDER BY i.id DESC
            """, [idArray])
        let assigned = try connection.query(
            "SELECT incident_id, user_id FROM incident_assignments WHERE incident_id = ANY($1::bigint[]) ORDER BY assigned_at_ms, user_id",
            [idArray])
        var assignees: [Int64: [UInt64]] = [:]
        for row in 0..<assigned.count { assignees[assigned.int64(row, "incident_id")!, default: []].append(assigned.uint64(row, "user_id")!) }
        let acks = try connection.query(
            "SELECT incident_id, user_id, actor, at_ms, closed_at_ms FROM acknowledgements WHERE incident_id = ANY($1::bigint[]) ORDER BY id",
            [idArray])
        var acknowledgements: [Int64: [Acknowledgement]] = [:]
        for row in 0..<acks.count {
            acknowledgements[acks.int64(row, "incident_id")!, default: []].append(Acknowledgement(
                user: acks.uint64(row, "user_id"), actor: acks.string(row, "actor")!, at: acks.int64(row, "at_ms")!,
                closedAt: acks.int64(row, "closed_at_ms")))
        }
        let alerts = try connection.query(
            "SELECT incident_id, sum(count) AS n FROM alerts WHERE incident_id = ANY($1::bigint[]) GROUP BY incident_id", [idArray])
        var alertCounts: [Int64: Int64] = [:]
        for row in 0..<alerts.count { alertCounts[alerts.int64(row, "incident_id")!] = alerts.int64(row, "n") }
        let roleRows = try connection.query(
            """
            SELECT incident_id, role, user_id, assigned_at_ms, assigned_by FROM incident_roles WHERE incident_id = ANY($1::bigint[])
            ORDER BY incident_id, array_position($2::text[], role), assigned_at_ms, user_id
            """, [idArray, PGArray(ResponseAPI.roles)])
        var roles: [Int64: [RoleHolder]] = [:]
        for row in 0..<roleRows.count {
            roles[roleRows.int64(row, "incident_id")!, default: []].append(RoleHolder(
                role: roleRows.string(row, "role")!, userID: roleRows.uint64(row, "user_id")!,
                assignedAtMs: roleRows.int64(row, "assigned_at_ms")!, assignedBy: roleRows.string(row, "assigned_by")!))
        }
        return (0..<rows.count).map { row in
            let id = rows.int64(row, "id")!
            var state = IncidentStore.state(rows, row)
            state.assignees = assignees[id] ?? []
            state.acknowledgements = acknowledgements[id] ?? []
            return IncidentInfo(
                id: UInt64(id), number: rows.uint64(row, "number")!, title: rows.string(row, "title")!, urgency: state.urgency,
                serviceID: rows.uint64(row, "service_id")!, serviceName: rows.string(row, "service_name")!,
                dedupKey: rows.string(row, "dedup_key")!, severity: rows.string(row, "severity")!,
                createdAtMs: rows.int64(row, "created_at_ms")!, resolvedAtMs: rows.int64(row, "resolved_at_ms") ?? 0,
                alertCount: UInt32(alertCounts[id] ?? 0), state: IncidentView(incidentID: UInt64(id), state: state),
                priority: rows.string(row, "priority") ?? "", major: rows.bool(row, "major")!,
                majorIncidentID: rows.uint64(row, "major_incident_id") ?? 0, childCount: UInt32(rows.int(row, "child_count") ?? 0),
                roles: roles[id] ?? [], conferenceURL: rows.string(row, "conference_url") ?? "",
                conferencePhone: rows.string(row, "conference_phone") ?? "")
        }
    }

    static func info(_ connection: PGConnection, id: Int64) throws -> IncidentInfo? {
        try infos(connection, ids: [id]).first
    }
}
