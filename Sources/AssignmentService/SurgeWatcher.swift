import KlaxonDomain
import Logging
import Shared

/// Surge detection (issue 14, point 2), run by Assignment's "assignment.surge" loop every
/// second: counts new incidents in PostgreSQL (so every replica sees the same numbers), lets the
/// pure `SurgeDetector` decide, and acts in the same transaction. The one `surge` row is claimed
/// FOR UPDATE SKIP LOCKED, so one replica at a time evaluates and the others skip that step.
///
/// A surge opens one major incident ("Surge: 312 incidents across 7 services in 5 min") on
/// Klaxon's own service "Major incidents" (never listed, exported or pruned) and links the
/// window's incidents to it; incidents of the surge created later join it on the next steps;
/// once the rate has stayed below the threshold for the quiet period, the surge ends (the major
/// incident stays open for its responders to resolve).
public struct SurgeWatcher: Sendable {
    public static let serviceName = "Major incidents"
    static let lateCommitMarginMs: Millis = 60_000
    let pool: PostgresPool
    let notifierOutbox: Waker
    let logger: Logger

    public init(pool: PostgresPool, notifierOutbox: Waker, logger: Logger) {
        self.pool = pool
        self.notifierOutbox = notifierOutbox
        self.logger = logger
    }

    /// The surge row with its response plan's name (`plan`, "" for none): what the settings API,
    /// `klaxon apply` and `klaxon export` read.
    static func row(_ connection: PGConnection) throws -> PGResult {
        try connection.query("SELECT s.*, coalesce(p.name, '') AS plan FROM surge s LEFT JOIN response_plans p ON p.id = s.response_plan_id")
    }

    static func settings(_ rows: PGResult) -> SurgeSettings {
        SurgeSettings(
            enabled: rows.bool(0, "enabled")!, windowMs: Millis(rows.int(0, "window_seconds")!) * 1000,
            minIncidents: rows.int(0, "min_incidents")!, rateFactor: rows.double(0, "rate_factor")!,
            minServices: rows.int(0, "min_services")!, quietPeriodMs: Millis(rows.int(0, "quiet_period_seconds")!) * 1000)
    }

    /// One evaluation at `now`; the loop runs it again within a second.
    public func step(now: Millis) async throws -> Millis? {
        let logger = self.logger
        // Responder requests past their timeout: no answer.
        try await pool.transaction { try ResponseAPI.expireRequests($0, now: now) }
        let paged = try await pool.transaction { connection -> Int in
            let row = try connection.query("SELECT * FROM surge FOR UPDATE SKIP LOCKED")
            guard row.count == 1 else { return 0 }  // another replica is evaluating right now
            let settings = Self.settings(row)
            let state: SurgeState = if let since = row.int64(0, "since_ms") {
                .surging(since: since, lastAboveAt: row.int64(0, "last_above_at_ms") ?? since)
            } else {
                .quiet
            }
            guard settings.enabled || state != .quiet else { return 0 }
            let counted = try connection.query(
                """
                SELECT count(*) FILTER (WHERE created_at_ms > $1::bigint - $2::bigint)::bigint AS in_window,
                       count(DISTINCT service_id) FILTER (WHERE created_at_ms > $1::bigint - $2::bigint)::bigint AS services,
                       count(*) FILTER (WHERE created_at_ms <= $1::bigint - $2::bigint)::bigint AS trailing
                FROM incidents
                WHERE created_at_ms > $1::bigint - $2::bigint - 3600000 AND created_at_ms <= $1::bigint AND NOT major
                """, [now, settings.windowMs])
            let counts = SurgeCounts(
                inWindow: counted.int(0, "in_window")!, servicesInWindow: counted.int(0, "services")!,
                trailingHour: counted.int(0, "trailing")!)
            let (decision, next) = SurgeDetector.evaluate(counts, state: state, settings: settings, now: now)
            switch decision {
            case .none:
                return 0
            case let .open(summary):
                let majorID = try Self.openMajorIncident(connection, title: summary, now: now)
                let linked = try Self.link(connection, majorID: majorID, after: now - settings.windowMs, upTo: now, now: now)
                try connection.query(
                    "UPDATE surge SET since_ms = $1, last_above_at_ms = $1, major_incident_id = $2, linked_until_ms = $1",
                    [now, majorID])
                logger.warning("surge: major incident opened", metadata: [
                    "incident.id": "\(majorID)", "surge.incidents": "\(counts.inWindow)", "surge.services": "\(counts.servicesInWindow)",
                    "surge.linked": "\(linked)"])
                // The configured response plan, at once: its responders are paged in this transaction.
                if let planID = row.int64(0, "response_plan_id"),
                   let plan = try connection.query("SELECT name FROM response_plans WHERE id = $1", [planID]).string(0, "name") {
                    return try ResponseAPI.applyPlan(connection, incidentID: majorID, planName: plan, actor: "surge detection", now: now)
                }
                return 0
            case .continues:
                guard case let .surging(_, lastAboveAt) = next, let majorID = row.int64(0, "major_incident_id") else { return 0 }
                // From a minute before the last step: an incident's instant is taken when its
                // transaction starts, so one may commit after a step that already passed it.
                let from = (row.int64(0, "linked_until_ms") ?? now) - Self.lateCommitMarginMs
                _ = try Self.link(connection, majorID: majorID, after: from, upTo: now, now: now)
                try connection.query("UPDATE surge SET last_above_at_ms = $1, linked_until_ms = $2", [lastAboveAt, now])
                return 0
            case .end:
                if let majorID = row.int64(0, "major_incident_id") {
                    _ = try Self.link(
                        connection, majorID: majorID, after: (row.int64(0, "linked_until_ms") ?? now) - Self.lateCommitMarginMs, upTo: now, now: now)
                    try Timeline.append(connection, incidentID: majorID, TimelineEntry(
                        at: now, type: .surgeEnded, actor: "klaxon",
                        details: ["quiet_period_seconds": String(settings.quietPeriodMs / 1000)]))
                    logger.info("surge ended", metadata: ["incident.id": "\(majorID)"])
                }
                try connection.query(
                    "UPDATE surge SET since_ms = NULL, last_above_at_ms = NULL, major_incident_id = NULL, linked_until_ms = NULL")
                return 0
            }
        }
        if paged > 0 { notifierOutbox.poke() }
        return nil
    }

