import Foundation
import IncidentEngine
import KlaxonDomain
import Shared

/// Heartbeat monitors, maintenance windows, event rules and the service audit trail
/// (`klaxon.assignment.v1.Admin`, issue 27): validated here with every problem named by its field,
/// the same checks for the API and for `klaxon apply` (`prefix` names the YAML path).
enum MonitorChecks {
    static let maxStartTimeoutSeconds: UInt32 = 7 * 86_400
    static let maxWindowSeconds: Millis = 31 * 86_400

    static func service(_ connection: PGConnection, _ id: UInt64, field: String) throws {
        guard id != 0 else { throw RPCError.invalidArgument([FieldViolation(field: field, description: "is required")]) }
        guard !(try connection.query("SELECT 1 FROM services WHERE id = $1 AND deleted_at_ms IS NULL AND NOT canary", [Int64(id)])).isEmpty else {
            throw RPCError.invalidArgument([FieldViolation(field: field, description: "service \(id) does not exist")])
        }
    }

    /// A heartbeat monitor's settings, checked; `id` kept when given (YAML round trips keep the URL).
    static func heartbeat(_ message: Heartbeat, prefix: String = "", now: Millis) throws -> HeartbeatStore.Row {
        var violations: [FieldViolation] = []
        func add(_ field: String, _ description: String) { violations.append(FieldViolation(field: prefix + field, description: description)) }
        if message.name.isEmpty || message.name.unicodeScalars.count > 255 { add("name", "must be 1–255 characters") }
        if !message.id.isEmpty, message.id.count < 16 || message.id.count > 64 || !message.id.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) || !message.id.allSatisfy(\.isASCII) {
            add("id", "must be 16–64 letters, digits, - or _ (leave it empty and Klaxon makes one)")
        }
        let zone = message.timeZone.isEmpty ? "UTC" : message.timeZone
        if TimeZone(identifier: zone) == nil { add("time_zone", "unknown time zone \"\(zone)\"") }
        var cron: CronSchedule?
        if !message.cron.isEmpty {
            if message.periodSeconds != 0 { add("period_seconds", "give a period or a cron schedule, not both") }
            switch CronSchedule.parse(message.cron) {
            case let .success(schedule): cron = schedule
            case let .failure(problem): add("cron", problem.description)
            }
        } else if !HeartbeatMonitor.periodRange.contains(message.periodSeconds) {
            add("period_seconds", "must be 60–\(HeartbeatMonitor.periodRange.upperBound) (366 days), or give a cron schedule")
        }
        if !HeartbeatMonitor.graceRange.contains(message.graceSeconds) { add("grace_seconds", "must be at most \(HeartbeatMonitor.graceRange.upperBound) (30 days)") }
        if message.startTimeoutSeconds > maxStartTimeoutSeconds { add("start_timeout_seconds", "must be at most \(maxStartTimeoutSeconds) (7 days); 0 = none") }
        guard violations.isEmpty else { throw RPCError.invalidArgument(violations) }
        let monitor = HeartbeatMonitor(
            periodSeconds: cron == nil ? message.periodSeconds : 0, cron: cron, timeZone: zone, graceSeconds: message.graceSeconds,
            startTimeoutSeconds: message.startTimeoutSeconds)
        return HeartbeatStore.Row(
            id: message.id.isEmpty ? RandomID.uuid() : message.id, name: message.name, serviceID: Int64(message.serviceID), monitor: monitor,
            createdAt: now)
    }

    static func conditions(_ items: [EventConditionInfo], field: String) -> ([EventCondition], [FieldViolation]) {
        var conditions: [EventCondition] = []
        var violations: [FieldViolation] = []
        if items.count > Maintenance.maxMatchers { violations.append(FieldViolation(field: field, description: "at most \(Maintenance.maxMatchers) matchers")) }
        for (index, item) in items.enumerated() {
            switch EventCondition.make(field: item.field, op: item.op.isEmpty ? "=" : item.op, value: item.value) {
            case let .success(condition): conditions.append(condition)
            case let .failure(problem): violations.append(FieldViolation(field: "\(field)[\(index)].\(problem.field)", description: problem.description))
            }
        }
        return (conditions, violations)
    }

    /// A window's settings, checked: (start, end, recurrence text, zone, mode, matchers).
    static func window(_ message: MaintenanceWindowInfo, prefix: String = "", now: Millis) throws
        -> (start: Millis, end: Millis, rrule: String, zone: String, mode: MaintenanceWindow.Mode, matchers: [EventCondition])
    {
        var violations: [FieldViolation] = []
        func add(_ field: String, _ description: String) { violations.append(FieldViolation(field: prefix + field, description: description)) }
        if message.serviceIDs.isEmpty { add("service_ids", "name at least one service") }
        var start = message.startsAtMs
        var end = message.endsAtMs
        if start == 0 {
            guard message.durationSeconds > 0 else {
                add("duration_seconds", "is required when starts_at_ms is 0 (from now)")
                throw RPCError.invalidArgument(violations)
            }
            start = now
            end = now + Millis(message.durationSeconds) * 1000
        }
        if end <= start { add("ends_at_ms", "must be after starts_at_ms") }
        if end - start > maxWindowSeconds * 1000 { add("ends_at_ms", "a window (or each occurrence) lasts at most 31 days") }
        let zone = message.timeZone.isEmpty ? "UTC" : message.timeZone
        if TimeZone(identifier: zone) == nil { add("time_zone", "unknown time zone \"\(zone)\"") }
        if !message.rrule.isEmpty, case let .failure(problem) = Recurrence.parse(message.rrule) { add("rrule", problem.description) }
        let mode = MaintenanceWindow.Mode(rawValue: message.mode.isEmpty ? "hold" : message.mode)
        if mode == nil { add("mode", "must be hold or drop, got \"\(message.mode)\"") }
        if message.description.count > 1000 { add("description", "at most 1000 characters") }
        let (matchers, problems) = conditions(message.matchers, field: prefix + "matchers")
        violations += problems
        guard violations.isEmpty else { throw RPCError.invalidArgument(violations) }
        return (start, end, message.rrule, zone, mode!, matchers)
    }

    /// Rules from their JSON, checked, with every route naming a service that exists.
    static func rules(_ connection: PGConnection, json: String, prefix: String = "rules") throws -> [EventRule] {
        let rules: [EventRule]
        switch EventRules.parse(json: json.isEmpty ? "[]" : json) {
        case let .success(parsed): rules = parsed
        case let .failure(problems):
            throw RPCError.invalidArgument(problems.items.map {
                FieldViolation(field: $0.field.hasPrefix("rules") ? prefix + $0.field.dropFirst(5) : $0.field, description: $0.description)
            })
        }
        var violations: [FieldViolation] = []
        for (index, rule) in rules.enumerated() {
            guard let route = rule.actions.route else { continue }
            if try connection.query("SELECT 1 FROM services WHERE name = $1 AND deleted_at_ms IS NULL AND NOT canary", [route]).isEmpty {
                violations.append(FieldViolation(field: "\(prefix)[\(index)].actions.route", description: "no service is called \"\(route)\""))
            }
        }
        guard violations.isEmpty else { throw RPCError.invalidArgument(violations) }
        return rules
    }
}

