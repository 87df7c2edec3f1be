import Foundation
import KlaxonDomain
import Shared

/// Maintenance windows in PostgreSQL (migration 0025).
public enum MaintenanceStore {
    public static let columns = """
        w.id, w.description, w.starts_at_ms, w.ends_at_ms, w.rrule, w.time_zone, w.mode, w.matchers::text AS matchers,
        w.ended_at_ms, w.cancelled, w.created_at_ms, w.created_by,
        (SELECT array_agg(s.service_id ORDER BY s.service_id)::text FROM maintenance_window_services s WHERE s.window_id = w.id) AS service_ids
        """

    /// The window a row describes (its matchers and rule were checked when it was made).
    public static func window(_ rows: PGResult, _ row: Int) -> MaintenanceWindow {
        let rrule = rows.string(row, "rrule") ?? ""
        return MaintenanceWindow(
            id: rows.int64(row, "id")!, startsAt: rows.int64(row, "starts_at_ms")!, endsAt: rows.int64(row, "ends_at_ms")!,
            recurrence: rrule.isEmpty ? nil : try? Recurrence.parse(rrule).get(), timeZone: rows.string(row, "time_zone")!,
            mode: MaintenanceWindow.Mode(rawValue: rows.string(row, "mode")!) ?? .hold,
            matchers: conditions(rows.string(row, "matchers") ?? "[]"), endedAt: rows.int64(row, "ended_at_ms"),
            cancelled: rows.bool(row, "cancelled")!)
    }

    public static func conditions(_ text: String) -> [EventCondition] {
        guard let items = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [[String: Any]] else { return [] }
        return items.compactMap { try? EventRules.parseCondition($0).get() }
    }