    /// The major incident of a surge, on Klaxon's own service (made on the first surge).
    static func openMajorIncident(
        _ connection: PGConnection, title: String, now: Millis, actor: String = "surge detection", priority: String = "P1"
    ) throws -> Int64 {
        var serviceID = try connection.query(
            "SELECT id FROM services WHERE system AND name = $1 AND deleted_at_ms IS NULL", [serviceName]).int64(0, "id")
        if serviceID == nil {
            serviceID = try connection.query(
                """
                INSERT INTO services (name, system, ack_timeout_seconds, auto_resolve_timeout_seconds, urgency_rule, events_per_minute)
                VALUES ($1, true, 0, 0, 'high', 0) RETURNING id
                """, [serviceName]).int64(0, "id")
        }
        let majorID = try connection.query(
            """
            INSERT INTO incidents (service_id, title, status, urgency, dedup_key, priority, major, trigger_applied, created_at_ms, updated_at_ms)
            VALUES ($1, $2, 'triggered', 'high', 'major-' || gen_random_uuid(), $4, true, true, $3, $3) RETURNING id
            """, [serviceID!, title, now, priority]).int64(0, "id")!
        try Timeline.append(connection, incidentID: majorID, TimelineEntry(
            at: now, type: .majorDeclared, actor: actor, details: ["reason": title, "priority": priority]))
        return majorID
    }

    /// Links the incidents created in (after, upTo] that are not linked yet; returns how many.
    @discardableResult
    static func link(_ connection: PGConnection, majorID: Int64, after: Millis, upTo: Millis, now: Millis) throws -> Int {
        let linked = try connection.query(
            """
            UPDATE incidents SET major_incident_id = $1
            WHERE created_at_ms > $2::bigint AND created_at_ms <= $3::bigint AND NOT major AND major_incident_id IS NULL
            RETURNING id
            """, [majorID, after, upTo])
        guard linked.count > 0 else { return 0 }
        let ids = (0..<linked.count).map { linked.int64($0, "id")! }
        try connection.enqueue(
            """
            INSERT INTO timeline_entries (incident_id, at_ms, type, actor, details)
            SELECT id, $2::bigint, 'linked', 'surge detection', jsonb_build_object('major_incident', $3::text) FROM unnest($1::bigint[]) AS id
            """, [PGArray(ids), now, String(majorID)])
        try connection.query(
            "INSERT INTO timeline_entries (incident_id, at_ms, type, actor, details) VALUES ($1, $2, 'linked', 'surge detection', $3::jsonb)",
            [majorID, now, JSON.object(["children": String(ids.count)])])
        return ids.count
    }
}
