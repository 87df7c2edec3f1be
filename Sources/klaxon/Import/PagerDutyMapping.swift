import AssignmentService
import Foundation
import KlaxonDomain

/// PagerDuty's configuration as Klaxon's YAML document (the one `klaxon apply` takes), and
/// everything that does not map, said instead of dropped or rounded.
struct PagerDutyMapping {
    /// Names Klaxon already knows these PagerDuty objects by (the import state file): a second
    /// import keeps them, so a renamed object in PagerDuty is not a delete and a create here.
    struct State: Codable {
        var schedules: [String: String] = [:]
        var escalationPolicies: [String: String] = [:]
        var services: [String: String] = [:]
    }

    let data: PagerDutyData
    var state: State
    private(set) var notMapped: [String] = []
    private(set) var notes: [String] = []
    private(set) var emails: [String: String] = [:]  // PagerDuty user id → email
    /// PagerDuty schedule id → the Klaxon schedules it became (a v3 schedule may become several).
    private(set) var scheduleNames: [String: [String]] = [:]
    private(set) var policyNames: [String: String] = [:]

    init(data: PagerDutyData, state: State) {
        self.data = data
        self.state = state
        notes = data.notices
    }

    static func time(_ text: Any?) -> Date? {
        guard let text = text as? String else { return nil }
        let formatter = ISO8601DateFormatter()
        for options: ISO8601DateFormatter.Options in [[.withInternetDateTime], [.withInternetDateTime, .withFractionalSeconds]] {
            formatter.formatOptions = options
            if let date = formatter.date(from: text) { return date }
        }
        return nil
    }

    static func instant(_ date: Date) -> String { PagerDutyData.instant(date) }

    /// A name unique among `used` (PagerDuty allows duplicates where Klaxon does not).
    static func unique(_ name: String, _ used: inout Set<String>) -> String {
        var candidate = String(name.prefix(200))
        var index = 2
        while used.contains(candidate) {
            candidate = "\(name.prefix(200)) (\(index))"
            index += 1
        }
        used.insert(candidate)
        return candidate
    }

    mutating func document() -> [String: Any] {
        var document: [String: Any] = [:]
        document["users"] = users()
        document["schedules"] = schedules()
        document["escalation_policies"] = policies()
        document["services"] = services()
        return document
    }

    // MARK: Users, contact methods, notification rules

    mutating func users() -> [[String: Any]] {
        var out: [[String: Any]] = []
        for user in data.users {
            guard let id = user["id"] as? String, let email = user["email"] as? String else { continue }
            let name = user["name"] as? String ?? email
            emails[id] = email
            var entry: [String: Any] = ["name": name, "email": email, "time_zone": user["time_zone"] as? String ?? "UTC"]
            if let role = user["role"] as? String { entry["role"] = ["admin", "owner"].contains(role) ? "admin" : ["read_only_user", "read_only_limited_user", "observer"].contains(role) ? "observer" : "responder" }
            var methods: [[String: Any]] = []
            var methodNames: [String: String] = [:]
            var used = Set<String>()
            for method in user["contact_methods"] as? [[String: Any]] ?? [] {
                guard let methodID = method["id"] as? String else { continue }
                let type = method["type"] as? String ?? ""
                let label = method["label"] as? String ?? type
                let address = method["address"] as? String ?? ""
                var klaxon: (type: String, address: String)?
                switch type {
                case "email_contact_method": klaxon = ("email", address)
                case "phone_contact_method", "sms_contact_method":
                    let code = (method["country_code"] as? NSNumber)?.stringValue ?? "1"
                    klaxon = (type == "sms_contact_method" ? "sms" : "phone", "+\(code)\(address.filter(\.isNumber))")
                default:
                    notMapped.append("user \(email): contact method \"\(label)\" (\(type)): Klaxon has no such channel (push goes through ntfy: add a `push` method)")
                }
                guard let klaxon else { continue }
                let methodName = Self.unique(label.isEmpty ? klaxon.type : label, &used)
                methodNames[methodID] = methodName
                // They were paged through PagerDuty: kept verified (apply with an admin token).
                methods.append(["name": methodName, "type": klaxon.type, "address": klaxon.address, "verified": true])
            }
            var rules: [[String: Any]] = []
            for rule in user["notification_rules"] as? [[String: Any]] ?? [] {
                let method = rule["contact_method"] as? [String: Any] ?? [:]
                let delay = (rule["start_delay_in_minutes"] as? NSNumber)?.intValue ?? 0
                guard let methodID = method["id"] as? String, let methodName = methodNames[methodID] else {
                    notMapped.append("user \(email): notification rule after \(delay) min: its contact method is not mapped")
                    continue
                }
                rules.append([
                    "contact_method": methodName, "start_delay_seconds": delay * 60,
                    "urgency": (rule["urgency"] as? String) == "low" ? "low" : "high",
                ])
            }
            if rules.count > UserRules.maxRulesPerUser {
                notMapped.append("user \(email): \(rules.count - UserRules.maxRulesPerUser) notification rules past Klaxon's \(UserRules.maxRulesPerUser)")
                rules = Array(rules.prefix(UserRules.maxRulesPerUser))
            }
            if !methods.isEmpty { entry["contact_methods"] = methods }
            if !rules.isEmpty { entry["notification_rules"] = rules }
            out.append(entry)
        }
        return out
    }

