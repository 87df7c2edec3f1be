import IncidentEngine
import KlaxonDomain
import Shared

/// Priorities, major incidents and surge settings (issue 14, points 1 and 2):
/// `Assignment/SetPriority`, `DeclareMajor`, `LinkIncidents` (incident actions: admin or
/// responder) and `Admin/GetSurgeSettings` (read), `UpdateSurgeSettings` (admin).
public struct MajorIncidentsAPI: Sendable {
    let pool: PostgresPool
    let clock: any WallClock

    public init(pool: PostgresPool, clock: any WallClock) {
        self.pool = pool
        self.clock = clock
    }

    static let priorities: Set<String> = ["P1", "P2", "P3", "P4", "P5"]

    /// Who did it, for the timeline: the token's name and its user.
    static func actor(_ context: RPCContext) -> String {
        guard let principal = context.principal else { return "api" }
        return principal.userID.map { "user \($0) (\(principal.name))" } ?? principal.name
    }

    public func register(into router: inout RPCRouter) {
        let pool = self.pool, clock = self.clock
        router.register(Assignment.SetPriority) { (request: SetPriorityRequest, context) in
            guard request.priority.isEmpty || Self.priorities.contains(request.priority) else {
                throw RPCError.invalidArgument([FieldViolation(field: "priority", description: "must be P1, P2, P3, P4, P5 or empty")])
            }
            let now = clock.nowMs(), actor = Self.actor(context)
            return try await pool.transaction { connection in
                let id = Int64(request.incidentID)
                let updated = try connection.query(
                    "UPDATE incidents SET priority = nullif($2, ''), updated_at_ms = $3 WHERE id = $1 RETURNING id", [id, request.priority, now])
                guard updated.count == 1 else { throw RPCError(.notFound, "incident \(request.incidentID) does not exist") }
                try Timeline.append(connection, incidentID: id, TimelineEntry(
                    at: now, type: .note, actor: actor, details: ["priority": request.priority.isEmpty ? "none" : request.priority]))
                return try IncidentQueries.info(connection, id: id)!
            }
        }
        router.register(Assignment.DeclareMajor) { (request: DeclareMajorRequest, context) in
            let priority = request.priority.isEmpty ? "P1" : request.priority
            guard Self.priorities.contains(priority) else {
                throw RPCError.invalidArgument([FieldViolation(field: "priority", description: "must be P1, P2, P3, P4 or P5")])
            }
            let now = clock.nowMs(), actor = Self.actor(context)
            return try await pool.transaction { connection in
                let id: Int64
                if request.incidentID == 0 {
                    let title = request.title.trimmingCharacters(in: .whitespaces)
                    guard !title.isEmpty, title.count <= 1024 else {
                        throw RPCError.invalidArgument([FieldViolation(field: "title", description: "is required (1–1024 characters) for a new major incident")])
                    }
                    id = try SurgeWatcher.openMajorIncident(connection, title: title, now: now, actor: actor, priority: priority)
                } else {
                    id = Int64(request.incidentID)
                    let found = try connection.query("SELECT major, major_incident_id, status FROM incidents WHERE id = $1 FOR UPDATE", [id])
                    guard found.count == 1 else { throw RPCError(.notFound, "incident \(request.incidentID) does not exist") }
                    if found.bool(0, "major")! { throw RPCError(.failedPrecondition, "incident \(request.incidentID) is already major") }
                    if let parent = found.int64(0, "major_incident_id") {
                        throw RPCError(.failedPrecondition, "incident \(request.incidentID) is linked to major incident \(parent): declare that one, or unlink it first")
                    }
                    if found.string(0, "status") == "resolved" {
                        throw RPCError(.failedPrecondition, "incident \(request.incidentID) is resolved")
                    }
                    try connection.query(
                        "UPDATE incidents SET major = true, priority = $2, updated_at_ms = $3 WHERE id = $1", [id, priority, now])
                    try Timeline.append(connection, incidentID: id, TimelineEntry(
                        at: now, type: .majorDeclared, actor: actor, details: ["priority": priority]))
                }
                return try IncidentQueries.info(connection, id: id)!
            }
        }
        router.register(Assignment.LinkIncidents) { (request: LinkIncidentsRequest, context) in
            guard !request.incidentIDs.isEmpty, request.incidentIDs.count <= 500 else {
                throw RPCError.invalidArgument([FieldViolation(field: "incident_ids", description: "must name 1 to 500 incidents")])
            }
            let now = clock.nowMs(), actor = Self.actor(context)
            return try await pool.transaction { connection in
                let majorID = Int64(request.majorIncidentID)
                let major = try connection.query("SELECT major FROM incidents WHERE id = $1 FOR UPDATE", [majorID])
                guard major.count == 1 else { throw RPCError(.notFound, "incident \(request.majorIncidentID) does not exist") }
                guard major.bool(0, "major")! else {
                    throw RPCError(.failedPrecondition, "incident \(request.majorIncidentID) is not a major incident: declare it first")
                }
                let ids = Array(Set(request.incidentIDs.map { Int64($0) })).sorted()
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
                for id in ids {
                    try Timeline.append(connection, incidentID: id, TimelineEntry(
                        at: now, type: .linked, actor: actor,
                        details: ["major_incident": String(majorID), "merged": request.merge ? "true" : "false"]))
                }
                if request.merge {
                    // A merged child's alerts belong to the major incident from now on; the child
                    // is resolved (its timeline stays, saying where its alerts went).
                    try connection.query("UPDATE alerts SET incident_id = $1 WHERE incident_id = ANY($2::bigint[])", [majorID, PGArray(ids)])
                    let open = try connection.query(
                        "SELECT id FROM incidents WHERE id = ANY($1::bigint[]) AND status <> 'resolved' ORDER BY id", [PGArray(ids)])
                    for row in 0..<open.count {
                        _ = try IncidentStore.run(
                            .resolve(actor: actor, reason: "merged into major incident \(majorID)"), incidentID: open.int64(row, "id")!,
                            connection: connection, now: now)
                    }
                }
                try Timeline.append(connection, incidentID: majorID, TimelineEntry(
                    at: now, type: .linked, actor: actor,
                    details: ["children": ids.map(String.init).joined(separator: ","), "merged": request.merge ? "true" : "false"]))
                return try IncidentQueries.info(connection, id: majorID)!
            }
        }
        router.register(Admin.GetSurgeSettings) { (_: Empty, _) in
            try await pool.withConnection { try Self.surgeSettings($0) }
        }
        router.register(Admin.UpdateSurgeSettings) { (request: SurgeSettingsMessage, _) in
            let settings = SurgeSettings(
                enabled: request.enabled, windowMs: Millis(request.windowSeconds) * 1000, minIncidents: Int(request.minIncidents),
                rateFactor: Double(request.rateFactor), minServices: Int(request.minServices),
                quietPeriodMs: Millis(request.quietPeriodSeconds) * 1000)
            let violations = settings.violations
            guard violations.isEmpty else {
                throw RPCError.invalidArgument(violations.map { FieldViolation(field: $0.field, description: $0.problem) })
            }
            return try await pool.transaction { connection in
                try Self.storeSurgeSettings(connection, settings)
                return try Self.surgeSettings(connection)
            }
        }
    }

    static func storeSurgeSettings(_ connection: PGConnection, _ settings: SurgeSettings) throws {
        try connection.query(
            """
            UPDATE surge SET enabled = $1, window_seconds = $2, min_incidents = $3, rate_factor = $4, min_services = $5,
                   quiet_period_seconds = $6
            """,
            [settings.enabled, settings.windowMs / 1000, settings.minIncidents, Int(settings.rateFactor), settings.minServices,
             settings.quietPeriodMs / 1000])
    }

    static func surgeSettings(_ connection: PGConnection) throws -> SurgeSettingsMessage {
        let row = try connection.query("SELECT * FROM surge")
        let settings = SurgeWatcher.settings(row)
        return SurgeSettingsMessage(
            enabled: settings.enabled, windowSeconds: UInt32(settings.windowMs / 1000), minIncidents: UInt32(settings.minIncidents),
            rateFactor: UInt32(settings.rateFactor), minServices: UInt32(settings.minServices),
            quietPeriodSeconds: UInt32(settings.quietPeriodMs / 1000), surging: row.int64(0, "since_ms") != nil,
            surgeSinceMs: row.int64(0, "since_ms") ?? 0, majorIncidentID: row.uint64(0, "major_incident_id") ?? 0)
    }
}
