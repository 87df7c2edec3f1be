import IncidentEngine
import KlaxonDomain
import NotifierService
import Shared

/// Priorities, major incidents and surge settings (issue 14, points 1 and 2):
/// `Assignment/SetPriority`, `DeclareMajor`, `LinkIncidents` (incident actions: admin or
/// responder) and `Admin/GetSurgeSettings` (read), `UpdateSurgeSettings` (admin).
public struct MajorIncidentsAPI: Sendable {
    let pool: PostgresPool
    let clock: any WallClock
    let notifierOutbox: Waker

    public init(pool: PostgresPool, clock: any WallClock, notifierOutbox: Waker) {
        self.pool = pool
        self.clock = clock
        self.notifierOutbox = notifierOutbox
    }

    static let priorities: Set<String> = ["P1", "P2", "P3", "P4", "P5"]

    /// Who did it, for the timeline: the token's name and its user.
    static func actor(_ context: RPCContext) -> String {
        guard let principal = context.principal else { return "api" }
        return principal.userID.map { "user \($0) (\(principal.name))" } ?? principal.name
    }

    public func register(into router: inout RPCRouter) {
        let pool = self.pool, clock = self.clock, outbox = self.notifierOutbox
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
            let (info, paged) = try await pool.transaction { connection in
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
                let paged = request.responsePlan.isEmpty
                    ? 0 : try ResponseAPI.applyPlan(connection, incidentID: id, planName: request.responsePlan, actor: actor, now: now)
                return (try IncidentQueries.info(connection, id: id)!, paged)
            }
            if paged > 0 { outbox.poke() }
            return info
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
        router.register(Admin.CreateResponsePlan) { (plan: ResponsePlan, _) in
            let now = clock.nowMs()
            return try await pool.transaction { connection in try Self.createPlan(connection, plan, now: now) }
        }
        router.register(Admin.ListResponsePlans) { (_: Empty, _) in
            // Channel webhooks hold their secret in the path: masked here (export shows them to admins).
            try await pool.withConnection { connection in ResponsePlanList(plans: try Self.plans(connection, maskChannels: true)) }
        }
        router.register(Admin.DeleteResponsePlan) { (request: AdminIDRequest, _) in
            try await pool.transaction { connection in
                let deleted = try connection.query("DELETE FROM response_plans WHERE id = $1 RETURNING id", [Int64(request.id)])
                guard deleted.count == 1 else { throw RPCError(.notFound, "response plan \(request.id) does not exist") }
                return Empty()
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
                var planID: Int64?
                if !request.responsePlan.isEmpty {
                    planID = try connection.query("SELECT id FROM response_plans WHERE name = $1", [request.responsePlan]).int64(0, "id")
                    guard planID != nil else {
                        throw RPCError.invalidArgument([FieldViolation(
                            field: "response_plan", description: "response plan \"\(request.responsePlan)\" does not exist")])
                    }
                }
                try connection.query("UPDATE surge SET response_plan_id = $1", [planID])
                return try Self.surgeSettings(connection)
            }
        }
    }

    /// What is wrong with a plan's fields (not its references), each naming its field.
    static func planViolations(_ plan: ResponsePlan) -> [FieldViolation] {
        var violations: [FieldViolation] = []
        let name = plan.name.trimmingCharacters(in: .whitespaces)
        if name.isEmpty || name.count > 255 { violations.append(FieldViolation(field: "name", description: "is required (1–255 characters)")) }
        if plan.responders.count > 50 { violations.append(FieldViolation(field: "responders", description: "at most 50")) }
        for (index, responder) in plan.responders.enumerated() {
            let set = [responder.userID, responder.scheduleID, responder.policyID].filter { $0 != 0 }.count
            if set != 1 {
                violations.append(FieldViolation(field: "responders[\(index)]", description: "set exactly one of user_id, schedule_id, policy_id"))
            }
            if !responder.role.isEmpty, !ResponseAPI.roles.contains(responder.role) {
                violations.append(FieldViolation(field: "responders[\(index)].role", description: "must be one of \(ResponseAPI.roles.joined(separator: ", "))"))
            }
        }
        for (field, value) in [("conference_url", plan.conferenceURL), ("conference_phone", plan.conferencePhone), ("chat_channel", plan.chatChannel)]
        where value.count > 1024 {
            violations.append(FieldViolation(field: field, description: "at most 1024 characters"))
        }
        if !plan.conferenceURL.isEmpty, !(plan.conferenceURL.hasPrefix("https://") || plan.conferenceURL.hasPrefix("http://")) {
            violations.append(FieldViolation(field: "conference_url", description: "must be an http(s) URL"))
        }
        if plan.requestTimeoutSeconds != 0, !(5...86_400).contains(plan.requestTimeoutSeconds) {
            violations.append(FieldViolation(field: "request_timeout_seconds", description: "must be 5 to 86400"))
        }
        violations += ResponseAPI.channelViolations(plan.channelWebhooks)
        return violations
    }