    // MARK: Schedules

    static let weekdays = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]

    mutating func schedules() -> [[String: Any]] {
        var out: [[String: Any]] = []
        var used = Set<String>()
        for schedule in data.schedules {
            guard let id = schedule["id"] as? String else { continue }
            let pdName = schedule["name"] as? String ?? id
            let name = Self.unique(state.schedules[id] ?? pdName, &used)
            if let kept = state.schedules[id], kept != pdName { notes.append("schedule \(pdName) was imported as \(kept): the name is kept") }
            guard let pdLayers = schedule["schedule_layers"] as? [[String: Any]] else {
                // A shift-based schedule is read from the v3 API (below), when PagerDuty answered it.
                if !data.schedulesV3.contains(where: { $0["id"] as? String == id }) {
                    notMapped.append("schedule \(pdName): no schedule_layers (a shift-based v3 schedule?): not mapped")
                }
                continue
            }
            var layers: [[String: Any]] = []
            // PagerDuty lists layers from the highest priority down; Klaxon's last layer wins.
            for layer in pdLayers.reversed() {
                let layerName = layer["name"] as? String ?? "layer"
                if let end = Self.time(layer["end"]), end <= data.since {
                    notes.append("schedule \(pdName): \(layerName) ended \(Self.instant(end)): not imported")
                    continue
                }
                var users: [String] = []
                var missing: [String] = []
                for member in layer["users"] as? [[String: Any]] ?? [] {
                    let user = member["user"] as? [String: Any] ?? member
                    let userID = user["id"] as? String ?? "?"
                    if let email = emails[userID] { users.append(email) } else { missing.append(userID) }
                }
                guard missing.isEmpty, !users.isEmpty else {
                    notMapped.append(
                        "schedule \(pdName): \(layerName): names \(missing.isEmpty ? "no user" : "user(s) \(missing.joined(separator: ", ")) not among PagerDuty's users (deactivated?)"): the layer is not imported")
                    continue
                }
                guard let virtualStart = Self.time(layer["rotation_virtual_start"]),
                      let turn = (layer["rotation_turn_length_seconds"] as? NSNumber)?.intValue, turn > 0
                else {
                    notMapped.append("schedule \(pdName): \(layerName): no rotation_virtual_start or turn length: the layer is not imported")
                    continue
                }
                var restrictions: [[String: Any]] = []
                var unexpressed = false
                for restriction in layer["restrictions"] as? [[String: Any]] ?? [] {
                    let start = String((restriction["start_time_of_day"] as? String ?? "00:00:00").prefix(8))
                    let duration = (restriction["duration_seconds"] as? NSNumber)?.intValue ?? 0
                    switch restriction["type"] as? String {
                    case "daily_restriction" where (1...86_400).contains(duration):
                        restrictions.append(["kind": "daily", "start": start, "duration_seconds": duration])
                    case "weekly_restriction" where (1...604_800).contains(duration):
                        let day = (restriction["start_day_of_week"] as? NSNumber)?.intValue ?? 1
                        guard (1...7).contains(day) else { unexpressed = true; continue }
                        restrictions.append(["kind": "weekly", "weekday": Self.weekdays[day - 1], "start": start, "duration_seconds": duration])
                    default:
                        unexpressed = true
                    }
                }
                if unexpressed {
                    notMapped.append("schedule \(pdName): \(layerName): a restriction Klaxon cannot express: the layer is not imported")
                    continue
                }
                var entry: [String: Any] = [
                    "users": users, "rotation_virtual_start": Self.instant(virtualStart), "rotation_turn_length_seconds": turn,
                ]
                if !restrictions.isEmpty { entry["restrictions"] = restrictions }
                if let start = Self.time(layer["start"]) { entry["start"] = Self.instant(start) }
                if let end = Self.time(layer["end"]) { entry["end"] = Self.instant(end) }
                layers.append(entry)
            }
            var overrides: [[String: Any]] = []
            for override in data.overrides[id] ?? [] {
                let user = override["user"] as? [String: Any] ?? [:]
                guard let start = Self.time(override["start"]), let end = Self.time(override["end"]) else { continue }
                guard let email = emails[user["id"] as? String ?? ""] else {
                    notMapped.append("schedule \(pdName): override \(Self.instant(start))–\(Self.instant(end)) for a user not among PagerDuty's users")
                    continue
                }
                overrides.append(["user": email, "start": Self.instant(start), "end": Self.instant(end)])
            }
            guard !layers.isEmpty else {
                notMapped.append("schedule \(pdName): no layer could be imported: the schedule is not imported")
                continue
            }
            state.schedules[id] = name
            scheduleNames[id] = [name]
            var entry: [String: Any] = ["name": name, "time_zone": schedule["time_zone"] as? String ?? "UTC", "layers": layers]
            if !overrides.isEmpty { entry["overrides"] = overrides }
            out.append(entry)
        }
        out += schedulesV3(&used)
        return out
    }

    // MARK: Shift-based (v3) schedules

    /// Each v3 rotation's events as Klaxon layers: a rotating assignment turns every
    /// `shifts_per_member` occurrences (a fixed length when that is whole days of a daily rule, or
    /// whole weeks of a weekly one), the occurrences themselves the restrictions; every member of
    /// an every-member assignment is on call at once, so each gets a schedule of its own (an
    /// escalation rule naming the schedule targets them all). What does not fit is listed.
    mutating func schedulesV3(_ used: inout Set<String>) -> [[String: Any]] {
        var out: [[String: Any]] = []
        for schedule in data.schedulesV3 {
            guard let id = schedule["id"] as? String else { continue }
            let pdName = schedule["name"] as? String ?? id
            let zoneName = schedule["time_zone"] as? String ?? "UTC"
            guard let zone = TimeZone(identifier: zoneName) else {
                notMapped.append("schedule \(pdName): time zone \(zoneName) unknown: not imported")
                continue
            }
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = zone
            // (rotation, member slot) → layers
            var slots: [(key: String, label: String, layers: [[String: Any]])] = []
            func add(_ key: String, _ label: String, _ layer: [String: Any]) {
                if let index = slots.firstIndex(where: { $0.key == key }) { slots[index].layers.append(layer) } else { slots.append((key, label, [layer])) }
            }
            for (rotationIndex, rotation) in (schedule["rotations"] as? [[String: Any]] ?? []).enumerated() {
                for event in rotation["events"] as? [[String: Any]] ?? [] {
                    let place = "schedule \(pdName), rotation \(rotationIndex + 1), event \"\(event["name"] as? String ?? "?")\""
                    guard let first = Self.time(event["start_time"]), let firstEnd = Self.time(event["end_time"]), firstEnd > first else {
                        notMapped.append("\(place): no start_time before end_time: not imported")
                        continue
                    }
                    let duration = Int(firstEnd.timeIntervalSince(first))
                    let rules = (event["recurrence"] as? [String] ?? event["recurrences"] as? [String] ?? [])
                    guard rules.count == 1, let rrule = rules.first, rrule.hasPrefix("RRULE:") else {
                        notMapped.append("\(place): recurrence \(rules) (EXDATE/RDATE or no RRULE): Klaxon's layers repeat without exceptions: not imported")
                        continue
                    }
                    var parts: [String: String] = [:]
                    for part in rrule.dropFirst(6).split(separator: ";") {
                        let pair = part.split(separator: "=", maxSplits: 1).map(String.init)
                        if pair.count == 2 { parts[pair[0].uppercased()] = pair[1].uppercased() }
                    }
                    let codes = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]
                    let startWeekday = (calendar.component(.weekday, from: first) + 5) % 7  // Monday 0
                    let startOfDay = calendar.component(.hour, from: first) * 3600 + calendar.component(.minute, from: first) * 60
                        + calendar.component(.second, from: first)
                    let startText = OpsgenieMapping.text(startOfDay)
                    let known = Set(["FREQ", "BYDAY", "INTERVAL", "WKST"])
                    guard Set(parts.keys).isSubset(of: known), (parts["INTERVAL"] ?? "1") == "1" else {
                        notMapped.append("\(place): \(rrule): Klaxon takes FREQ=DAILY or WEEKLY (BYDAY), every interval: not imported")
                        continue
                    }
                    var occurrencesPerWeek: Int
                    var restrictions: [[String: Any]]
                    var weekly: Bool
                    switch parts["FREQ"] {
                    case "DAILY" where parts["BYDAY"] == nil && duration <= 86_400:
                        weekly = false
                        occurrencesPerWeek = 7
                        restrictions = duration == 86_400 ? [] : [["kind": "daily", "start": startText, "duration_seconds": duration]]
                    case "WEEKLY" where duration <= 604_800:
                        weekly = true
                        let days = (parts["BYDAY"].map { $0.split(separator: ",").map(String.init) } ?? [codes[startWeekday]])
                        let indexes = days.compactMap { codes.firstIndex(of: $0) }
                        guard indexes.count == days.count, !indexes.isEmpty, indexes.contains(startWeekday) else {
                            notMapped.append("\(place): \(rrule): BYDAY must name plain weekdays, the first shift's among them: not imported")
                            continue
                        }
                        occurrencesPerWeek = indexes.count
                        restrictions = indexes.sorted().map { ["kind": "weekly", "weekday": Self.weekdays[$0], "start": startText, "duration_seconds": duration] }
                        if indexes.count == 1 && duration == 604_800 { restrictions = [] }
                    default:
                        notMapped.append("\(place): \(rrule) with \(duration) s shifts: Klaxon takes daily or weekly rules whose shifts do not overlap: not imported")
                        continue
                    }
                    let strategy = event["assignment_strategy"] as? [String: Any] ?? [:]
                    var members: [String] = []
                    var problems: [String] = []
                    for member in strategy["members"] as? [[String: Any]] ?? strategy["member"] as? [[String: Any]] ?? [] {
                        if member["type"] as? String == "user_member", let email = emails[member["user_id"] as? String ?? ""] {
                            members.append(email)
                        } else if member["type"] as? String == "user_member" {
                            problems.append("user \(member["user_id"] as? String ?? "?") not among PagerDuty's users")
                        } else {
                            problems.append("a \(member["type"] as? String ?? "?") (Klaxon's rotations have a person in every turn)")
                        }
                    }
                    guard problems.isEmpty, !members.isEmpty else {
                        notMapped.append("\(place): \(problems.isEmpty ? "no member" : problems.joined(separator: ", ")): not imported")
                        continue
                    }
                    var layer: [String: Any] = ["rotation_virtual_start": Self.instant(first), "start": Self.instant(Self.time(event["effective_since"]) ?? first)]
                    if let until = Self.time(event["effective_until"]) { layer["end"] = Self.instant(until) }
                    if !restrictions.isEmpty { layer["restrictions"] = restrictions }
                    switch strategy["type"] as? String {
                    case "rotating_member_assignment_strategy", "user_assignment_strategy":
                        let shifts = (strategy["shifts_per_member"] as? NSNumber)?.intValue ?? 1
                        // Whole days (daily) or whole weeks (weekly) per turn: a fixed turn length.
                        guard members.count == 1 || shifts % (weekly ? occurrencesPerWeek : 1) == 0 else {
                            notMapped.append(
                                "\(place): each member takes \(shifts) of \(occurrencesPerWeek) weekly shifts: the handoff moves through the week, Klaxon's turns have a fixed length: not imported")
                            continue
                        }
                        layer["users"] = members
                        layer["rotation_turn_length_seconds"] = weekly ? shifts / occurrencesPerWeek * 604_800 : shifts * 86_400
                        add("\(rotationIndex)/0", "rotation \(rotationIndex + 1)", layer)
                    case "every_member_assignment_strategy":
                        for (index, member) in members.enumerated() {
                            var own = layer
                            own["users"] = [member]
                            own["rotation_turn_length_seconds"] = 604_800
                            add("\(rotationIndex)/\(index)", index == 0 ? "rotation \(rotationIndex + 1)" : "rotation \(rotationIndex + 1), member \(index + 1)", own)
                        }
                    case let type:
                        notMapped.append("\(place): assignment strategy \(type ?? "none"): not imported")
                    }
                }
            }
            guard !slots.isEmpty else {
                notMapped.append("schedule \(pdName): no event could be imported: the schedule is not imported")
                continue
            }
            var names: [String] = []
            for slot in slots {
                let stateKey = "\(id)/\(slot.key)"
                let fresh = slots.count == 1 ? pdName : "\(pdName) / \(slot.label)"
                let name = Self.unique(state.schedules[stateKey] ?? fresh, &used)
                if let kept = state.schedules[stateKey], kept != fresh { notes.append("schedule \(fresh) was imported as \(kept): the name is kept") }
                state.schedules[stateKey] = name
                names.append(name)
                out.append(["name": name, "time_zone": zoneName, "layers": slot.layers])
            }
            scheduleNames[id] = names
            notes.append("schedule \(pdName) (shift-based): imported as \(names.joined(separator: ", ")); --plan does not compare it (PagerDuty renders no final schedule for it here)")
        }
        return out
    }

    // MARK: Escalation policies and services

    mutating func policies() -> [[String: Any]] {
        var out: [[String: Any]] = []
        var used = Set<String>()
        for policy in data.escalationPolicies {
            guard let id = policy["id"] as? String else { continue }
            let pdName = policy["name"] as? String ?? id
            let name = Self.unique(state.escalationPolicies[id] ?? pdName, &used)
            state.escalationPolicies[id] = name
            var levels: [[String: Any]] = []
            for (index, rule) in (policy["escalation_rules"] as? [[String: Any]] ?? []).enumerated() {
                var targets: [[String: Any]] = []
                for target in rule["targets"] as? [[String: Any]] ?? [] {
                    let targetID = target["id"] as? String ?? ""
                    switch target["type"] as? String {
                    case "user_reference", "user":
                        if let email = emails[targetID] { targets.append(["user": email]) } else {
                            notMapped.append("escalation policy \(pdName): rule \(index + 1) targets user \(targetID), not among PagerDuty's users")
                        }
                    case "schedule_reference", "schedule":
                        if let schedules = scheduleNames[targetID] { targets += schedules.map { ["schedule": $0] } } else {
                            notMapped.append("escalation policy \(pdName): rule \(index + 1) targets schedule \(targetID), which is not imported")
                        }
                    default:
                        notMapped.append("escalation policy \(pdName): rule \(index + 1) targets a \(target["type"] as? String ?? "?"): Klaxon targets users and schedules")
                    }
                }
                if targets.count > 10 {
                    notMapped.append("escalation policy \(pdName): rule \(index + 1) has \(targets.count) targets: Klaxon takes 10, the rest are left out")
                    targets = Array(targets.prefix(10))
                }
                guard !targets.isEmpty else {
                    notMapped.append("escalation policy \(pdName): rule \(index + 1) has no target Klaxon can page: the level is left out")
                    continue
                }
                let minutes = (rule["escalation_delay_in_minutes"] as? NSNumber)?.intValue ?? 30
                levels.append(["escalation_delay_seconds": minutes * 60, "targets": targets])
            }
            guard !levels.isEmpty else {
                notMapped.append("escalation policy \(pdName): no level could be imported: the policy is not imported")
                continue
            }
            policyNames[id] = name
            var loops = (policy["num_loops"] as? NSNumber)?.intValue ?? 0
            if loops > 9 {
                notMapped.append("escalation policy \(pdName): num_loops \(loops): Klaxon repeats at most 9 times")
                loops = 9
            }
            out.append(["name": name, "num_loops": loops, "levels": levels])
        }
        return out
    }

    mutating func services() -> [[String: Any]] {
        var out: [[String: Any]] = []
        var used = Set<String>()
        for service in data.services {
            guard let id = service["id"] as? String else { continue }
            let pdName = service["name"] as? String ?? id
            let policyID = (service["escalation_policy"] as? [String: Any])?["id"] as? String ?? ""
            guard let policy = policyNames[policyID] else {
                notMapped.append("service \(pdName): its escalation policy \(policyID) is not imported: the service is not imported")
                continue
            }
            let name = Self.unique(state.services[id] ?? pdName, &used)
            state.services[id] = name
            var entry: [String: Any] = [
                "name": name, "escalation_policy": policy,
                "ack_timeout_seconds": (service["acknowledgement_timeout"] as? NSNumber)?.intValue ?? 0,
                "auto_resolve_timeout_seconds": (service["auto_resolve_timeout"] as? NSNumber)?.intValue ?? 0,
            ]
            let rule = service["incident_urgency_rule"] as? [String: Any] ?? [:]
            switch (rule["type"] as? String, rule["urgency"] as? String) {
            case ("constant", "low"?): entry["urgency_rule"] = "low"
            case ("constant", "severity_based"?): entry["urgency_rule"] = "severity"
            case ("use_support_hours", _):
                entry["urgency_rule"] = "high"
                notMapped.append("service \(pdName): urgency by support hours: Klaxon has no support hours; imported as high urgency at all hours")
            default: entry["urgency_rule"] = "high"
            }
            var keys: [[String: Any]] = []
            var keyNames = Set<String>()
            for integration in service["integrations"] as? [[String: Any]] ?? [] {
                let type = integration["type"] as? String ?? ""
                let integrationName = integration["name"] as? String ?? type
                guard type == "events_api_v2_inbound_integration", let key = integration["integration_key"] as? String else {
                    notMapped.append("service \(pdName): integration \"\(integrationName)\" (\(type)): only Events API v2 keys become routing keys")
                    continue
                }
                guard ServiceStore.keyProblem(key) == nil else {
                    notMapped.append("service \(pdName): integration \"\(integrationName)\": its key is not 32 letters and digits")
                    continue
                }
                let keyName = Self.unique(String(integrationName.prefix(60)).isEmpty ? "events" : String(integrationName.prefix(60)), &keyNames)
                keys.append(["name": keyName, "key": key])
            }
            if !keys.isEmpty { entry["routing_keys"] = keys }
            out.append(entry)
        }
        return out
    }
}
