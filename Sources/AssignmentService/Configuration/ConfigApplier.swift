import Foundation
import IncidentEngine
import KlaxonDomain
import Shared

/// Makes the database match a configuration document, inside the caller's transaction, and
/// records each change as a plan line. Order: users (and their contact methods and rules),
/// schedules, escalation policies, services (and routing keys); with `prune`, what the document
/// does not name is deleted in the reverse order. Any error throws: the transaction rolls back.
struct ConfigApplier {
    let connection: PGConnection
    let document: ConfigModel
    let prune: Bool
    let now: Millis
    /// A dry run's plan: nothing it makes is kept (a webhook's secret is not shown).
    var dryRun = false
    private(set) var changes: [PlanChange] = []
    private(set) var createdKeys: [RoutingKey] = []
    private var userIDs: [String: Int64] = [:]      // by lowercased email
    private var scheduleIDs: [String: Int64] = [:]
    private var policyIDs: [String: Int64] = [:]

    init(connection: PGConnection, document: ConfigModel, prune: Bool, now: Millis) {
        self.connection = connection
        self.document = document
        self.prune = prune
        self.now = now
    }

    mutating func note(_ op: String, _ kind: String, _ name: String, _ detail: String = "") {
        changes.append(PlanChange(op: op, kind: kind, name: name, detail: detail))
    }

    func invalid(_ path: String, _ description: String) -> RPCError {
        RPCError.invalidArgument([FieldViolation(field: path, description: description)])
    }

    /// The advisory lock one apply (or dry run) holds at a time.
    static let applyLock: Int64 = 7_402_012

    mutating func apply() throws {
        // One apply at a time: two at once would each plan against what the other is changing.
        try connection.query("SELECT pg_advisory_xact_lock($1::bigint)", [Self.applyLock])
        try applyUsers()
        try applySchedules()
        try applyPolicies()
        try applyServices()
        try applyPlans()
        try applySurge()
        try applyEventRules()
        try applyHeartbeats()
        try applyWindows()
        try applyWebhooks()
        if prune { try pruneUnnamed() }
    }

    // MARK: Users

    /// What a plan line adds about verification (kinds that need a code only).
    static func verification(_ contact: ConfigModel.Contact, codeSent: Bool) -> String {
        guard ContactVerification.needsCode(contact.type) else { return "" }
        return codeSent ? ", verification code sent" : ", pre-verified"
    }

    mutating func applyUsers() throws {
        let rows = try connection.query("SELECT id, name, email, time_zone, role, coalesce(chat_id, '') AS chat_id FROM users WHERE NOT system ORDER BY id")
        var existing: [String: [Int]] = [:]
        for row in 0..<rows.count { existing[rows.string(row, "email")!.lowercased(), default: []].append(row) }
        for (email, matches) in existing { if matches.count == 1 { userIDs[email] = rows.int64(matches[0], "id")! } }
        for user in document.users {
            // The same rules as the People API (UserStore), each field named by its path.
            var violations = UserRules.violations(
                name: user.name, email: user.email, timeZone: user.timeZone, role: user.role, chatID: user.chatID, prefix: user.path + ".")
            for contact in user.contactMethods {
                if let problem = ContactKind.problem(type: contact.type, address: contact.address) {
                    violations.append((contact.path + "." + problem.field, problem.description))
                }
            }
            guard violations.isEmpty else {
                throw RPCError.invalidArgument(violations.map { FieldViolation(field: $0.field, description: $0.description) })
            }
            let key = user.email.lowercased()
            if (existing[key]?.count ?? 0) > 1 {
                throw invalid(user.path + ".email", "\(counted(existing[key]!.count, "user")) in Klaxon have this email; make them unique first")
            }
            let id: Int64
            if let found = userIDs[key], let row = existing[key]?.first {
                id = found
                var changed: [String] = []
                if rows.string(row, "name") != user.name { changed.append("name") }
                if rows.string(row, "time_zone") != user.timeZone { changed.append("time_zone") }
                if rows.string(row, "role") != user.role { changed.append("role") }
                if rows.string(row, "chat_id") != user.chatID { changed.append("chat_id") }
                if !changed.isEmpty {
                    try UserStore.update(connection, id: id, name: user.name, timeZone: user.timeZone, role: user.role, chatID: user.chatID)
                    note("~", "user", user.email, changed.joined(separator: ", "))
                }
            } else {
                id = try UserStore.create(
                    connection, name: user.name, email: user.email, timeZone: user.timeZone, role: user.role, chatID: user.chatID)
                userIDs[key] = id
                note("+", "user", user.email, user.name)
            }
            try applyContacts(user, userID: id)
        }
    }

