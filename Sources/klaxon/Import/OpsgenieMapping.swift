import AssignmentService
import Foundation
import KlaxonDomain

/// Opsgenie's configuration as Klaxon's YAML document, and everything that does not map.
///
/// - A schedule's rotations are all on call at once in Opsgenie; a Klaxon schedule has one person
///   at a time, so each rotation becomes a schedule (`Schedule` alone, or `Schedule / Rotation`
///   when there are several) and an escalation rule naming the schedule targets all of them.
/// - Escalation rules' delays count from the alert's creation; Klaxon's from the level before.
/// - Alerts reach a team through its integrations and its routing rules: each team becomes a
///   service (named after its one Opsgenie service if it has exactly one), with the default
///   routing rule's escalation and the integrations' API keys as routing keys (UUIDs keep their
///   32 hex digits: `GenieKey`).
struct OpsgenieMapping {
    struct State: Codable {
        var schedules: [String: String] = [:]  // rotation id → Klaxon schedule
        var escalations: [String: String] = [:]
        var services: [String: String] = [:]  // team id → Klaxon service
    }

    let data: OpsgenieData
    var state: State
    private(set) var notMapped: [String] = []
    private(set) var notes: [String] = []
    private(set) var emails: [String: String] = [:]  // Opsgenie user id → email (username)
    private(set) var rotationSchedules: [String: [String]] = [:]  // Opsgenie schedule id → Klaxon schedules
    private(set) var policyNames: [String: String] = [:]
    /// For the diff: a Klaxon schedule → (Opsgenie schedule id, rotation id).
    private(set) var sources: [String: (schedule: String, rotation: String)] = [:]

    init(data: OpsgenieData, state: State) {
        self.data = data
        self.state = state
    }

    mutating func document() -> [String: Any] {
        var document: [String: Any] = [:]
        document["users"] = users()
        document["schedules"] = schedules()
        var policies = escalations()
        document["services"] = services(&policies)
        document["escalation_policies"] = policies
        return document
    }

    static func seconds(_ amount: Any?) -> Int? {
        guard let amount = amount as? [String: Any], let value = (amount["timeAmount"] as? NSNumber)?.intValue else { return nil }
        switch amount["timeUnit"] as? String ?? "minutes" {
        case "minutes": return value * 60
        case "hours": return value * 3600
        case "days": return value * 86_400
        default: return nil
        }
    }

    static func name(_ reference: Any?) -> String { (reference as? [String: Any])?["name"] as? String ?? "?" }

    // MARK: Users, contacts, notification rules