    public static func conditionsJSON(_ conditions: [EventCondition]) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: conditions.map(EventRules.conditionObject), options: [.sortedKeys])) ?? Data("[]".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    /// The windows of these services that may still matter at `now` (not cancelled, not over), by service.
    public static func current(_ connection: PGConnection, serviceIDs: [Int64], now: Millis) throws -> [Int64: [MaintenanceWindow]] {
        guard !serviceIDs.isEmpty else { return [:] }
        let rows = try connection.query(
            """
            SELECT ws.service_id AS for_service, \(columns)
            FROM maintenance_window_services ws JOIN maintenance_windows w ON w.id = ws.window_id
            WHERE ws.service_id = ANY($1::bigint[]) AND NOT w.cancelled
              AND (w.rrule <> '' OR coalesce(least(w.ended_at_ms, w.ends_at_ms), w.ends_at_ms) > $2)
            ORDER BY w.id
            """, [PGArray(serviceIDs), now])
        var windows: [Int64: [MaintenanceWindow]] = [:]
        for row in 0..<rows.count { windows[rows.int64(row, "for_service")!, default: []].append(window(rows, row)) }
        return windows
    }

    /// Outbound webhooks' `maintenance_window.started` and `.ended`: each window whose occurrence
    /// began or ended since last told (windows locked SKIP LOCKED: replicas never tell one twice).
    /// Nothing is read while no subscription exists. Returns how many events were queued.
    public static func announce(_ connection: PGConnection, now: Millis) throws -> Int {
        guard try WebhookEvents.anySubscription(connection) else { return 0 }
        let rows = try connection.query(
            """
            SELECT \(columns), w.announced_start_ms, w.announced_end_ms FROM maintenance_windows w
            WHERE NOT w.cancelled AND (w.announced_start_ms IS NOT NULL OR w.starts_at_ms <= $1)
              AND (w.announced_start_ms IS NOT NULL OR w.rrule <> '' OR coalesce(least(w.ended_at_ms, w.ends_at_ms), w.ends_at_ms) > $1)
            ORDER BY w.id FOR UPDATE OF w SKIP LOCKED
            """, [now])
        var queued = 0
        for row in 0..<rows.count {
            let window = window(rows, row)
            let announced = rows.int64(row, "announced_start_ms")
            let services = PGTextArray.parse(rows.string(row, "service_ids") ?? "{}").compactMap { Int64($0) }
            let description = rows.string(row, "description") ?? ""
            if let active = window.active(at: now) {
                guard announced != active.start else { continue }
                if let announced, let end = rows.int64(row, "announced_end_ms") {
                    // The previous occurrence ended unseen (Klaxon was down): told first.
                    try WebhookEvents.enqueueWindow(connection, window, description: description, services: services, type: "maintenance_window.ended",
                                                    occurrence: (announced, end), now: now)
                    queued += 1
                }
                try WebhookEvents.enqueueWindow(connection, window, description: description, services: services, type: "maintenance_window.started",
                                                occurrence: active, now: now)
                try connection.query(
                    "UPDATE maintenance_windows SET announced_start_ms = $2, announced_end_ms = $3 WHERE id = $1", [window.id, active.start, active.end])
                queued += 1
            } else if let announced {
                let end = min(rows.int64(row, "announced_end_ms") ?? now, window.endedAt ?? Millis.max)
                try WebhookEvents.enqueueWindow(connection, window, description: description, services: services, type: "maintenance_window.ended",
                                                occurrence: (announced, end), now: now)
                try connection.query("UPDATE maintenance_windows SET announced_start_ms = NULL, announced_end_ms = NULL WHERE id = $1", [window.id])
                queued += 1
            }
        }
        return queued
    }

    public static func info(_ rows: PGResult, _ row: Int, now: Millis) -> MaintenanceWindowInfo {
        let window = window(rows, row)
        let current = window.active(at: now) ?? window.next(after: now)
        let services = PGTextArray.parse(rows.string(row, "service_ids") ?? "{}").compactMap { UInt64($0) }
        return MaintenanceWindowInfo(
            id: UInt64(window.id), description: rows.string(row, "description")!, serviceIDs: services, startsAtMs: window.startsAt,
            endsAtMs: window.endsAt, rrule: rows.string(row, "rrule")!, timeZone: window.timeZone, mode: window.mode.rawValue,
            matchers: window.matchers.map { EventConditionInfo(field: $0.field, op: $0.op.rawValue, value: $0.value) },
            endedAtMs: window.endedAt ?? 0, cancelled: window.cancelled, phase: window.phase(at: now),
            currentStartMs: current?.start ?? 0, currentEndMs: current?.end ?? 0, createdAtMs: rows.int64(row, "created_at_ms")!,
            createdBy: rows.string(row, "created_by")!)
    }

    public static func load(_ connection: PGConnection, id: Int64, now: Millis, forUpdate: Bool = false) throws -> (MaintenanceWindow, MaintenanceWindowInfo)? {
        let rows = try connection.query("SELECT \(columns) FROM maintenance_windows w WHERE w.id = $1 \(forUpdate ? "FOR UPDATE" : "")", [id])
        guard !rows.isEmpty else { return nil }
        return (window(rows, 0), info(rows, 0, now: now))
    }

    public static func list(_ connection: PGConnection, serviceID: Int64?, now: Millis) throws -> [MaintenanceWindowInfo] {
        let rows = try connection.query(
            """
            SELECT \(columns) FROM maintenance_windows w
            WHERE $1::bigint IS NULL OR EXISTS (SELECT 1 FROM maintenance_window_services s WHERE s.window_id = w.id AND s.service_id = $1::bigint)
            ORDER BY w.starts_at_ms DESC, w.id DESC LIMIT 1000
            """, [serviceID])
        return (0..<rows.count).map { info(rows, $0, now: now) }
    }

    public static func insert(
        _ connection: PGConnection, description: String, serviceIDs: [Int64], startsAt: Millis, endsAt: Millis, rrule: String,
        timeZone: String, mode: MaintenanceWindow.Mode, matchers: [EventCondition], actor: String, now: Millis
    ) throws -> Int64 {
        let rows = try connection.query(
            """
            INSERT INTO maintenance_windows (description, starts_at_ms, ends_at_ms, rrule, time_zone, mode, matchers, created_at_ms, created_by)
            VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9) RETURNING id
            """, [description, startsAt, endsAt, rrule, timeZone, mode.rawValue, conditionsJSON(matchers), now, actor])
        let id = rows.int64(0, "id")!
        try connection.query(
            "INSERT INTO maintenance_window_services (window_id, service_id) SELECT $1, unnest($2::bigint[]) ON CONFLICT DO NOTHING",
            [id, PGArray(serviceIDs)])
        return id
    }

    /// Ends the window's ongoing occurrence now; the incidents it held on its services are released
    /// now (the timer loop pages their level 1).
    public static func end(_ connection: PGConnection, id: Int64, now: Millis) throws {
        try connection.query("UPDATE maintenance_windows SET ended_at_ms = $2 WHERE id = $1", [id, now])
        try connection.query(
            """
            UPDATE incidents SET held_until_ms = $2
            WHERE held_until_ms > $2 AND status <> 'resolved'
              AND service_id IN (SELECT service_id FROM maintenance_window_services WHERE window_id = $1)
            """, [id, now])
    }

    public static func cancel(_ connection: PGConnection, id: Int64) throws {
        try connection.query("UPDATE maintenance_windows SET cancelled = true WHERE id = $1", [id])
    }
}