    mutating func applyContacts(_ user: ConfigModel.User, userID: Int64) throws {
        let rows = try connection.query(
            "SELECT id, type, address, label, verified_at_ms IS NOT NULL AS verified FROM contact_methods WHERE user_id = $1 ORDER BY id", [userID])
        var byLabel: [String: Int] = [:]
        for row in 0..<rows.count where byLabel[rows.string(row, "label")!] == nil { byLabel[rows.string(row, "label")!] = row }
        var contactIDs: [String: Int64] = [:]
        // An export names a contact method without a unique label "<type>-<id>" (ConfigExporter).
        var byExportName: [String: Int] = [:]
        for row in 0..<rows.count { byExportName["\(rows.string(row, "type")!)-\(rows.int64(row, "id")!)"] = row }
        for contact in user.contactMethods {
            let name = "\(user.email)/\(contact.name)"
            if let row = byLabel[contact.name] ?? byExportName[contact.name] {
                let id = rows.int64(row, "id")!
                contactIDs[contact.name] = id
                if rows.string(row, "type") != contact.type || rows.string(row, "address") != contact.address {
                    let codeSent = try UserStore.updateContactMethod(
                        connection, id: id, type: contact.type, address: contact.address, prefix: contact.path + ".", preVerified: contact.verified, now: now)
                    note("~", "contact_method", name, (rows.string(row, "type") != contact.type ? "type, address" : "address")
                        + Self.verification(contact, codeSent: codeSent))
                } else if contact.verified, !rows.bool(row, "verified")! {
                    try ContactStore.addressSet(connection, methodID: id, type: contact.type, preVerified: true, now: now)
                    note("~", "contact_method", name, "verified (pre-verified by the document)")
                }
            } else {
                let id = try UserStore.addContactMethod(
                    connection, userID: userID, type: contact.type, address: contact.address, label: contact.name, prefix: contact.path + ".",
                    preVerified: contact.verified, now: now)
                contactIDs[contact.name] = id
                note("+", "contact_method", name, contact.type
                    + Self.verification(contact, codeSent: ContactVerification.needsCode(contact.type) && !contact.verified))
            }
        }
        // Rules are identified by what they are: contact method, delay, urgency.
        let ruleRows = try connection.query(
            "SELECT id, contact_method_id, start_delay_seconds, urgency FROM notification_rules WHERE user_id = $1 ORDER BY id", [userID])
        var existingRules: [String: [Int64]] = [:]
        for row in 0..<ruleRows.count {
            let key = "\(ruleRows.int64(row, "contact_method_id")!)/\(ruleRows.int(row, "start_delay_seconds")!)/\(ruleRows.string(row, "urgency")!)"
            existingRules[key, default: []].append(ruleRows.int64(row, "id")!)
        }
        var keptRules = Set<Int64>()
        for rule in user.rules {
            guard let contactID = contactIDs[rule.contactMethod] else { continue }  // checked when parsed
            let key = "\(contactID)/\(rule.delaySeconds)/\(rule.urgency)"
            if var ids = existingRules[key], !ids.isEmpty {
                keptRules.insert(ids.removeFirst())
                existingRules[key] = ids
            } else {
                let id = try UserStore.insertRule(
                    connection, userID: userID, contactMethodID: contactID, startDelaySeconds: rule.delaySeconds,
                    urgency: Urgency(rawValue: rule.urgency) ?? .high)
                keptRules.insert(id)
                note("+", "notification_rule", "\(user.email)/\(rule.contactMethod)", "after \(rule.delaySeconds) s, \(rule.urgency) urgency")
            }
        }
        if prune {
            for row in 0..<ruleRows.count where !keptRules.contains(ruleRows.int64(row, "id")!) {
                try connection.query("DELETE FROM notification_rules WHERE id = $1", [ruleRows.int64(row, "id")!])
                note("-", "notification_rule", "\(user.email)/rule \(ruleRows.int64(row, "id")!)",
                     "after \(ruleRows.int(row, "start_delay_seconds")!) s, \(ruleRows.string(row, "urgency")!) urgency")
            }
            let kept = Set(contactIDs.values)
            for row in 0..<rows.count where !kept.contains(rows.int64(row, "id")!) {
                let id = rows.int64(row, "id")!
                do {
                    try connection.savepoint { _ = try connection.query("DELETE FROM contact_methods WHERE id = $1", [id]) }
                } catch {
                    throw RPCError(.failedPrecondition, "\(user.path): contact method \"\(rows.string(row, "label")!)\" of \(user.email) cannot be deleted: pages were sent through it (their history refers to it)")
                }
                note("-", "contact_method", "\(user.email)/\(rows.string(row, "label")!)", rows.string(row, "type")!)
            }
        }
    }

