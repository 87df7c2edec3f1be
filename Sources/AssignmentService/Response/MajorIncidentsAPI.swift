import IncidentEngine
import KlaxonDomain
import Shared

/// Priorities, major incidents, response plans and surge settings over the binary protocol:
/// `Assignment/SetPriority`, `DeclareMajor`, `LinkIncidents` (incident actions: admin or
/// responder), `Admin/CreateResponsePlan`, `ListResponsePlans`, `DeleteResponsePlan`,
/// `GetSurgeSettings` (read), `UpdateSurgeSettings` (admin). Handlers check the request's own
/// fields and call the stores: `IncidentStore` (incident rows), `ResponseStore` (the
/// response), `PlanStore`, `SurgeStore`.
public struct MajorIncidentsAPI: Sendable {
    let pool: PostgresPool
    let clock: any WallClock
    let notifierOutbox: Waker

    public init(pool: PostgresPool, clock: any WallClock, notifierOutbox: Waker) {
        self.pool = pool
        self.clock = clock
        self.notifierOutbox = notifierOutbox
    }

    static func priority(_ text: String, allowEmpty: Bool) throws -> Priority? {
        if text.isEmpty, allowEmpty { return nil }
        guard let priority = Priority(rawValue: text) else {
            throw RPCError.invalidArgument([FieldViolation(field: "priority", description: "must be \(Priority.listed)\(allowEmpty ? " or empty" : "")")])
        }
        return priority
    }

    public func register(into router: inout RPCRouter) {
        let pool = self.pool, clock = self.clock, outbox = self.notifierOutbox
        router.register(Assignment.SetPriority) { (request: SetPriorityRequest, context) in
            let priority = try Self.priority(request.priority, allowEmpty: true)
            let now = clock.nowMs(), actor = ResponseAPI.actor(context)
            return try await pool.transaction { connection in
                try IncidentStore.setPriority(connection, incidentID: Int64(request.incidentID), priority, actor: actor, now: now)
                return try IncidentQueries.info(connection, id: Int64(request.incidentID))!
            }
        }
        router.register(Assignment.DeclareMajor) { (request: DeclareMajorRequest, context) in
            let priority = try Self.priority(request.priority.isEmpty ? "P1" : request.priority, allowEmpty: false)!
            let title = request.title.trimmingCharacters(in: .whitespaces)
            if request.incidentID == 0, title.isEmpty || title.count > ResponseCore.maxTitleLength {
                throw RPCError.invalidArgument([FieldViolation(field: "title", description: "is required (1–1024 characters) for a new major incident")])
            }
            let now = clock.nowMs(), actor = ResponseAPI.actor(context)
            let (info, queued) = try await pool.transaction { connection in
                let id: Int64
                if request.incidentID == 0 {
                    id = try IncidentStore.openMajor(connection, title: title, priority: priority, actor: actor, now: now)
                } else {
                    id = Int64(request.incidentID)
                    try IncidentStore.declareMajor(connection, incidentID: id, priority: priority, actor: actor, now: now)
                }
                var queued = 0
                if !request.responsePlan.isEmpty {
                    let plan = try PlanStore.resolved(connection, named: request.responsePlan, now: now)
                    queued = try ResponseStore.run(.applyPlan(plan, actor: actor), incidentID: id, connection: connection, now: now).queued
                }
                return (try IncidentQueries.info(connection, id: id)!, queued)
            }
            if queued > 0 { outbox.poke() }
            return info
        }
        router.register(Assignment.LinkIncidents) { (request: LinkIncidentsRequest, context) in
            guard !request.incidentIDs.isEmpty, request.incidentIDs.count <= 500 else {
                throw RPCError.invalidArgument([FieldViolation(field: "incident_ids", description: "must name 1 to 500 incidents")])
            }
            let now = clock.nowMs(), actor = ResponseAPI.actor(context)
            let (info, queued) = try await pool.transaction { connection in
                let majorID = Int64(request.majorIncidentID)
                let queued = try IncidentStore.link(
                    connection, majorID: majorID, children: request.incidentIDs.map { Int64($0) }, merge: request.merge, actor: actor, now: now)
                return (try IncidentQueries.info(connection, id: majorID)!, queued)
            }
            if queued > 0 { outbox.poke() }
            return info
        }
        router.register(Admin.CreateResponsePlan) { (plan: ResponsePlan, _) in
            let now = clock.nowMs()
            return try await pool.transaction { connection in try PlanStore.create(connection, plan, now: now) }
        }
        router.register(Admin.ListResponsePlans) { (_: Empty, _) in
            // Channel webhooks hold their secret in the path: masked here (export shows them to admins).
            try await pool.withConnection { connection in ResponsePlanList(plans: try PlanStore.all(connection, maskChannels: true)) }
        }
        router.register(Admin.DeleteResponsePlan) { (request: AdminIDRequest, _) in
            try await pool.transaction { connection in
                try PlanStore.delete(connection, id: Int64(request.id))
                return Empty()
            }
        }
        router.register(Admin.GetSurgeSettings) { (_: Empty, _) in
            try await pool.withConnection { try SurgeStore.message($0) }
        }
        router.register(Admin.UpdateSurgeSettings) { (request: SurgeSettingsMessage, _) in
            let settings = SurgeSettings(
                enabled: request.enabled, windowMs: Millis(request.windowSeconds) * 1000, minIncidents: Int(request.minIncidents),
                rateFactor: Double(request.rateFactor), minServices: Int(request.minServices),
                quietPeriodMs: Millis(request.quietPeriodSeconds) * 1000)
            return try await pool.transaction { connection in
                try SurgeStore.store(connection, settings, plan: request.responsePlan)
                return try SurgeStore.message(connection)
            }
        }
    }
}