/// What a service's rules suppressed and its drop windows dropped (`service_audit`).
public enum ServiceAudit {
    public static let insertSQL = "INSERT INTO service_audit (service_id, at_ms, kind, reason, event) VALUES ($1, $2, $3, $4, $5::jsonb)"

    public static func insert(_ connection: PGConnection, serviceID: Int64, at: Millis, kind: String, reason: String, eventJSON: String) throws {
        try connection.query(insertSQL, [serviceID, at, kind, reason, eventJSON])
    }

    public static func list(_ connection: PGConnection, serviceID: Int64, limit: Int) throws -> [ServiceAuditEntry] {
        let rows = try connection.query(
            """
            SELECT id, service_id, at_ms, kind, reason, event::text AS event FROM service_audit
            WHERE service_id = $1 ORDER BY at_ms DESC, id DESC LIMIT $2
            """, [serviceID, Int64(limit)])
        return (0..<rows.count).map { row in
            ServiceAuditEntry(
                id: rows.uint64(row, "id")!, serviceID: rows.uint64(row, "service_id")!, atMs: rows.int64(row, "at_ms")!,
                kind: rows.string(row, "kind")!, reason: rows.string(row, "reason")!, eventJson: rows.string(row, "event")!)
        }
    }
}

/// Heartbeat monitors in PostgreSQL: pings (Ingest), deadlines (Assignment's timer loop), and
/// the incident `heartbeat:{id}` they trigger and resolve through the same writer as events.
public enum HeartbeatStore {
    static let columns = """
        h.id, h.name, h.service_id, h.period_seconds, h.cron, h.time_zone, h.grace_seconds, h.start_timeout_seconds, h.status,
        h.started_at_ms, h.last_ping_at_ms, h.last_ping_kind, h.last_ping_body, h.last_success_at_ms, h.deadline_at_ms,
        h.down_reason, h.created_at_ms
        """

    public struct Row: Sendable {
        public var id: String
        public var name: String
        public var serviceID: Int64
        public var monitor: HeartbeatMonitor
        public var createdAt: Millis

        public init(id: String, name: String, serviceID: Int64, monitor: HeartbeatMonitor, createdAt: Millis) {
            self.id = id
            self.name = name
            self.serviceID = serviceID
            self.monitor = monitor
            self.createdAt = createdAt
        }

        public var dedupKey: String { "heartbeat:\(id)" }