    func userID(_ email: String, path: String) throws -> Int64 {
        guard let id = userIDs[email.lowercased()] else {
            throw invalid(path, "user \"\(email)\" is neither in the document nor in Klaxon (users are named by email)")
        }
        return id
    }

    // MARK: Schedules

    mutating func applySchedules() throws {
        let rows = try connection.query("SELECT id, name FROM schedules ORDER BY id")
        for row in 0..<rows.count where scheduleIDs[rows.string(row, "name")!] == nil { scheduleIDs[rows.string(row, "name")!] = rows.int64(row, "id")! }
        let loaded = try ScheduleStore.load(connection, ids: Array(scheduleIDs.values))
        for schedule in document.schedules {
            var layers: [KlaxonDomain.ScheduleLayer] = []
            for layer in schedule.layers {
                let users = try layer.users.enumerated().map { UInt64(try userID($1, path: "\(layer.path).users[\($0)]")) }
                layers.append(KlaxonDomain.ScheduleLayer(
                    users: users, rotationVirtualStart: layer.rotationStart, turnLengthSeconds: layer.turnLengthSeconds,
                    restrictions: layer.restrictions, start: layer.start, end: layer.end))
            }
            let overrides = try schedule.overrides.map { override in
                ScheduleOverride(user: UInt64(try userID(override.user, path: override.path + ".user")), start: override.start, end: override.end)
            }
            let domain = KlaxonDomain.Schedule(timeZone: schedule.timeZone, layers: layers, overrides: overrides)
            let problems = domain.violations()
            if !problems.isEmpty {
                throw RPCError.invalidArgument(problems.map { FieldViolation(field: "\(schedule.path).\($0.field)", description: $0.description) })
            }
            if let id = scheduleIDs[schedule.name] {
                if loaded[id]?.schedule != domain {
                    try connection.query(
                        "UPDATE schedules SET time_zone = $2, definition = $3::jsonb WHERE id = $1",
                        [id, domain.timeZone, ScheduleStore.encode(domain)])
                    note("~", "schedule", schedule.name, "layers, overrides or time zone")
                }
            } else {
                scheduleIDs[schedule.name] = try connection.query(
                    "INSERT INTO schedules (name, time_zone, definition) VALUES ($1, $2, $3::jsonb) RETURNING id",
                    [schedule.name, domain.timeZone, ScheduleStore.encode(domain)]).int64(0, "id")!
                note("+", "schedule", schedule.name)
            }
        }
    }

    // MARK: Escalation policies

    mutating func applyPolicies() throws {
        let rows = try connection.query("SELECT id, name FROM escalation_policies WHERE NOT system ORDER BY id")
        for row in 0..<rows.count where policyIDs[rows.string(row, "name")!] == nil { policyIDs[rows.string(row, "name")!] = rows.int64(row, "id")! }
        for policy in document.policies {
            let message = PolicyMessage(
                id: 0, name: policy.name,
                levels: try policy.levels.map { level in
                    PolicyLevelMessage(escalationDelaySeconds: level.delaySeconds, targets: try level.targets.map { target in
                        if let user = target.user { return PolicyTargetMessage(userID: UInt64(try userID(user, path: target.path + ".user"))) }
                        let name = target.schedule ?? ""
                        guard let schedule = scheduleIDs[name] else {
                            throw invalid(target.path + ".schedule", "schedule \"\(name)\" is neither in the document nor in Klaxon")
                        }
                        return PolicyTargetMessage(scheduleID: UInt64(schedule))
                    })
                },
                numLoops: policy.numLoops)
            do {
                _ = try AdminAPI.domainPolicy(message)
            } catch let error as RPCError {
                throw RPCError.invalidArgument(error.status.violations.map { FieldViolation(field: "\(policy.path).\($0.field)", description: $0.description) })
            }
            if let id = policyIDs[policy.name] {
                var current = try AdminAPI.policyMessage(connection, id: id)
                current?.id = 0
                if current != message {
                    var update = message
                    update.id = UInt64(id)
                    _ = try AdminAPI.writePolicy(connection, update, create: false)
                    note("~", "escalation_policy", policy.name, "levels or loops")
                }
            } else {
                policyIDs[policy.name] = try AdminAPI.writePolicy(connection, message, create: true)
                note("+", "escalation_policy", policy.name, "\(policy.levels.count) level(s)")
            }
        }
    }

