import KlaxonDomain
import Shared

/// Surge detection's settings and state (the one `surge` row), and one evaluation: counts from
/// PostgreSQL (so every replica sees the same numbers), `SurgeDetector` decides, and a surge's
/// major incident is opened, linked and given its response plan through the incident and
/// response stores, in the same transaction. The row is claimed FOR UPDATE SKIP LOCKED, so one
/// replica at a time evaluates.
public enum SurgeStore {
    static let lateCommitMarginMs: Millis = 60_000

    /// The surge row with its response plan's name (`plan`, "" for none).
    public static func row(_ connection: PGConnection) throws -> PGResult {
        try connection.query("SELECT s.*, coalesce(p.name, '') AS plan FROM surge s LEFT JOIN response_plans p ON p.id = s.response_plan_id")
    }

    public static func settings(_ rows: PGResult) -> SurgeSettings {
        SurgeSettings(
            enabled: rows.bool(0, "enabled")!, windowMs: Millis(rows.int(0, "window_seconds")!) * 1000,
            minIncidents: rows.int(0, "min_incidents")!, rateFactor: rows.double(0, "rate_factor")!,
            minServices: rows.int(0, "min_services")!, quietPeriodMs: Millis(rows.int(0, "quiet_period_seconds")!) * 1000)
    }

    /// Stores (validated) settings; `plan` nil keeps the current plan, "" removes it.
    public static func store(_ connection: PGConnection, _ settings: SurgeSettings, plan: String?) throws {
        let violations = settings.violations
        guard violations.isEmpty else {
            throw RPCError.invalidArgument(violations.map { FieldViolation(field: $0.field, description: $0.problem) })
        }
        try connection.query(
            """
            UPDATE surge SET enabled = $1, window_seconds = $2, min_incidents = $3, rate_factor = $4, min_services = $5,
                   quiet_period_seconds = $6
            """,
            [settings.enabled, settings.windowMs / 1000, settings.minIncidents, Int(settings.rateFactor), settings.minServices,
             settings.quietPeriodMs / 1000])
        guard let plan else { return }
        var planID: Int64?
        if !plan.isEmpty {
            planID = try PlanStore.id(connection, named: plan)
            guard planID != nil else {
                throw RPCError.invalidArgument([FieldViolation(field: "response_plan", description: "response plan \"\(plan)\" does not exist")])
            }
        }
        try connection.query("UPDATE surge SET response_plan_id = $1", [planID])
    }

    public static func message(_ connection: PGConnection) throws -> SurgeSettingsMessage {
        let row = try row(connection)
        let settings = settings(row)
        return SurgeSettingsMessage(
            enabled: settings.enabled, windowSeconds: UInt32(settings.windowMs / 1000), minIncidents: UInt32(settings.minIncidents),
            rateFactor: UInt32(settings.rateFactor), minServices: UInt32(settings.minServices),
            quietPeriodSeconds: UInt32(settings.quietPeriodMs / 1000), surging: row.int64(0, "since_ms") != nil,
            surgeSinceMs: row.int64(0, "since_ms") ?? 0, majorIncidentID: row.uint64(0, "major_incident_id") ?? 0,
            responsePlan: row.string(0, "plan")!)
    }

    public struct Step: Sendable {
        public var decision: SurgeDecision
        public var counts: SurgeCounts?
        public var majorIncidentID: Int64?
        public var linked: Int = 0
        /// Pages queued (poke Notifier's outbox after commit when > 0).
        public var queued: Int = 0
    }

    /// One evaluation at `now` (nil: another replica is evaluating right now, or detection is off).
    public static func step(_ connection: PGConnection, now: Millis) throws -> Step? {
        let row = try connection.query("SELECT * FROM surge FOR UPDATE SKIP LOCKED")
        guard row.count == 1 else { return nil }
        let settings = settings(row)
        let state: SurgeState = if let since = row.int64(0, "since_ms") {
            .surging(since: since, lastAboveAt: row.int64(0, "last_above_at_ms") ?? since)
        } else {
            .quiet
        }
        guard settings.enabled || state != .quiet else { return nil }
        let counted = try connection.query(
            """
            SELECT count(*) FILTER (WHERE created_at_ms > $1::bigint - $2::bigint)::bigint AS in_window,
                   count(DISTINCT service_id) FILTER (WHERE created_at_ms > $1::bigint - $2::bigint)::bigint AS services,
                   count(*) FILTER (WHERE created_at_ms <= $1::bigint - $2::bigint)::bigint AS trailing
            FROM incidents
            WHERE created_at_ms > $1::bigint - $2::bigint - 3600000 AND created_at_ms <= $1::bigint AND NOT major AND NOT canary
            """, [now, settings.windowMs])
        let counts = SurgeCounts(
            inWindow: counted.int(0, "in_window")!, servicesInWindow: counted.int(0, "services")!, trailingHour: counted.int(0, "trailing")!)
        let (decision, next) = SurgeDetector.evaluate(counts, state: state, settings: settings, now: now)
        var step = Step(decision: decision, counts: counts, majorIncidentID: row.int64(0, "major_incident_id"))
        // From a minute before the last step: an incident's instant is taken when its transaction
        // starts, so one may commit after a step that already passed it.
        let linkFrom = (row.int64(0, "linked_until_ms") ?? now) - lateCommitMarginMs
        switch decision {
        case .none:
            break
        case let .open(summary):
            let majorID = try IncidentStore.openMajor(connection, title: summary, priority: .p1, actor: "surge detection", now: now)
            step.majorIncidentID = majorID
            step.linked = try IncidentStore.linkSurge(connection, majorID: majorID, after: now - settings.windowMs, upTo: now, now: now)
            try connection.query(
                "UPDATE surge SET since_ms = $1, last_above_at_ms = $1, major_incident_id = $2, linked_until_ms = $1", [now, majorID])
            // The configured response plan, at once: its responders are paged in this transaction.
            if let planID = row.int64(0, "response_plan_id"), let plan = try PlanStore.resolved(connection, id: planID, now: now) {
                step.queued = try ResponseStore.run(.applyPlan(plan, actor: "surge detection"), incidentID: majorID, connection: connection, now: now).queued
            }
        case .continues:
            guard case let .surging(_, lastAboveAt) = next, let majorID = step.majorIncidentID else { break }
            step.linked = try IncidentStore.linkSurge(connection, majorID: majorID, after: linkFrom, upTo: now, now: now)
            try connection.query("UPDATE surge SET last_above_at_ms = $1, linked_until_ms = $2", [lastAboveAt, now])
        case .end:
            if let majorID = step.majorIncidentID {
                step.linked = try IncidentStore.linkSurge(connection, majorID: majorID, after: linkFrom, upTo: now, now: now)
                try Timeline.append(connection, incidentID: majorID, TimelineEntry(
                    at: now, type: .surgeEnded, actor: "klaxon", details: ["quiet_period_seconds": String(settings.quietPeriodMs / 1000)]))
            }
            try connection.query("UPDATE surge SET since_ms = NULL, last_above_at_ms = NULL, major_incident_id = NULL, linked_until_ms = NULL")
        }
        return step
    }
}