        public var info: Heartbeat {
            Heartbeat(
                id: id, name: name, serviceID: UInt64(serviceID), periodSeconds: monitor.periodSeconds,
                cron: monitor.cron?.expression ?? "", timeZone: monitor.timeZone, graceSeconds: monitor.graceSeconds,
                startTimeoutSeconds: monitor.startTimeoutSeconds, status: monitor.status.rawValue, lastPingAtMs: monitor.lastPingAt ?? 0,
                lastPingKind: monitor.lastPingKind, lastPingBody: monitor.lastPingBody, lastSuccessAtMs: monitor.lastSuccessAt ?? 0,
                deadlineAtMs: monitor.deadline ?? 0, downReason: monitor.downReason, createdAtMs: createdAt)
        }
    }

    static func row(_ rows: PGResult, _ row: Int) -> Row {
        let cron = rows.string(row, "cron") ?? ""
        var monitor = HeartbeatMonitor(
            periodSeconds: UInt32(rows.int(row, "period_seconds")!), cron: cron.isEmpty ? nil : try? CronSchedule.parse(cron).get(),
            timeZone: rows.string(row, "time_zone")!, graceSeconds: UInt32(rows.int(row, "grace_seconds")!),
            startTimeoutSeconds: UInt32(rows.int(row, "start_timeout_seconds")!))
        monitor.status = HeartbeatMonitor.Status(rawValue: rows.string(row, "status")!) ?? .new
        monitor.startedAt = rows.int64(row, "started_at_ms")
        monitor.lastPingAt = rows.int64(row, "last_ping_at_ms")
        monitor.lastPingKind = rows.string(row, "last_ping_kind")!
        monitor.lastPingBody = rows.string(row, "last_ping_body")!
        monitor.lastSuccessAt = rows.int64(row, "last_success_at_ms")
        monitor.deadline = rows.int64(row, "deadline_at_ms")
        monitor.downReason = rows.string(row, "down_reason")!
        return Row(
            id: rows.string(row, "id")!, name: rows.string(row, "name")!, serviceID: rows.int64(row, "service_id")!, monitor: monitor,
            createdAt: rows.int64(row, "created_at_ms")!)
    }

    /// By id (the URL's secret) or by name.
    public static func find(_ connection: PGConnection, idOrName: String, forUpdate: Bool = false) throws -> Row? {
        let rows = try connection.query(
            "SELECT \(columns) FROM heartbeats h WHERE h.id = $1 OR h.name = $1 ORDER BY (h.id = $1) DESC LIMIT 1 \(forUpdate ? "FOR UPDATE" : "")",
            [idOrName])
        return rows.isEmpty ? nil : row(rows, 0)
    }

    public static func list(_ connection: PGConnection) throws -> [Row] {
        let rows = try connection.query("SELECT \(columns) FROM heartbeats h ORDER BY h.name")
        return (0..<rows.count).map { row(rows, $0) }
    }

    public static func insert(_ connection: PGConnection, _ row: Row) throws {
        try connection.query(
            """
            INSERT INTO heartbeats (id, name, service_id, period_seconds, cron, time_zone, grace_seconds, start_timeout_seconds, created_at_ms)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
            """,
            [row.id, row.name, row.serviceID, Int64(row.monitor.periodSeconds), row.monitor.cron?.expression ?? "", row.monitor.timeZone,
             Int64(row.monitor.graceSeconds), Int64(row.monitor.startTimeoutSeconds), row.createdAt])
    }

    /// The settings of an existing monitor (YAML apply): its state stays; a changed schedule
    /// moves an armed deadline to what the new one expects from the last success.
    public static func update(_ connection: PGConnection, _ row: Row) throws {
        try connection.query(
            """
            UPDATE heartbeats SET service_id = $2, period_seconds = $3, cron = $4, time_zone = $5, grace_seconds = $6,
                   start_timeout_seconds = $7, deadline_at_ms = $8
            WHERE id = $1
            """,
            [row.id, row.serviceID, Int64(row.monitor.periodSeconds), row.monitor.cron?.expression ?? "", row.monitor.timeZone,
             Int64(row.monitor.graceSeconds), Int64(row.monitor.startTimeoutSeconds), row.monitor.deadline])
    }