    // MARK: Services

    mutating func applyServices() throws {
        let existing = try ServiceStore.load(connection)
        var byName: [String: ServiceMessage] = [:]
        for service in existing where byName[service.name] == nil { byName[service.name] = service }
        for service in document.services {
            guard let policyID = policyIDs[service.policy] else {
                throw invalid(service.path + ".escalation_policy", "escalation policy \"\(service.policy)\" is neither in the document nor in Klaxon")
            }
            var message = ServiceMessage(
                id: 0, name: service.name, escalationPolicyID: UInt64(policyID), ackTimeoutSeconds: service.ackTimeoutSeconds,
                autoResolveTimeoutSeconds: service.autoResolveSeconds, urgencyRule: service.urgencyRule,
                eventsPerMinute: service.eventsPerMinute, eventsBurst: service.eventsBurst,
                routingKeys: service.keys.map { RoutingKey(key: $0.key ?? "", name: $0.name) }, mode: service.mode)
            let violations = ServiceStore.violations(message, prefix: service.path + ".")
                .map { FieldViolation(field: $0.field.replacingOccurrences(of: "escalation_policy_id", with: "escalation_policy"), description: $0.description) }
            guard violations.isEmpty else { throw RPCError.invalidArgument(violations) }
            if let current = byName[service.name] {
                message.id = current.id
                var changed: [String] = []
                if current.escalationPolicyID != message.escalationPolicyID { changed.append("escalation_policy") }
                if current.ackTimeoutSeconds != message.ackTimeoutSeconds { changed.append("ack_timeout_seconds") }
                if current.autoResolveTimeoutSeconds != message.autoResolveTimeoutSeconds { changed.append("auto_resolve_timeout_seconds") }
                if current.urgencyRule != message.urgencyRule { changed.append("urgency_rule") }
                if current.eventsPerMinute != message.eventsPerMinute { changed.append("events_per_minute") }
                if current.eventsBurst != message.eventsBurst { changed.append("events_burst") }
                if current.mode != message.mode { changed.append("mode \(current.mode) → \(message.mode)") }
                if !changed.isEmpty {
                    try ServiceStore.update(connection, message)
                    note("~", "service", service.name, changed.joined(separator: ", "))
                }
                try applyKeys(service, serviceID: Int64(current.id), current: current.routingKeys)
            } else {
                message.routingKeys = []  // the document's keys are added below, each on its plan line
                let created = try ServiceStore.create(connection, message, now: now, defaultKey: false)
                note("+", "service", service.name)
                try applyKeys(service, serviceID: Int64(created.id), current: [])
            }
        }
    }

    mutating func applyKeys(_ service: ConfigModel.Service, serviceID: Int64, current: [RoutingKey]) throws {
        let currentNames = Set(current.map(\.name))
        for key in service.keys {
            if currentNames.contains(key.name) {
                guard let wanted = key.key else { continue }
                let stored = try connection.query(
                    "SELECT key FROM routing_keys WHERE service_id = $1 AND name = $2", [serviceID, key.name]).string(0, "key")
                if stored != wanted {
                    try connection.query("DELETE FROM routing_keys WHERE service_id = $1 AND name = $2", [serviceID, key.name])
                    _ = try ServiceStore.addKey(connection, serviceID: serviceID, name: key.name, key: wanted, now: now, field: key.path + ".key")
                    note("~", "routing_key", "\(service.name)/\(key.name)", "replaced by the key in the document")
                }
            } else {
                let added = try ServiceStore.addKey(
                    connection, serviceID: serviceID, name: key.name, key: key.key ?? "", now: now, field: key.path + ".key")
                if key.key == nil { createdKeys.append(added) }
                note("+", "routing_key", "\(service.name)/\(key.name)", key.key == nil ? "generated" : "from the document")
            }
        }
        if prune {
            let named = Set(service.keys.map(\.name))
            for key in current where !named.contains(key.name) {
                try connection.query("DELETE FROM routing_keys WHERE service_id = $1 AND name = $2", [serviceID, key.name])
                note("-", "routing_key", "\(service.name)/\(key.name)", key.key)
            }
        }
    }

    // MARK: Prune

    // MARK: Response plans