extension AdminAPI {
    func registerMonitors(into router: inout RPCRouter) {
        let pool = self.pool
        let clock = self.clock
        // Heartbeat monitors.
        router.register(Admin.CreateHeartbeat) { (request: Heartbeat, _) in
            let now = clock.nowMs()
            let row = try MonitorChecks.heartbeat(request, now: now)
            return try await pool.transaction { connection in
                try MonitorChecks.service(connection, request.serviceID, field: "service_id")
                if !(try connection.query("SELECT 1 FROM heartbeats WHERE name = $1 OR id = $2", [row.name, row.id])).isEmpty {
                    throw RPCError(.alreadyExists, "a heartbeat monitor is already called \"\(row.name)\" (or has this id)")
                }
                try HeartbeatStore.insert(connection, row)
                return row.info
            }
        }
        router.register(Admin.GetHeartbeat) { (request: HeartbeatRequest, _) in
            guard let row = try await pool.withConnection({ try HeartbeatStore.find($0, idOrName: request.idOrName) }) else {
                throw RPCError(.notFound, "no heartbeat monitor is called \"\(request.idOrName)\"")
            }
            return row.info
        }
        router.register(Admin.ListHeartbeats) { (_: Empty, _) in
            HeartbeatList(heartbeats: try await pool.withConnection { try HeartbeatStore.list($0) }.map(\.info))
        }
        router.register(Admin.DeleteHeartbeat) { (request: HeartbeatRequest, _) in
            try await pool.transaction { connection in
                guard try connection.query("DELETE FROM heartbeats WHERE id = $1 OR name = $1", [request.idOrName]).affectedRows >= 1 else {
                    throw RPCError(.notFound, "no heartbeat monitor is called \"\(request.idOrName)\"")
                }
            }
            return Empty()
        }
        // Maintenance windows.
        router.register(Admin.CreateMaintenance) { (request: MaintenanceWindowInfo, context) in
            let now = clock.nowMs()
            let checked = try MonitorChecks.window(request, now: now)
            let actor = ResponseAPI.actor(context)
            return try await pool.transaction { connection in
                for (index, id) in request.serviceIDs.enumerated() { try MonitorChecks.service(connection, id, field: "service_ids[\(index)]") }
                let id = try MaintenanceStore.insert(
                    connection, description: request.description, serviceIDs: request.serviceIDs.map(Int64.init), startsAt: checked.start,
                    endsAt: checked.end, rrule: checked.rrule, timeZone: checked.zone, mode: checked.mode, matchers: checked.matchers,
                    actor: actor, now: now)
                return try MaintenanceStore.load(connection, id: id, now: now)!.1
            }
        }
        router.register(Admin.ListMaintenance) { (request: ListMaintenanceRequest, _) in
            guard ["", "past", "ongoing", "future", "cancelled"].contains(request.phase) else {
                throw RPCError.invalidArgument([FieldViolation(field: "phase", description: "must be past, ongoing, future or cancelled")])
            }
            let now = clock.nowMs()
            let windows = try await pool.withConnection {
                try MaintenanceStore.list($0, serviceID: request.serviceID == 0 ? nil : Int64(request.serviceID), now: now)
            }
            return MaintenanceList(windows: request.phase.isEmpty ? windows : windows.filter { $0.phase == request.phase })
        }
        // Ending is for an ongoing window, cancelling for one to come; each refusal says what to do instead.
        router.register(Admin.EndMaintenance) { (request: AdminIDRequest, _) in
            try await Self.changeWindow(pool: pool, now: clock.nowMs(), id: request.id, allowed: "ongoing", refusals: [
                "future": "has not started: cancel it instead", "cancelled": "was cancelled", "past": "is already over",
            ]) { connection, now in try MaintenanceStore.end(connection, id: Int64(request.id), now: now) }
        }
        router.register(Admin.CancelMaintenance) { (request: AdminIDRequest, _) in
            try await Self.changeWindow(pool: pool, now: clock.nowMs(), id: request.id, allowed: "future", refusals: [
                "ongoing": "is ongoing: end it instead", "cancelled": "is already cancelled", "past": "is already over",
            ]) { connection, _ in try MaintenanceStore.cancel(connection, id: Int64(request.id)) }
        }
        // Event rules and the audit trail.
        router.register(Admin.GetEventRules) { (request: AdminIDRequest, _) in
            try await pool.withConnection { connection in
                let rows = try connection.query(
                    "SELECT event_rules::text AS rules FROM services WHERE id = $1 AND deleted_at_ms IS NULL AND NOT canary", [Int64(request.id)])
                guard let text = rows.string(0, "rules"), !rows.isEmpty else { throw RPCError(.notFound, "service \(request.id) does not exist") }
                return EventRuleSet(serviceID: request.id, rulesJson: EventRules.json((try? EventRules.parse(json: text).get()) ?? []))
            }
        }
        router.register(Admin.SetEventRules) { (request: EventRuleSet, _) in
            try await pool.transaction { connection in
                try MonitorChecks.service(connection, request.serviceID, field: "service_id")
                let canonical = EventRules.json(try MonitorChecks.rules(connection, json: request.rulesJson))
                try connection.query("UPDATE services SET event_rules = $2::jsonb WHERE id = $1", [Int64(request.serviceID), canonical])
                return EventRuleSet(serviceID: request.serviceID, rulesJson: canonical)
            }
        }
        router.register(Admin.ListServiceAudit) { (request: ListServiceAuditRequest, _) in
            guard request.limit <= 500 else { throw RPCError.invalidArgument([FieldViolation(field: "limit", description: "must be at most 500")]) }
            return try await pool.withConnection { connection in
                try MonitorChecks.service(connection, request.serviceID, field: "service_id")
                return ListServiceAuditReply(entries: try ServiceAudit.list(
                    connection, serviceID: Int64(request.serviceID), limit: Int(request.limit == 0 ? 20 : request.limit)))
            }
        }
        // Shadow mode: the pages a service would have sent, oldest first, from `since_ms`.
        router.register(Admin.ListShadowPages) { (request: ListShadowPagesRequest, _) in
            guard request.limit <= 10_000 else { throw RPCError.invalidArgument([FieldViolation(field: "limit", description: "must be at most 10000")]) }
            return try await pool.withConnection { connection in
                try MonitorChecks.service(connection, request.serviceID, field: "service_id")
                let rows = try connection.query(
                    """
                    SELECT p.incident_id, i.number, i.dedup_key, i.title, p.user_id, u.email, p.channel, p.reason, p.minute_zero, p.due_at_ms, p.at_ms
                    FROM shadow_pages p JOIN incidents i ON i.id = p.incident_id JOIN users u ON u.id = p.user_id
                    WHERE p.service_id = $1 AND p.at_ms >= $2 ORDER BY p.at_ms, p.notification_id LIMIT $3
                    """, [Int64(request.serviceID), request.sinceMs, Int64(request.limit == 0 ? 1000 : request.limit)])
                return ListShadowPagesReply(pages: (0..<rows.count).map { row in
                    ShadowPage(
                        incidentID: rows.uint64(row, "incident_id")!, incidentNumber: rows.uint64(row, "number")!,
                        dedupKey: rows.string(row, "dedup_key") ?? "", title: rows.string(row, "title") ?? "",
                        userID: rows.uint64(row, "user_id")!, userEmail: rows.string(row, "email")!, channel: rows.string(row, "channel")!,
                        reason: rows.string(row, "reason")!, minuteZero: rows.bool(row, "minute_zero")!, dueAtMs: rows.int64(row, "due_at_ms")!,
                        atMs: rows.int64(row, "at_ms")!)
                })
            }
        }
    }

    /// Locks the window, checks its phase, changes it, and answers with it as it is after.
    static func changeWindow(
        pool: PostgresPool, now: Millis, id: UInt64, allowed: String, refusals: [String: String],
        _ change: @escaping @Sendable (PGConnection, Millis) throws -> Void
    ) async throws -> MaintenanceWindowInfo {
        try await pool.transaction { connection in
            guard let (_, info) = try MaintenanceStore.load(connection, id: Int64(id), now: now, forUpdate: true) else {
                throw RPCError(.notFound, "maintenance window \(id) does not exist")
            }
            guard info.phase == allowed else {
                throw RPCError(.failedPrecondition, "maintenance window \(id) \(refusals[info.phase] ?? "is \(info.phase)")")
            }
            try change(connection, now)
            return try MaintenanceStore.load(connection, id: Int64(id), now: now)!.1
        }
    }
}