    static func save(_ connection: PGConnection, _ row: Row) throws {
        let m = row.monitor
        try connection.query(
            """
            UPDATE heartbeats SET status = $2, started_at_ms = $3, last_ping_at_ms = $4, last_ping_kind = $5, last_ping_body = $6,
                   last_success_at_ms = $7, deadline_at_ms = $8, down_reason = $9
            WHERE id = $1
            """, [row.id, m.status.rawValue, m.startedAt, m.lastPingAt, m.lastPingKind, m.lastPingBody, m.lastSuccessAt, m.deadline, m.downReason])
    }

    /// What a ping or a deadline did.
    public struct Outcome: Sendable {
        public var row: Row
        public var effect: HeartbeatMonitor.Effect?
        /// The incident triggered (new or joined), resolved, held, or the event dropped.
        public var incidentID: Int64?
        public var created = false
        public var dropped = false
    }

    /// Which monitor a ping names: the secret id (its URL), or the name with a routing key of its
    /// service (Opsgenie's heartbeat ping).
    public enum PingKey: Sendable {
        case id(String)
        case name(String, serviceID: Int64)
    }

    /// A ping, in the caller's transaction: the monitor's row locked, its rules applied, the
    /// incident triggered or resolved with it. nil for an unknown monitor.
    public static func ping(
        _ connection: PGConnection, _ key: PingKey, signal: HeartbeatMonitor.Signal, body: String, now: Millis
    ) throws -> Outcome? {
        let rows = switch key {
        case let .id(id): try connection.query("SELECT \(columns) FROM heartbeats h WHERE h.id = $1 FOR UPDATE", [id])
        case let .name(name, serviceID):
            try connection.query("SELECT \(columns) FROM heartbeats h WHERE h.name = $1 AND h.service_id = $2 FOR UPDATE", [name, serviceID])
        }
        guard !rows.isEmpty else { return nil }
        var row = row(rows, 0)
        let effect = row.monitor.ping(signal, body: body, at: now)
        try save(connection, row)
        return try apply(effect, row: row, connection: connection, now: now)
    }

    static func apply(_ effect: HeartbeatMonitor.Effect?, row: Row, connection: PGConnection, now: Millis) throws -> Outcome {
        var outcome = Outcome(row: row, effect: effect)
        switch effect {
        case nil:
            break
        case let .trigger(reason):
            try trigger(row, reason: reason, connection: connection, now: now, into: &outcome)
            if let incidentID = outcome.incidentID, !outcome.dropped {
                try WebhookEvents.enqueue(connection, incidentID: incidentID, type: "heartbeat.expired", actor: "system", now: now, extra: heartbeat(row, reason))
            }
        case .resolve:
            let open = try connection.query(
                "SELECT id FROM incidents WHERE service_id = $1 AND dedup_key = $2 AND status <> 'resolved'", [row.serviceID, row.dedupKey])
            if let incidentID = open.int64(0, "id") {
                _ = try IncidentStore.run(
                    .resolve(actor: "heartbeat", reason: "heartbeat \(row.name): success ping"), incidentID: incidentID,
                    connection: connection, now: now, when: { $0.state.status != .resolved })
                outcome.incidentID = incidentID
                try WebhookEvents.enqueue(
                    connection, incidentID: incidentID, type: "heartbeat.restored", actor: "system", now: now, extra: heartbeat(row, "success ping"))
            }
        }
        return outcome
    }

    /// The monitor in a webhook event's data.
    static func heartbeat(_ row: Row, _ reason: String) -> WebhookEvents.Extra {
        let (id, name) = (row.id, row.name)
        return { json in
            json.beginObject("heartbeat")
            json.field("id", id)
            json.field("name", name)
            json.field("reason", reason)
            json.endObject()
        }
    }