    /// Creates the plans the document names that Klaxon lacks, and replaces those that differ
    /// (their responders, subscribers and channels as listed). Responders and subscribers name
    /// users by email, schedules and policies by name (`scheduleIDs` / `policyIDs` hold every
    /// one in Klaxon by now: applySchedules and applyPolicies load them all).
    mutating func applyPlans() throws {
        let existing = try PlanStore.all(connection)
        for plan in document.plans {
            var responders: [ResponsePlanResponder] = []
            for (index, responder) in plan.responders.enumerated() {
                let path = "\(plan.path).responders[\(index)]"
                if let user = responder.user {
                    responders.append(ResponsePlanResponder(userID: UInt64(try userID(user, path: path + ".user")), role: responder.role))
                } else if let schedule = responder.schedule {
                    guard let id = scheduleIDs[schedule] else {
                        throw invalid(path + ".schedule", "schedule \"\(schedule)\" is neither in the document nor in Klaxon")
                    }
                    responders.append(ResponsePlanResponder(scheduleID: UInt64(id), role: responder.role))
                } else if let policy = responder.policy {
                    guard let id = policyIDs[policy] else {
                        throw invalid(path + ".escalation_policy", "escalation policy \"\(policy)\" is neither in the document nor in Klaxon")
                    }
                    responders.append(ResponsePlanResponder(policyID: UInt64(id), role: responder.role))
                }
            }
            let subscribers = try plan.subscribers.enumerated().map { UInt64(try userID($1, path: "\(plan.path).subscribers[\($0)]")) }
            let wanted = ResponsePlan(
                name: plan.name, responders: responders, subscriberIDs: subscribers, conferenceURL: plan.conferenceURL,
                conferencePhone: plan.conferencePhone, chatChannel: plan.chatChannel, message: plan.message,
                requestTimeoutSeconds: plan.requestTimeoutSeconds, channelWebhooks: plan.channelWebhooks)
            let violations = PlanStore.violations(wanted)
            guard violations.isEmpty else {
                throw RPCError.invalidArgument(violations.map { FieldViolation(field: "\(plan.path).\($0.field)", description: $0.description) })
            }
            if var current = existing.first(where: { $0.name == plan.name }) {
                let id = current.id
                current.id = 0
                var changed: [String] = []
                if current.responders != wanted.responders { changed.append("responders") }
                if Set(current.subscriberIDs) != Set(wanted.subscriberIDs) { changed.append("subscribers") }
                if Set(current.channelWebhooks) != Set(wanted.channelWebhooks) { changed.append("channel_webhooks") }
                if current.conferenceURL != wanted.conferenceURL || current.conferencePhone != wanted.conferencePhone { changed.append("bridge") }
                if current.chatChannel != wanted.chatChannel { changed.append("chat_channel") }
                if current.message != wanted.message { changed.append("message") }
                if current.requestTimeoutSeconds != wanted.requestTimeoutSeconds { changed.append("request_timeout_seconds") }
                guard !changed.isEmpty else { continue }
                try PlanStore.replace(connection, wanted, id: Int64(id))
                note("~", "response plan", plan.name, changed.joined(separator: ", "))
            } else {
                _ = try PlanStore.create(connection, wanted, now: now)
                note("+", "response plan", plan.name, counted(responders.count, "responder"))
            }
        }
    }

    // MARK: Event rules, heartbeat monitors, maintenance windows (issue 27)

    func serviceID(named name: String, path: String) throws -> Int64 {
        let rows = try connection.query("SELECT id FROM services WHERE name = $1 AND deleted_at_ms IS NULL AND NOT canary", [name])
        guard let id = rows.int64(0, "id"), !rows.isEmpty else { throw invalid(path, "service \"\(name)\" is neither in the document nor in Klaxon") }
        return id
    }

    mutating func applyEventRules() throws {
        for service in document.services {
            guard let value = service.eventRules else { continue }
            let id = try serviceID(named: service.name, path: service.path + ".name")
            let json = String(decoding: try JSONSerialization.data(withJSONObject: value.foundation, options: [.fragmentsAllowed]), as: UTF8.self)
            let canonical = EventRules.json(try MonitorChecks.rules(connection, json: json, prefix: service.path + ".event_rules"))
            let stored = try connection.query("SELECT event_rules::text AS rules FROM services WHERE id = $1", [id]).string(0, "rules") ?? "[]"
            if EventRules.json((try? EventRules.parse(json: stored).get()) ?? []) != canonical {
                try connection.query("UPDATE services SET event_rules = $2::jsonb WHERE id = $1", [id, canonical])
                note("~", "event_rules", service.name, counted(((try? EventRules.parse(json: canonical).get()) ?? []).count, "rule"))
            }
        }
    }