    mutating func users() -> [[String: Any]] {
        var out: [[String: Any]] = []
        for user in data.users {
            guard let id = user["id"] as? String, let email = user["username"] as? String else { continue }
            emails[id] = email
            var entry: [String: Any] = [
                "name": user["fullName"] as? String ?? email, "email": email, "time_zone": user["timeZone"] as? String ?? "UTC",
            ]
            switch ((user["role"] as? [String: Any])?["name"] as? String ?? "").lowercased() {
            case "owner", "admin": entry["role"] = "admin"
            case "observer", "stakeholder": entry["role"] = "observer"
            default: entry["role"] = "responder"
            }
            var methods: [[String: Any]] = []
            var byAddress: [String: String] = [:]  // "method to" → contact method name
            var used = Set<String>()
            for contact in user["_contacts"] as? [[String: Any]] ?? [] {
                let method = contact["method"] as? String ?? ""
                let to = contact["to"] as? String ?? ""
                let enabled = (contact["status"] as? [String: Any])?["enabled"] as? Bool ?? true
                var klaxon: (type: String, address: String)?
                switch method {
                case "email": klaxon = ("email", to)
                case "sms", "voice":
                    // Opsgenie writes phone numbers as "<country code>-<number>".
                    klaxon = (method == "sms" ? "sms" : "phone", "+" + to.filter(\.isNumber))
                default:
                    notMapped.append("user \(email): contact \(method) \(to): Klaxon has no such channel (push goes through ntfy: add a `push` method)")
                }
                guard let klaxon else { continue }
                if !enabled { notes.append("user \(email): contact \(method) \(to) is disabled in Opsgenie: imported, and used only by the rules that name it") }
                let name = OpsgenieMapping.unique(klaxon.type, &used)
                byAddress["\(method) \(to)"] = name
                methods.append(["name": name, "type": klaxon.type, "address": klaxon.address, "verified": true])
            }
            var rules: [[String: Any]] = []
            for rule in (user["_notification_rules"] as? [[String: Any]] ?? []).sorted(by: { ($0["order"] as? NSNumber)?.intValue ?? 0 < ($1["order"] as? NSNumber)?.intValue ?? 0 }) {
                let ruleName = rule["name"] as? String ?? "?"
                let action = rule["actionType"] as? String ?? "?"
                guard rule["enabled"] as? Bool ?? true else { notes.append("user \(email): notification rule \"\(ruleName)\" is disabled: not imported"); continue }
                guard action == "create-alert" || action == "assigned-alert" else {
                    notMapped.append("user \(email): notification rule \"\(ruleName)\" (\(action)): Klaxon's rules notify of a page (new alerts) only")
                    continue
                }
                let criteria = rule["criteria"] as? [String: Any] ?? [:]
                if let type = criteria["type"] as? String, type != "match-all" {
                    notMapped.append("user \(email): notification rule \"\(ruleName)\": conditions (\(type)): Klaxon's rules apply to every page of an urgency: not imported")
                    continue
                }
                if rule["timeRestriction"] is [String: Any] {
                    notMapped.append("user \(email): notification rule \"\(ruleName)\": a time restriction: Klaxon's rules apply at all hours: not imported")
                    continue
                }
                if let repeatRule = rule["repeat"] as? [String: Any], repeatRule["enabled"] as? Bool == true {
                    notMapped.append("user \(email): notification rule \"\(ruleName)\": repeat every \(repeatRule["loopAfter"] ?? "?") min: Klaxon repeats through the escalation policy's loops")
                }
                for step in rule["steps"] as? [[String: Any]] ?? [] {
                    let contact = step["contact"] as? [String: Any] ?? [:]
                    let key = "\(contact["method"] as? String ?? "") \(contact["to"] as? String ?? "")"
                    guard step["enabled"] as? Bool ?? true else { continue }
                    guard let delay = Self.seconds(step["sendAfter"]) ?? (step["sendAfter"] == nil ? 0 : nil) else {
                        notMapped.append("user \(email): notification rule \"\(ruleName)\": a step's delay is not in minutes, hours or days")
                        continue
                    }
                    guard let method = byAddress[key] else {
                        notMapped.append("user \(email): notification rule \"\(ruleName)\": step to \(key) after \(delay / 60) min: its contact is not mapped")
                        continue
                    }
                    // Opsgenie has no urgency: the step applies to every page, high and low.
                    for urgency in ["high", "low"] { rules.append(["contact_method": method, "start_delay_seconds": delay, "urgency": urgency]) }
                }
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

    static func unique(_ name: String, _ used: inout Set<String>) -> String { PagerDutyMapping.unique(name, &used) }

    // MARK: Schedules

    static func clock(_ hour: Any?, _ minute: Any?) -> Int {
        ((hour as? NSNumber)?.intValue ?? 0) * 3600 + ((minute as? NSNumber)?.intValue ?? 0) * 60
    }

    static func text(_ secondOfDay: Int) -> String {
        String(format: "%02d:%02d:%02d", secondOfDay / 3600, secondOfDay / 60 % 60, secondOfDay % 60)
    }

    /// A rotation's time restriction as Klaxon's restrictions, or nil if it cannot be expressed.
    static func restrictions(_ restriction: [String: Any]) -> [[String: Any]]? {
        switch restriction["type"] as? String {
        case "time-of-day":
            let window = restriction["restriction"] as? [String: Any] ?? [:]
            let start = clock(window["startHour"], window["startMin"])
            let end = clock(window["endHour"], window["endMin"])
            var duration = (end - start + 86_400) % 86_400
            if duration == 0 { duration = 86_400 }  // the same start and end: all day
            return [["kind": "daily", "start": text(start), "duration_seconds": duration]]
        case "weekday-and-time-of-day":
            var out: [[String: Any]] = []
            for window in restriction["restrictions"] as? [[String: Any]] ?? [] {
                guard let startDay = PagerDutyMapping.weekdays.firstIndex(of: (window["startDay"] as? String ?? "").lowercased()),
                      let endDay = PagerDutyMapping.weekdays.firstIndex(of: (window["endDay"] as? String ?? "").lowercased())
                else { return nil }
                let start = startDay * 86_400 + clock(window["startHour"], window["startMin"])
                let end = endDay * 86_400 + clock(window["endHour"], window["endMin"])
                var duration = (end - start + 604_800) % 604_800  // Sunday → Monday wraps
                if duration == 0 { duration = 604_800 }
                out.append(["kind": "weekly", "weekday": PagerDutyMapping.weekdays[startDay], "start": text(start % 86_400), "duration_seconds": duration])
            }
            return out.isEmpty ? nil : out
        default:
            return nil
        }
    }

    mutating func schedules() -> [[String: Any]] {
        var out: [[String: Any]] = []
        var used = Set<String>()
        for schedule in data.schedules {
            guard let id = schedule["id"] as? String else { continue }
            let ogName = schedule["name"] as? String ?? id
            if schedule["enabled"] as? Bool == false { notes.append("schedule \(ogName) is disabled in Opsgenie: imported all the same") }
            let rotations = schedule["rotations"] as? [[String: Any]] ?? []
            if rotations.isEmpty { notMapped.append("schedule \(ogName): no rotation: not imported") }
            let zone = schedule["timezone"] as? String ?? "UTC"
            for rotation in rotations {
                guard let rotationID = rotation["id"] as? String else { continue }
                let rotationName = rotation["name"] as? String ?? rotationID
                let label = rotations.count == 1 ? "schedule \(ogName)" : "schedule \(ogName), rotation \(rotationName)"
                let fresh = rotations.count == 1 ? ogName : "\(ogName) / \(rotationName)"
                if let end = PagerDutyMapping.time(rotation["endDate"]), end <= data.since {
                    notes.append("\(label): ended \(PagerDutyMapping.instant(end)): not imported")
                    continue
                }
                var users: [String] = []
                var problems: [String] = []
                for participant in rotation["participants"] as? [[String: Any]] ?? [] {
                    switch participant["type"] as? String {
                    case "user":
                        if let email = emails[participant["id"] as? String ?? ""] ?? (participant["username"] as? String).flatMap({ name in emails.values.contains(name) ? name : nil }) {
                            users.append(email)
                        } else {
                            problems.append("user \(participant["username"] as? String ?? participant["id"] as? String ?? "?") not among Opsgenie's users")
                        }
                    case "none": problems.append("a \"no one\" turn (Klaxon's rotations have a person in every turn)")
                    case let type: problems.append("a \(type ?? "?") participant (Klaxon's rotations take users)")
                    }
                }
                guard problems.isEmpty, !users.isEmpty else {
                    notMapped.append("\(label): \(problems.isEmpty ? "no participant" : problems.joined(separator: ", ")): not imported")
                    continue
                }
                let length = (rotation["length"] as? NSNumber)?.intValue ?? 1
                let unit: Int? = ["hourly": 3600, "daily": 86_400, "weekly": 604_800][rotation["type"] as? String ?? ""]
                guard let unit, length > 0, let start = PagerDutyMapping.time(rotation["startDate"]) else {
                    notMapped.append("\(label): a \(rotation["type"] as? String ?? "?") rotation without a start date or length: not imported")
                    continue
                }
                var layer: [String: Any] = [
                    "users": users, "rotation_virtual_start": PagerDutyMapping.instant(start), "rotation_turn_length_seconds": unit * length,
                    "start": PagerDutyMapping.instant(start),
                ]
                if let end = PagerDutyMapping.time(rotation["endDate"]) { layer["end"] = PagerDutyMapping.instant(end) }
                if let restriction = rotation["timeRestriction"] as? [String: Any] {
                    guard let restrictions = Self.restrictions(restriction) else {
                        notMapped.append("\(label): a time restriction Klaxon cannot express (\(restriction["type"] as? String ?? "?")): not imported")
                        continue
                    }
                    layer["restrictions"] = restrictions
                }
                var overrides: [[String: Any]] = []
                for override in schedule["_overrides"] as? [[String: Any]] ?? [] {
                    let applies = (override["rotations"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
                    guard applies.isEmpty || applies.contains(rotationID) else { continue }
                    let user = override["user"] as? [String: Any] ?? [:]
                    guard let from = PagerDutyMapping.time(override["startDate"]), let to = PagerDutyMapping.time(override["endDate"]) else { continue }
                    guard user["type"] as? String ?? "user" == "user", let email = emails[user["id"] as? String ?? ""] else {
                        notMapped.append("\(label): override \(override["alias"] as? String ?? "") for \(user["username"] as? String ?? user["name"] as? String ?? "?"), not one of Opsgenie's users")
                        continue
                    }
                    overrides.append(["user": email, "start": PagerDutyMapping.instant(from), "end": PagerDutyMapping.instant(to)])
                }
                let name = Self.unique(state.schedules[rotationID] ?? fresh, &used)
                if let kept = state.schedules[rotationID], kept != fresh { notes.append("\(label) was imported as \(kept): the name is kept") }
                state.schedules[rotationID] = name
                rotationSchedules[id, default: []].append(name)
                sources[name] = (id, rotationID)
                var entry: [String: Any] = ["name": name, "time_zone": zone, "layers": [layer]]
                if !overrides.isEmpty { entry["overrides"] = overrides }
                out.append(entry)
            }
        }
        return out
    }

    /// Opsgenie's final timeline of one rotation, for the diff: (start, end, email).
    func rendered(_ klaxonSchedule: String) -> [(start: Millis, end: Millis, who: String)]? {
        guard let source = sources[klaxonSchedule],
              let schedule = data.schedules.first(where: { $0["id"] as? String == source.schedule }),
              let timeline = schedule["_timeline"] as? [String: Any]
        else { return nil }
        let rotations = (timeline["finalTimeline"] as? [String: Any])?["rotations"] as? [[String: Any]] ?? []
        let periods = rotations.first(where: { $0["id"] as? String == source.rotation })?["periods"] as? [[String: Any]] ?? []
        return periods.compactMap { period in
            guard let start = OnCallDiff.millis(period["startDate"]), let end = OnCallDiff.millis(period["endDate"]) else { return nil }
            let recipient = period["recipient"] as? [String: Any] ?? [:]
            let who = emails[recipient["id"] as? String ?? ""] ?? recipient["name"] as? String ?? "?"
            return (start, end, who)
        }
    }

    // MARK: Escalations

    /// The Klaxon schedules and users an escalation recipient stands for, or nil (said why).
    mutating func targets(_ recipient: [String: Any], where place: String) -> [[String: Any]]? {
        let id = recipient["id"] as? String ?? ""
        switch recipient["type"] as? String {
        case "user":
            if let email = emails[id] { return [["user": email]] }
            notMapped.append("\(place) notifies user \(recipient["username"] as? String ?? id), not among Opsgenie's users")
        case "schedule":
            if let names = rotationSchedules[id], !names.isEmpty { return names.map { ["schedule": $0] } }
            notMapped.append("\(place) notifies schedule \(recipient["name"] as? String ?? id), which is not imported")
        case let type:
            notMapped.append("\(place) notifies a \(type ?? "?") (\(recipient["name"] as? String ?? id)): Klaxon targets users and schedules")
        }
        return nil
    }

    mutating func escalations() -> [[String: Any]] {
        var out: [[String: Any]] = []
        var used = Set<String>()
        for escalation in data.escalations {
            guard let id = escalation["id"] as? String else { continue }
            let ogName = escalation["name"] as? String ?? id
            // Rules at the same delay page together: one level.
            var byDelay: [Int: [[String: Any]]] = [:]
            for (index, rule) in (escalation["rules"] as? [[String: Any]] ?? []).enumerated() {
                let place = "escalation \(ogName): rule \(index + 1)"
                if let condition = rule["condition"] as? String, condition != "if-not-acked" {
                    notMapped.append("\(place): condition \(condition): Klaxon escalates while nobody has acknowledged; imported as if-not-acked")
                }
                if let notify = rule["notifyType"] as? String, notify != "default" {
                    notMapped.append("\(place): notify type \(notify): Klaxon pages who is on call (default): not imported")
                    continue
                }
                guard let delay = Self.seconds(rule["delay"]) ?? (rule["delay"] == nil ? 0 : nil) else {
                    notMapped.append("\(place): a delay not in minutes, hours or days: not imported")
                    continue
                }
                guard let targets = targets(rule["recipient"] as? [String: Any] ?? [:], where: place) else { continue }
                byDelay[delay, default: []] += targets
            }
            let delays = byDelay.keys.sorted()
            guard !delays.isEmpty else {
                notMapped.append("escalation \(ogName): no rule could be imported: the policy is not imported")
                continue
            }
            if delays[0] > 0 {
                notMapped.append("escalation \(ogName): its first rule waits \(delays[0] / 60) min after the alert: Klaxon pages the first level at once")
            }
            let repeatRule = escalation["repeat"] as? [String: Any] ?? [:]
            var loops = (repeatRule["count"] as? NSNumber)?.intValue ?? 0
            let wait = (repeatRule["waitInterval"] as? NSNumber)?.intValue ?? 0
            if loops > 9 {
                notMapped.append("escalation \(ogName): repeats \(loops) times: Klaxon repeats at most 9 times")
                loops = 9
            }
            if repeatRule["closeAlertAfterAll"] as? Bool == true {
                notMapped.append("escalation \(ogName): closing the alert after the last repeat: Klaxon leaves it open")
            }
            var levels: [[String: Any]] = []
            for (index, delay) in delays.enumerated() {
                var targets = byDelay[delay] ?? []
                if targets.count > 10 {
                    notMapped.append("escalation \(ogName): \(targets.count) recipients after \(delay / 60) min: Klaxon takes 10, the rest are left out")
                    targets = Array(targets.prefix(10))
                }
                // Klaxon's delay is the wait before the next level; Opsgenie counts from the alert.
                let next = index + 1 < delays.count ? delays[index + 1] - delay : (loops > 0 && wait > 0 ? wait * 60 : 1800)
                levels.append(["escalation_delay_seconds": max(60, next), "targets": targets])
            }
            let name = Self.unique(state.escalations[id] ?? ogName, &used)
            state.escalations[id] = name
            policyNames[id] = name
            out.append(["name": name, "num_loops": loops, "levels": levels])
        }
        return out
    }

    // MARK: Teams → services

    mutating func services(_ policies: inout [[String: Any]]) -> [[String: Any]] {
        var out: [[String: Any]] = []
        var used = Set<String>()
        var policiesUsed = Set(policies.compactMap { $0["name"] as? String })
        for team in data.teams {
            guard let id = team["id"] as? String else { continue }
            let teamName = team["name"] as? String ?? id
            let teamServices = data.services.filter { $0["teamId"] as? String == id }
            let keys = data.integrations.filter { (($0["ownerTeam"] as? [String: Any])?["id"] as? String) == id }
            guard !keys.isEmpty || !teamServices.isEmpty else {
                notes.append("team \(teamName): no integration and no service: no Klaxon service")
                continue
            }
            let fresh = teamServices.count == 1 ? teamServices[0]["name"] as? String ?? teamName : teamName
            if teamServices.count > 1 {
                notes.append("team \(teamName): services \(teamServices.compactMap { $0["name"] as? String }.joined(separator: ", ")) share the team's integrations and routing: one Klaxon service, \(fresh)")
            }
            // The default routing rule says who is paged; the others are listed.
            var policy: String?
            for rule in (team["_routing_rules"] as? [[String: Any]] ?? []).sorted(by: { ($0["order"] as? NSNumber)?.intValue ?? 0 < ($1["order"] as? NSNumber)?.intValue ?? 0 }) {
                let notify = rule["notify"] as? [String: Any] ?? [:]
                guard rule["isDefault"] as? Bool == true else {
                    notMapped.append("team \(teamName): routing rule \"\(rule["name"] as? String ?? "?")\": Klaxon routes by event rules (`route`): not imported")
                    continue
                }
                switch notify["type"] as? String {
                case "escalation":
                    policy = policyNames[notify["id"] as? String ?? ""]
                    if policy == nil { notMapped.append("team \(teamName): default routing to escalation \(notify["name"] as? String ?? "?"), which is not imported") }
                case "schedule":
                    if let schedules = rotationSchedules[notify["id"] as? String ?? ""] {
                        // Opsgenie pages the schedule's on-call people: a one-level policy of its own.
                        let name = Self.unique("\(notify["name"] as? String ?? "schedule") (routing of \(teamName))", &policiesUsed)
                        policies.append(["name": name, "num_loops": 0, "levels": [["escalation_delay_seconds": 1800, "targets": schedules.map { ["schedule": $0] }]]])
                        policy = name
                        notes.append("team \(teamName): default routing to schedule \(notify["name"] as? String ?? "?"): escalation policy \(name)")
                    } else {
                        notMapped.append("team \(teamName): default routing to schedule \(notify["name"] as? String ?? "?"), which is not imported")
                    }
                default:
                    notMapped.append("team \(teamName): default routing notifies \(notify["type"] as? String ?? "nobody")")
                }
            }
            guard let policy else {
                notMapped.append("team \(teamName): no default routing rule Klaxon can follow: the service is not imported")
                continue
            }
            let name = Self.unique(state.services[id] ?? fresh, &used)
            if let kept = state.services[id], kept != fresh { notes.append("team \(teamName) was imported as \(kept): the name is kept") }
            state.services[id] = name
            // Opsgenie does not unacknowledge on a timer nor close alerts by age (per integration, not mapped).
            var entry: [String: Any] = [
                "name": name, "escalation_policy": policy, "ack_timeout_seconds": 0, "auto_resolve_timeout_seconds": 0, "urgency_rule": "high",
            ]
            var routingKeys: [[String: Any]] = []
            var keyNames = Set<String>()
            for integration in keys {
                let integrationName = integration["name"] as? String ?? "?"
                let type = integration["type"] as? String ?? "?"
                guard integration["enabled"] as? Bool ?? true else { notes.append("team \(teamName): integration \(integrationName) is disabled: not imported"); continue }
                guard !type.lowercased().contains("email") else {
                    notMapped.append("team \(teamName): integration \"\(integrationName)\" (\(type)): Klaxon takes alerts over HTTP, not email")
                    continue
                }
                guard let apiKey = integration["apiKey"] as? String else {
                    notMapped.append("team \(teamName): integration \"\(integrationName)\" (\(type)): Opsgenie does not show its key: make a routing key and change the monitor")
                    continue
                }
                let key = GenieKey.routingKey(apiKey)
                guard ServiceStore.keyProblem(key) == nil else {
                    notMapped.append("team \(teamName): integration \"\(integrationName)\": its key is neither a UUID nor 32 letters and digits")
                    continue
                }
                routingKeys.append(["name": Self.unique(String(integrationName.prefix(60)).isEmpty ? "opsgenie" : String(integrationName.prefix(60)), &keyNames), "key": key])
            }
            if !routingKeys.isEmpty { entry["routing_keys"] = routingKeys }
            out.append(entry)
        }
        for integration in data.integrations where (integration["ownerTeam"] as? [String: Any])?["id"] == nil {
            notMapped.append("integration \"\(integration["name"] as? String ?? "?")\": no owner team, so no service to route to")
        }
        return out
    }
}