    static func trigger(_ row: Row, reason: String, connection: PGConnection, now: Millis, into outcome: inout Outcome) throws {
        let service = try connection.query("SELECT urgency_rule FROM services WHERE id = $1", [row.serviceID])
        let rule = UrgencyRule(rawValue: service.string(0, "urgency_rule") ?? "high") ?? .high
        let m = row.monitor
        let details: [String: String] = [
            "heartbeat_id": row.id, "heartbeat_name": row.name, "reason": reason,
            "last_ping_at": m.lastPingAt.map { RFC3339.string(millis: $0) } ?? "never",
            "last_ping_kind": m.lastPingKind, "last_ping_body": m.lastPingBody,
        ]
        let summary = String("Heartbeat \(row.name) is down: \(reason)".prefix(1024))
        let fields = EventFields.of(
            summary: summary, source: "heartbeat:\(row.name)", severity: "critical", dedupKey: row.dedupKey, action: "trigger",
            client: "Klaxon heartbeat", dialect: "heartbeat", customDetails: details)
        let windows = try MaintenanceStore.current(connection, serviceIDs: [row.serviceID], now: now)[row.serviceID] ?? []
        var heldUntil: Millis?
        switch Maintenance.decide(windows, fields, at: now) {
        case let .drop(windowID)?:
            try ServiceAudit.insert(
                connection, serviceID: row.serviceID, at: now, kind: "dropped",
                reason: "maintenance window \(windowID) (drop)", eventJSON: JSON.object(fields))
            outcome.dropped = true
            return
        case let .hold(until, _)?: heldUntil = until
        case nil: break
        }
        var trigger = PreparedTrigger(
            serviceID: row.serviceID, dedupKey: row.dedupKey, summary: summary, source: "heartbeat:\(row.name)", severity: "critical",
            urgency: rule.urgency(for: .critical), detailsJSON: JSON.object(details), eventJSON: JSON.object(fields))
        trigger.heldUntil = heldUntil
        let result = try connection.savepoint { try TriggerWriter.write([trigger], connection: connection, now: now) }[0]
        outcome.incidentID = Int64(result.incidentID)
        outcome.created = result.outcome == .created
    }

    /// Fires due deadlines (claimed FOR UPDATE SKIP LOCKED: replicas share them, none fires
    /// twice). First, if nobody looked for longer than `outageMs` (Klaxon itself was down),
    /// deadlines that fell in the gap move past the restart. Returns the outcomes and the next deadline.
    public static func fireDue(
        _ connection: PGConnection, now: Millis, outageMs: Millis, limit: Int = 200
    ) throws -> (outcomes: [Outcome], next: Millis?) {
        let watch = try connection.query(
            """
            UPDATE heartbeat_watch w SET checked_at_ms = greatest(coalesce(old.checked_at_ms, $1), $1)
            FROM (SELECT checked_at_ms FROM heartbeat_watch FOR UPDATE) old
            RETURNING old.checked_at_ms AS last
            """, [now])
        if let last = watch.int64(0, "last"), now - last > outageMs {
            let gap = try connection.query("SELECT \(columns) FROM heartbeats h WHERE h.deadline_at_ms > $1::bigint - 1 AND h.deadline_at_ms <= $2::bigint FOR UPDATE", [last, now])
            for index in 0..<gap.count {
                var row = row(gap, index)
                row.monitor.afterOutage(lastChecked: last, now: now)
                try save(connection, row)
            }
        }
        let due = try connection.query(
            """
            SELECT \(columns) FROM heartbeats h WHERE h.deadline_at_ms <= $1
            ORDER BY h.deadline_at_ms LIMIT $2 FOR UPDATE SKIP LOCKED
            """, [now, Int64(limit)])
        var outcomes: [Outcome] = []
        for index in 0..<due.count {
            var row = row(due, index)
            let effect = row.monitor.deadlinePassed(at: now)
            if effect == nil { row.monitor.deadline = nil }  // not armed (a stale deadline): never due again
            try save(connection, row)
            outcomes.append(try apply(effect, row: row, connection: connection, now: now))
        }
        let next = try connection.query("SELECT min(deadline_at_ms) AS next FROM heartbeats").int64(0, "next")
        return (outcomes, due.count == limit ? now : next)
    }
}