    mutating func applyHeartbeats() throws {
        for heartbeat in document.heartbeats {
            let service = try serviceID(named: heartbeat.service, path: heartbeat.path + ".service")
            var wanted = try MonitorChecks.heartbeat(
                Heartbeat(
                    id: heartbeat.id ?? "", name: heartbeat.name, serviceID: UInt64(service), periodSeconds: heartbeat.periodSeconds,
                    cron: heartbeat.cron, timeZone: heartbeat.timeZone, graceSeconds: heartbeat.graceSeconds,
                    startTimeoutSeconds: heartbeat.startTimeoutSeconds),
                prefix: heartbeat.path + ".", now: now)
            if let current = try HeartbeatStore.find(connection, idOrName: heartbeat.name, forUpdate: true), current.name == heartbeat.name {
                if let id = heartbeat.id, id != current.id {
                    throw invalid(heartbeat.path + ".id", "heartbeat \"\(heartbeat.name)\" has another id: its ping URL cannot change (delete it and create it again)")
                }
                let old = current.monitor
                let new = wanted.monitor
                var changed: [String] = []
                if current.serviceID != service { changed.append("service") }
                if old.periodSeconds != new.periodSeconds || old.cron?.expression != new.cron?.expression || old.timeZone != new.timeZone {
                    changed.append("schedule")
                }
                if old.graceSeconds != new.graceSeconds { changed.append("grace_seconds") }
                if old.startTimeoutSeconds != new.startTimeoutSeconds { changed.append("start_timeout_seconds") }
                guard !changed.isEmpty else { continue }
                var updated = current
                updated.serviceID = service
                updated.monitor.periodSeconds = new.periodSeconds
                updated.monitor.cron = new.cron
                updated.monitor.timeZone = new.timeZone
                updated.monitor.graceSeconds = new.graceSeconds
                updated.monitor.startTimeoutSeconds = new.startTimeoutSeconds
                // An armed monitor now expects its next success by the new schedule.
                if updated.monitor.status == .up, let last = updated.monitor.lastSuccessAt { updated.monitor.deadline = updated.monitor.successDeadline(after: last) }
                try HeartbeatStore.update(connection, updated)
                note("~", "heartbeat", heartbeat.name, changed.joined(separator: ", "))
            } else {
                wanted.serviceID = service
                if !(try connection.query("SELECT 1 FROM heartbeats WHERE id = $1", [wanted.id])).isEmpty {
                    throw invalid(heartbeat.path + ".id", "another heartbeat monitor has this id")
                }
                try HeartbeatStore.insert(connection, wanted)
                note("+", "heartbeat", heartbeat.name, "ping URL /heartbeat/\(wanted.id)")
            }
        }
    }

    mutating func applyWindows() throws {
        let existing = try connection.query(
            "SELECT \(MaintenanceStore.columns) FROM maintenance_windows w WHERE NOT w.cancelled ORDER BY w.id")
        var byDescription: [String: Int] = [:]
        for row in 0..<existing.count { byDescription[existing.string(row, "description")!] = row }
        for window in document.windows {
            var serviceIDs: [UInt64] = []
            for (index, name) in window.services.enumerated() {
                serviceIDs.append(UInt64(try serviceID(named: name, path: "\(window.path).services[\(index)]")))
            }
            let message = MaintenanceWindowInfo(
                description: window.description, serviceIDs: serviceIDs, startsAtMs: window.start, endsAtMs: window.end, rrule: window.rrule,
                timeZone: window.timeZone, mode: window.mode, matchers: window.matchers)
            let checked = try MonitorChecks.window(message, prefix: window.path + ".", now: now)
            if let row = byDescription[window.description] {
                let current = MaintenanceStore.info(existing, row, now: now)
                let same = current.serviceIDs == serviceIDs.sorted() && current.startsAtMs == checked.start && current.endsAtMs == checked.end
                    && current.rrule == checked.rrule && current.timeZone == checked.zone && current.mode == checked.mode.rawValue
                    && MaintenanceStore.conditionsJSON(checked.matchers) == existing.string(row, "matchers")
                        .map { MaintenanceStore.conditionsJSON(MaintenanceStore.conditions($0)) }
                guard !same else { continue }
                try connection.query(
                    """
                    UPDATE maintenance_windows SET starts_at_ms = $2, ends_at_ms = $3, rrule = $4, time_zone = $5, mode = $6, matchers = $7::jsonb
                    WHERE id = $1
                    """,
                    [Int64(current.id), checked.start, checked.end, checked.rrule, checked.zone, checked.mode.rawValue,
                     MaintenanceStore.conditionsJSON(checked.matchers)])
                try connection.query("DELETE FROM maintenance_window_services WHERE window_id = $1", [Int64(current.id)])
                try connection.query(
                    "INSERT INTO maintenance_window_services (window_id, service_id) SELECT $1, unnest($2::bigint[])",
                    [Int64(current.id), PGArray(serviceIDs.map(Int64.init))])
                note("~", "maintenance_window", window.description)
            } else {
                _ = try MaintenanceStore.insert(
                    connection, description: window.description, serviceIDs: serviceIDs.map(Int64.init), startsAt: checked.start,
                    endsAt: checked.end, rrule: checked.rrule, timeZone: checked.zone, mode: checked.mode, matchers: checked.matchers,
                    actor: "klaxon apply", now: now)
                note("+", "maintenance_window", window.description)
            }
        }
    }

