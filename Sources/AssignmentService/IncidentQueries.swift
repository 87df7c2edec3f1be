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
        router.register(GetIncidentRequest.getIncident) { (request: GetIncidentRequest, _) in
            try await getIncident(request.incidentID)
        }
        router.register(GetIncidentRequest.getTimeline) { (request: GetIncidentRequest, _) in
            try await timeline(request.incidentID)
        }
        router.register(ListIncidentsRequest.method) { (request: ListIncidentsRequest, _) in
            try await list(request)
        }
    }

    func getIncident(_ id: UInt64) async throws -> IncidentInfo {
        guard id > 0 else { throw RPCError.invalidArgument([FieldViolation(field: "incident_id", description: "is required")]) }
        guard let info = try await pool.withConnection({ try Self.info($0, id: Int64(id)) }) else {
            throw RPCError(.notFound, "incident \(id) does not exist")
        }
        return info
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
                ORDER BY id DESC LIMIT $4
                """,
                [request.statuses.isEmpty ? nil : PGArray(request.statuses.map(\.rawValue)), Int64(request.serviceID),
                 Int64(request.beforeID), pageSize + 1])
            let ids = (0..<rows.count).map { rows.int64($0, "id")! }
            let page = ids.prefix(pageSize)
            let incidents = try page.compactMap { try Self.info(connection, id: $0) }
            return ListIncidentsReply(incidents: incidents, nextBeforeID: ids.count > pageSize ? UInt64(page.last!) : 0)
        }
    }

    static func info(_ connection: PGConnection, id: Int64) throws -> IncidentInfo? {
        guard let record = try IncidentStore.load(connection, id: id) else { return nil }
        let extra = try connection.query(
            "SELECT resolved_at_ms, (SELECT coalesce(sum(count), 0) FROM alerts WHERE incident_id = $1) AS alerts FROM incidents WHERE id = $1",
            [id])
        return IncidentInfo(
            id: UInt64(record.id), number: UInt64(record.number), title: record.title, urgency: record.state.urgency,
            serviceID: UInt64(record.serviceID), serviceName: record.serviceName, dedupKey: record.dedupKey,
            severity: record.severity, createdAtMs: record.createdAtMs, resolvedAtMs: extra.int64(0, "resolved_at_ms") ?? 0,
            alertCount: UInt32(extra.int64(0, "alerts") ?? 0), state: IncidentView(incidentID: UInt64(record.id), state: record.state))
    }
}