    static func createPlan(_ connection: PGConnection, _ plan: ResponsePlan, now: Millis) throws -> ResponsePlan {
        let violations = planViolations(plan)
        guard violations.isEmpty else { throw RPCError.invalidArgument(violations) }
        let name = plan.name.trimmingCharacters(in: .whitespaces)
        guard try connection.query("SELECT 1 FROM response_plans WHERE name = $1", [name]).isEmpty else {
            throw RPCError(.alreadyExists, "a response plan named \"\(name)\" exists")
        }
        let id = try connection.query(
            "INSERT INTO response_plans (name, created_at_ms) VALUES ($1, $2) RETURNING id", [name, now]).int64(0, "id")!
        try storePlan(connection, plan, id: id, now: now)
        return try plans(connection).first { $0.id == UInt64(id) }!
    }

    /// Writes a (validated) plan's fields over plan `id`, its responders, subscribers and
    /// channels replaced by the plan's.
    static func storePlan(_ connection: PGConnection, _ plan: ResponsePlan, id: Int64, now: Millis) throws {
        try connection.query(
            """
            UPDATE response_plans SET conference_url = $2, conference_phone = $3, chat_channel = $4, message = $5, request_timeout_seconds = $6
            WHERE id = $1
            """, [id, plan.conferenceURL, plan.conferencePhone, plan.chatChannel, plan.message,
                  Int(plan.requestTimeoutSeconds == 0 ? ResponseAPI.defaultTimeoutSeconds : plan.requestTimeoutSeconds)])
        for table in ["response_plan_responders", "response_plan_subscribers", "response_plan_channels"] {
            try connection.query("DELETE FROM \(table) WHERE plan_id = $1", [id])
        }
        do {
            for (index, responder) in plan.responders.enumerated() {
                try connection.query(
                    """
                    INSERT INTO response_plan_responders (plan_id, position, user_id, schedule_id, policy_id, role)
                    VALUES ($1, $2, nullif($3, 0), nullif($4, 0), nullif($5, 0), nullif($6, ''))
                    """, [id, index + 1, Int64(responder.userID), Int64(responder.scheduleID), Int64(responder.policyID), responder.role])
            }
            for user in Set(plan.subscriberIDs) {
                try connection.query("INSERT INTO response_plan_subscribers (plan_id, user_id) VALUES ($1, $2)", [id, Int64(user)])
            }
            for url in Set(plan.channelWebhooks) {
                try connection.query("INSERT INTO response_plan_channels (plan_id, url) VALUES ($1, $2)", [id, url])
            }
        } catch let error as PostgresError where error.sqlState == "23503" {
            throw RPCError.invalidArgument([FieldViolation(field: "responders", description: "a user, schedule or policy named does not exist")])
        }
    }

    static func plans(_ connection: PGConnection, maskChannels: Bool = false) throws -> [ResponsePlan] {
        let rows = try connection.query("SELECT * FROM response_plans ORDER BY id")
        let channels = try connection.query("SELECT * FROM response_plan_channels ORDER BY plan_id, url")
        let responders = try connection.query("SELECT * FROM response_plan_responders ORDER BY plan_id, position")
        let subscribers = try connection.query("SELECT * FROM response_plan_subscribers ORDER BY plan_id, user_id")
        return (0..<rows.count).map { row in
            let id = rows.int64(row, "id")!
            return ResponsePlan(
                id: UInt64(id), name: rows.string(row, "name")!,
                responders: (0..<responders.count).filter { responders.int64($0, "plan_id") == id }.map { r in
                    ResponsePlanResponder(
                        userID: responders.uint64(r, "user_id") ?? 0, scheduleID: responders.uint64(r, "schedule_id") ?? 0,
                        policyID: responders.uint64(r, "policy_id") ?? 0, role: responders.string(r, "role") ?? "")
                },
                subscriberIDs: (0..<subscribers.count).filter { subscribers.int64($0, "plan_id") == id }.map { subscribers.uint64($0, "user_id")! },
                conferenceURL: rows.string(row, "conference_url")!, conferencePhone: rows.string(row, "conference_phone")!,
                chatChannel: rows.string(row, "chat_channel")!, message: rows.string(row, "message")!,
                requestTimeoutSeconds: UInt32(rows.int(row, "request_timeout_seconds")!),
                channelWebhooks: (0..<channels.count).filter { channels.int64($0, "plan_id") == id }.map { r in
                    let url = channels.string(r, "url")!
                    return maskChannels ? AddressMask.mask(url, channel: "slack") : url
                })
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
        let row = try SurgeWatcher.row(connection)
        let settings = SurgeWatcher.settings(row)
        return SurgeSettingsMessage(
            enabled: settings.enabled, windowSeconds: UInt32(settings.windowMs / 1000), minIncidents: UInt32(settings.minIncidents),
            rateFactor: UInt32(settings.rateFactor), minServices: UInt32(settings.minServices),
            quietPeriodSeconds: UInt32(settings.quietPeriodMs / 1000), surging: row.int64(0, "since_ms") != nil,
            surgeSinceMs: row.int64(0, "since_ms") ?? 0, majorIncidentID: row.uint64(0, "major_incident_id") ?? 0,
            responsePlan: row.string(0, "plan")!)
    }
}