    // MARK: Outbound webhooks (issue 28)

    mutating func applyWebhooks() throws {
        let rows = try connection.query(
            "SELECT \(AdminAPI.webhookColumns), w.secret FROM webhook_subscriptions w ORDER BY w.id FOR UPDATE OF w")
        var current: [String: (WebhookSubscription, String)] = [:]
        for row in 0..<rows.count {
            let hook = AdminAPI.webhook(rows, row)
            if current[hook.url] == nil { current[hook.url] = (hook, rows.string(row, "secret")!) }
        }
        for hook in document.webhooks {
            let serviceIDs = try hook.services.enumerated().map { index, name in
                UInt64(try serviceID(named: name, path: "\(hook.path).services[\(index)]"))
            }
            var owner: Int64?
            if let email = hook.owner {
                owner = try connection.query("SELECT id FROM users WHERE lower(email) = lower($1)", [email]).int64(0, "id")
                if owner == nil { throw invalid(hook.path + ".owner", "user \"\(email)\" is neither in the document nor in Klaxon") }
            }
            if let (existing, secret) = current[hook.url] {
                var changed: [String] = []
                if existing.description != hook.description { changed.append("description") }
                if existing.eventTypes != hook.events { changed.append("events") }
                if existing.serviceIDs != serviceIDs { changed.append("services") }
                if existing.headers != hook.headers { changed.append("headers") }
                if existing.ownerUserID != UInt64(owner ?? 0) { changed.append("owner") }
                let newSecret = hook.secret.flatMap { $0 == secret ? nil : $0 }
                if newSecret != nil { changed.append("secret") }
                guard !changed.isEmpty else { continue }
                try connection.query(
                    """
                    UPDATE webhook_subscriptions SET description = $2, event_types = $3::text[], service_ids = $4::bigint[], headers = $5::jsonb,
                        secret = coalesce($6, secret), owner_user_id = $7
                    WHERE id = $1
                    """,
                    [Int64(existing.id), hook.description, PGArray(hook.events), PGArray(serviceIDs.map(Int64.init)), JSON.object(hook.headers), newSecret,
                     owner])
                note("~", "webhook", hook.url, changed.joined(separator: ", "))
            } else {
                let secret = hook.secret ?? WebhookEvents.newSecret()
                try connection.query(
                    """
                    INSERT INTO webhook_subscriptions (url, description, event_types, service_ids, headers, secret, created_at_ms, owner_user_id)
                    VALUES ($1, $2, $3::text[], $4::bigint[], $5::jsonb, $6, $7, $8)
                    """,
                    [hook.url, hook.description, PGArray(hook.events), PGArray(serviceIDs.map(Int64.init)), JSON.object(hook.headers), secret, now, owner])
                note("+", "webhook", hook.url, hook.secret != nil ? "the document's secret" : dryRun ? "a secret will be made" : "secret \(secret), shown this once")
            }
        }
        if !document.webhooks.isEmpty { WebhookEvents.subscribed() }
    }

