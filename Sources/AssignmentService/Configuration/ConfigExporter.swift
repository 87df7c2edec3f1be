import Foundation
import IncidentEngine
import KlaxonDomain
import Shared

/// The current configuration as a document `ConfigApplier` reads (JSON; the CLI writes YAML).
/// Applying an export changes nothing. Routing keys are exported by name only: a key is a secret
/// shown once.
enum ConfigExporter {
    static func export(_ connection: PGConnection) throws -> String {
        var emails: [UInt64: String] = [:]
        var users: [[String: Any]] = []
        let userRows = try connection.query("SELECT id, name, email, time_zone, role, coalesce(chat_id, '') AS chat_id FROM users WHERE NOT system ORDER BY id")
        let contactRows = try connection.query(
            "SELECT id, user_id, type, address, label, verified_at_ms IS NOT NULL AS verified FROM contact_methods ORDER BY id")
        let ruleRows = try connection.query(
            "SELECT user_id, contact_method_id, start_delay_seconds, urgency FROM notification_rules ORDER BY user_id, start_delay_seconds, id")
        for row in 0..<userRows.count {
            let id = userRows.int64(row, "id")!
            emails[UInt64(id)] = userRows.string(row, "email")!
            var labels: [Int64: String] = [:]
            var contacts: [[String: Any]] = []
            var used = Set<String>()
            for contact in 0..<contactRows.count where contactRows.int64(contact, "user_id") == id {
                // A contact method made by the API without a (unique) label is named by its type
                // and id, so the rules can name it (ConfigApplier knows that name too).
                var label = contactRows.string(contact, "label")!
                if label.isEmpty || used.contains(label) { label = "\(contactRows.string(contact, "type")!)-\(contactRows.int64(contact, "id")!)" }
                used.insert(label)
                labels[contactRows.int64(contact, "id")!] = label
                var method: [String: Any] = ["name": label, "type": contactRows.string(contact, "type")!, "address": contactRows.string(contact, "address")!]
                // A verified method stays verified when the export is applied elsewhere (an admin's document).
                if ContactVerification.needsCode(method["type"] as! String), contactRows.bool(contact, "verified")! { method["verified"] = true }
                contacts.append(method)
            }
            var rules: [[String: Any]] = []
            for rule in 0..<ruleRows.count where ruleRows.int64(rule, "user_id") == id {
                rules.append([
                    "contact_method": labels[ruleRows.int64(rule, "contact_method_id")!] ?? "?",
                    "start_delay_seconds": ruleRows.int(rule, "start_delay_seconds")!, "urgency": ruleRows.string(rule, "urgency")!,
                ])
            }
            var user: [String: Any] = [
                "name": userRows.string(row, "name")!, "email": userRows.string(row, "email")!,
                "time_zone": userRows.string(row, "time_zone")!, "role": userRows.string(row, "role")!,
            ]
            if let chatID = userRows.string(row, "chat_id"), !chatID.isEmpty { user["chat_id"] = chatID }
            if !contacts.isEmpty { user["contact_methods"] = contacts }
            if !rules.isEmpty { user["notification_rules"] = rules }
            users.append(user)
        }
        let email = { (id: UInt64) in emails[id] ?? "user-\(id)" }

        var schedules: [[String: Any]] = []
        var scheduleNames: [UInt64: String] = [:]
        let scheduleRows = try connection.query("SELECT id FROM schedules ORDER BY id")
        let ids = (0..<scheduleRows.count).map { scheduleRows.int64($0, "id")! }
        let loaded = try ScheduleStore.load(connection, ids: ids)
        for id in ids {
            guard let (name, schedule) = loaded[id] else { continue }
            scheduleNames[UInt64(id)] = name
            var entry: [String: Any] = ["name": name, "time_zone": schedule.timeZone]
            entry["layers"] = schedule.layers.map { layer -> [String: Any] in
                var out: [String: Any] = [
                    "users": layer.users.map(email), "rotation_virtual_start": RFC3339.string(millis: layer.rotationVirtualStart),
                    "rotation_turn_length_seconds": layer.turnLengthSeconds,
                ]
                if !layer.restrictions.isEmpty {
                    out["restrictions"] = layer.restrictions.map { restriction -> [String: Any] in
                        switch restriction {
                        case let .daily(start, duration):
                            ["kind": "daily", "start": timeOfDay(start), "duration_seconds": duration]
                        case let .weekly(weekday, start, duration):
                            ["kind": "weekly", "weekday": ConfigModel.weekdays[weekday - 1], "start": timeOfDay(start), "duration_seconds": duration]
                        }
                    }
                }
                if let start = layer.start { out["start"] = RFC3339.string(millis: start) }
                if let end = layer.end { out["end"] = RFC3339.string(millis: end) }
                return out
            }
            if !schedule.overrides.isEmpty {
                entry["overrides"] = schedule.overrides.map {
                    ["user": email($0.user), "start": RFC3339.string(millis: $0.start), "end": RFC3339.string(millis: $0.end)]
                }
            }
            schedules.append(entry)
        }

        var policies: [[String: Any]] = []
        var policyNames: [UInt64: String] = [:]
        let policyRows = try connection.query("SELECT id FROM escalation_policies WHERE NOT system ORDER BY id")
        for row in 0..<policyRows.count {
            guard let policy = try AdminAPI.policyMessage(connection, id: policyRows.int64(row, "id")!) else { continue }
            policyNames[policy.id] = policy.name
            policies.append([
                "name": policy.name, "num_loops": policy.numLoops,
                "levels": policy.levels.map { level -> [String: Any] in
                    ["escalation_delay_seconds": level.escalationDelaySeconds, "targets": level.targets.map { target -> [String: Any] in
                        target.userID != 0 ? ["user": email(target.userID)] : ["schedule": scheduleNames[target.scheduleID] ?? "schedule-\(target.scheduleID)"]
                    }]
                },
            ])
        }

        let services = try ServiceStore.load(connection).map { service -> [String: Any] in
            var entry: [String: Any] = [
                "name": service.name, "urgency_rule": service.urgencyRule, "ack_timeout_seconds": service.ackTimeoutSeconds,
                "auto_resolve_timeout_seconds": service.autoResolveTimeoutSeconds, "events_per_minute": service.eventsPerMinute,
                "events_burst": service.eventsBurst, "routing_keys": service.routingKeys.map { ["name": $0.name] },
            ]
            if let policy = policyNames[service.escalationPolicyID] { entry["escalation_policy"] = policy }
            if service.mode == "shadow" { entry["mode"] = "shadow" }
            if let text = try? connection.query("SELECT event_rules::text AS rules FROM services WHERE id = $1", [Int64(service.id)]).string(0, "rules"),
               let rules = try? EventRules.parse(json: text).get(), !rules.isEmpty,
               let value = try? JSONSerialization.jsonObject(with: Data(EventRules.json(rules).utf8))
            {
                entry["event_rules"] = value
            }
            return entry
        }
        let serviceNames = Dictionary(try ServiceStore.load(connection).map { (Int64($0.id), $0.name) }, uniquingKeysWith: { first, _ in first })
        // Webhook subscriptions without their secrets (the apply that made one printed it).
        let serviceNamesByID = Dictionary(try ServiceStore.load(connection).map { ($0.id, $0.name) }, uniquingKeysWith: { first, _ in first })
        let hookRows = try connection.query("SELECT \(AdminAPI.webhookColumns) FROM webhook_subscriptions w ORDER BY w.id")
        let webhooks = (0..<hookRows.count).map { row -> [String: Any] in
            let hook = AdminAPI.webhook(hookRows, row)
            var entry: [String: Any] = ["url": hook.url]
            if !hook.description.isEmpty { entry["description"] = hook.description }
            if !hook.eventTypes.isEmpty { entry["events"] = hook.eventTypes }
            if !hook.serviceIDs.isEmpty { entry["services"] = hook.serviceIDs.map { serviceNamesByID[$0] ?? "service-\($0)" } }
            if !hook.headers.isEmpty { entry["headers"] = hook.headers }
            if hook.ownerUserID != 0,
               let email = try? connection.query("SELECT email FROM users WHERE id = $1", [Int64(hook.ownerUserID)]).string(0, "email") {
                entry["owner"] = email
            }
            return entry
        }
        let heartbeats = try HeartbeatStore.list(connection).map { row -> [String: Any] in
            var entry: [String: Any] = [
                "name": row.name, "service": serviceNames[row.serviceID] ?? "service-\(row.serviceID)", "grace_seconds": Int(row.monitor.graceSeconds),
            ]
            if let cron = row.monitor.cron {
                entry["cron"] = cron.expression
                entry["time_zone"] = row.monitor.timeZone
            } else {
                entry["period_seconds"] = Int(row.monitor.periodSeconds)
            }
            if row.monitor.startTimeoutSeconds > 0 { entry["start_timeout_seconds"] = Int(row.monitor.startTimeoutSeconds) }
            return entry
        }
        // Windows still to come or recurring (past ones are history, not configuration).
        let now = Millis(Date().timeIntervalSince1970 * 1000)
        let windowRows = try connection.query("SELECT \(MaintenanceStore.columns) FROM maintenance_windows w WHERE NOT w.cancelled ORDER BY w.id")
        var windows: [[String: Any]] = []
        for row in 0..<windowRows.count {
            let info = MaintenanceStore.info(windowRows, row, now: now)
            guard info.phase != "past", !info.description.isEmpty else { continue }
            var entry: [String: Any] = [
                "description": info.description, "services": info.serviceIDs.map { serviceNames[Int64($0)] ?? "service-\($0)" },
                "start": RFC3339.string(millis: info.startsAtMs), "end": RFC3339.string(millis: info.endsAtMs), "mode": info.mode,
            ]
            if !info.rrule.isEmpty {
                entry["rrule"] = info.rrule
                entry["time_zone"] = info.timeZone
            }
            if !info.matchers.isEmpty {
                entry["matchers"] = info.matchers.map { $0.op == "exists" ? ["field": $0.field, "op": "exists"] : ["field": $0.field, "op": $0.op, "value": $0.value] }
            }
            windows.append(entry)
        }
        let plans = try PlanStore.all(connection).map { plan -> [String: Any] in
            var entry: [String: Any] = ["name": plan.name, "request_timeout_seconds": plan.requestTimeoutSeconds]
            for (key, value) in [("message", plan.message), ("conference_url", plan.conferenceURL), ("conference_phone", plan.conferencePhone),
                                 ("chat_channel", plan.chatChannel)] where !value.isEmpty {
                entry[key] = value
            }
            if !plan.responders.isEmpty {
                entry["responders"] = plan.responders.map { responder -> [String: Any] in
                    var out: [String: Any] = [:]
                    if responder.userID != 0 { out["user"] = email(responder.userID) }
                    if responder.scheduleID != 0 { out["schedule"] = scheduleNames[responder.scheduleID] ?? "schedule-\(responder.scheduleID)" }
                    if responder.policyID != 0 { out["escalation_policy"] = policyNames[responder.policyID] ?? "policy-\(responder.policyID)" }
                    if !responder.role.isEmpty { out["role"] = responder.role }
                    return out
                }
            }
            if !plan.subscriberIDs.isEmpty { entry["subscribers"] = plan.subscriberIDs.map(email) }
            if !plan.channelWebhooks.isEmpty { entry["channel_webhooks"] = plan.channelWebhooks }
            return entry
        }
        let surgeRow = try SurgeStore.row(connection)
        let surgeSettings = SurgeStore.settings(surgeRow)
        var surge: [String: Any] = [
            "enabled": surgeSettings.enabled, "window_seconds": surgeSettings.windowMs / 1000, "min_incidents": surgeSettings.minIncidents,
            "rate_factor": Int(surgeSettings.rateFactor), "min_services": surgeSettings.minServices,
            "quiet_period_seconds": surgeSettings.quietPeriodMs / 1000,
        ]
        if let plan = surgeRow.string(0, "plan"), !plan.isEmpty { surge["response_plan"] = plan }
        let document: [String: Any] = [
            "users": users, "schedules": schedules, "escalation_policies": policies, "services": services, "response_plans": plans, "surge": surge,
            "heartbeats": heartbeats, "maintenance_windows": windows, "webhooks": webhooks,
        ]
        let data = try JSONSerialization.data(withJSONObject: document, options: [.sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }

    static func timeOfDay(_ seconds: Int) -> String {
        let two = { (value: Int) in (value < 10 ? "0" : "") + "\(value)" }
        let text = two(seconds / 3600) + ":" + two(seconds % 3600 / 60)
        return seconds % 60 == 0 ? text : text + ":" + two(seconds % 60)
    }
}