    mutating func pruneUnnamed() throws {
        let hooks = Set(document.webhooks.map(\.url))
        let subscribed = try connection.query("SELECT id, url FROM webhook_subscriptions ORDER BY id")
        for row in 0..<subscribed.count where !hooks.contains(subscribed.string(row, "url")!) {
            try connection.query("DELETE FROM webhook_subscriptions WHERE id = $1", [subscribed.int64(row, "id")!])
            note("-", "webhook", subscribed.string(row, "url")!)
        }
        let heartbeats = Set(document.heartbeats.map(\.name))
        for heartbeat in try HeartbeatStore.list(connection) where !heartbeats.contains(heartbeat.name) {
            try connection.query("DELETE FROM heartbeats WHERE id = $1", [heartbeat.id])
            note("-", "heartbeat", heartbeat.name)
        }
        let plans = Set(document.plans.map(\.name))
        for plan in try PlanStore.all(connection) where !plans.contains(plan.name) {
            try PlanStore.delete(connection, id: Int64(plan.id))
            note("-", "response plan", plan.name)
        }
        let services = Set(document.services.map(\.name))
        for service in try ServiceStore.load(connection) where !services.contains(service.name) {
            try ServiceStore.delete(connection, id: Int64(service.id), now: now)
            note("-", "service", service.name)
        }
        let policies = Set(document.policies.map(\.name))
        for (name, id) in policyIDs.sorted(by: { $0.value < $1.value }) where !policies.contains(name) {
            let used = try connection.query("SELECT name FROM services WHERE escalation_policy_id = $1 AND deleted_at_ms IS NULL", [id])
            guard used.isEmpty else {
                throw RPCError(.failedPrecondition, "escalation policy \"\(name)\" is not in the document but service \"\(used.string(0, "name")!)\" uses it")
            }
            try connection.query("DELETE FROM escalation_policies WHERE id = $1", [id])
            note("-", "escalation_policy", name)
        }
        let schedules = Set(document.schedules.map(\.name))
        for (name, id) in scheduleIDs.sorted(by: { $0.value < $1.value }) where !schedules.contains(name) {
            try connection.query("DELETE FROM schedules WHERE id = $1", [id])
            note("-", "schedule", name)
        }
        let emails = Set(document.users.map { $0.email.lowercased() })
        let users = try connection.query("SELECT id, email FROM users WHERE NOT system ORDER BY id")
        for row in 0..<users.count where !emails.contains(users.string(row, "email")!.lowercased()) {
            let id = users.int64(row, "id")!
            let open = try connection.query(
                """
                SELECT i.number FROM incidents i JOIN incident_assignments a ON a.incident_id = i.id
                WHERE a.user_id = $1 AND i.status <> 'resolved' LIMIT 1
                """, [id])
            if !open.isEmpty {
                throw RPCError(.failedPrecondition, "user \(users.string(row, "email")!) is not in the document but is assigned to open incident #\(open.string(0, "number")!)")
            }
            do {
                try connection.savepoint {
                    try connection.query("DELETE FROM api_tokens WHERE user_id = $1", [id])
                    try connection.query("DELETE FROM notification_rules WHERE user_id = $1", [id])
                    _ = try connection.query("DELETE FROM users WHERE id = $1", [id])
                }
            } catch {
                throw RPCError(.failedPrecondition, "user \(users.string(row, "email")!) is not in the document but cannot be deleted: \(error)")
            }
            note("-", "user", users.string(row, "email")!)
        }
    }

    // MARK: Surge detection

    /// The fields the document gives replace the current ones (one `~ surge` line naming them);
    /// the document is checked as a whole, as `UpdateSurgeSettings` checks it.
    mutating func applySurge() throws {
        guard let wanted = document.surge else { return }
        let row = try SurgeStore.row(connection)
        let current = SurgeStore.settings(row)
        var next = current
        if let value = wanted.enabled { next.enabled = value }
        if let value = wanted.windowSeconds { next.windowMs = Millis(value) * 1000 }
        if let value = wanted.minIncidents { next.minIncidents = Int(value) }
        if let value = wanted.rateFactor { next.rateFactor = Double(value) }
        if let value = wanted.minServices { next.minServices = Int(value) }
        if let value = wanted.quietPeriodSeconds { next.quietPeriodMs = Millis(value) * 1000 }
        if let problem = next.violations.first {
            throw invalid("\(wanted.path).\(problem.field)", problem.problem)
        }
        let currentPlan = row.string(0, "plan")!
        let plan = wanted.responsePlan ?? currentPlan
        if !plan.isEmpty, try PlanStore.id(connection, named: plan) == nil {
            throw invalid("\(wanted.path).response_plan", "response plan \"\(plan)\" does not exist")
        }
        var changed: [String] = []
        if next.enabled != current.enabled { changed.append("enabled") }
        if next.windowMs != current.windowMs { changed.append("window_seconds") }
        if next.minIncidents != current.minIncidents { changed.append("min_incidents") }
        if next.rateFactor != current.rateFactor { changed.append("rate_factor") }
        if next.minServices != current.minServices { changed.append("min_services") }
        if next.quietPeriodMs != current.quietPeriodMs { changed.append("quiet_period_seconds") }
        if plan != currentPlan { changed.append("response_plan") }
        guard !changed.isEmpty else { return }
        try SurgeStore.store(connection, next, plan: plan)
        note("~", "surge", "surge detection", changed.joined(separator: ", "))
    }
}
