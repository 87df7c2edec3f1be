import Foundation

/// A service's event rule (PRODUCT.md, "Event rules": what PagerDuty's Event Orchestration and
/// Opsgenie's alert policies do): when every condition holds, its actions apply.
public struct EventRule: Sendable, Equatable {
    public struct Actions: Sendable, Equatable {
        /// Kept in the service's audit trail; no incident.
        public var suppress = false
        public var severity: String?
        public var urgency: String?
        /// P1–P5.
        public var priority: String?
        /// A template over the event's fields: `{{labels.alertname}}-{{source}}`.
        public var dedupKey: String?
        /// Another service's name: the event goes there (its maintenance windows, urgency rule).
        public var route: String?
        /// Added to the incident's timeline.
        public var note: String?
        public init() {}
    }

    public var name: String
    public var conditions: [EventCondition]
    public var actions: Actions
    /// Evaluate the next rules too (by default the first matching rule is the last).
    public var continueAfter: Bool

    public init(name: String, conditions: [EventCondition], actions: Actions, continueAfter: Bool = false) {
        self.name = name
        self.conditions = conditions
        self.actions = actions
        self.continueAfter = continueAfter
    }
}

/// What a service's rules did to one event.
public struct RuleOutcome: Sendable, Equatable {
    /// 1-based positions of the rules that matched, in order.
    public var matched: [Int] = []
    public var suppressedBy: Int?
    public var severity: String?
    public var urgency: String?
    public var priority: String?
    public var dedupKey: String?
    public var route: String?
    public var notes: [String] = []
    /// The event's fields after the rules (severity and dedup key as set).
    public var fields: EventFields = [:]

    public var suppressed: Bool { suppressedBy != nil }
    public init() {}
}

/// Event rules: parsing (API, YAML — one format), evaluation (pure: the same in Ingest and in
/// `klaxon rules test`) and the canonical JSON they are stored and exported in.
public enum EventRules {
    public static let maxRules = 100
    public static let maxConditions = 20
    public static let severities = ["critical", "error", "warning", "info"]
    public static let priorities = ["P1", "P2", "P3", "P4", "P5"]

    /// The first matching rule wins unless it says `continue`; a suppressing rule ends the
    /// evaluation. Later rules see the fields earlier ones set.
    public static func evaluate(_ rules: [EventRule], _ fields: EventFields) -> RuleOutcome {
        var outcome = RuleOutcome()
        outcome.fields = fields
        for (index, rule) in rules.enumerated() where rule.conditions.allSatisfy({ $0.holds(for: outcome.fields) }) {
            outcome.matched.append(index + 1)
            let actions = rule.actions
            if actions.suppress {
                outcome.suppressedBy = index + 1
                return outcome
            }
            if let severity = actions.severity { outcome.severity = severity; outcome.fields["severity"] = severity }
            if let urgency = actions.urgency { outcome.urgency = urgency }
            if let priority = actions.priority { outcome.priority = priority }
            if let template = actions.dedupKey {
                let key = render(template, outcome.fields)
                outcome.dedupKey = key
                outcome.fields["dedup_key"] = key
            }
            if let route = actions.route { outcome.route = route }
            if let note = actions.note { outcome.notes.append(render(note, outcome.fields)) }
            if !rule.continueAfter { break }
        }
        return outcome
    }

    /// `{{field}}` replaced by the field's value ("" when missing); the rest as written.
    public static func render(_ template: String, _ fields: EventFields) -> String {
        var result = ""
        var rest = Substring(template)
        while let open = rest.range(of: "{{") {
            result += rest[..<open.lowerBound]
            guard let close = rest[open.upperBound...].range(of: "}}") else {
                result += rest[open.lowerBound...]
                return result
            }
            let name = rest[open.upperBound..<close.lowerBound].trimmingCharacters(in: .whitespaces)
            result += fields[name] ?? ""
            rest = rest[close.upperBound...]
        }
        return result + rest
    }

    /// Rules from their JSON (an array), every problem named by its path (`rules[2].conditions[0].op`).
    public static func parse(json text: String) -> Result<[EventRule], ConditionProblems> {
        guard let value = try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed]) else {
            return .failure(ConditionProblems([ConditionProblem(field: "rules", description: "is not JSON")]))
        }
        return parse(value, path: "rules")
    }

    /// Rules from a decoded JSON value (`path` names them in problems).
    public static func parse(_ value: Any, path: String) -> Result<[EventRule], ConditionProblems> {
        guard let items = value as? [Any] else { return .failure(ConditionProblems([ConditionProblem(field: path, description: "must be a list of rules")])) }
        var problems: [ConditionProblem] = []
        func fail(_ field: String, _ description: String) { problems.append(ConditionProblem(field: field, description: description)) }
        if items.count > maxRules { fail(path, "at most \(maxRules) rules (got \(items.count))") }
        var rules: [EventRule] = []
        for (index, item) in items.enumerated() {
            let at = "\(path)[\(index)]"
            guard let object = item as? [String: Any] else { fail(at, "must be a mapping"); continue }
            for key in object.keys where !["name", "conditions", "actions", "continue"].contains(key) {
                fail("\(at).\(key)", "unknown field (expected name, conditions, actions, continue)")
            }
            let name = object["name"] as? String ?? ""
            var conditions: [EventCondition] = []
            let rawConditions = object["conditions"] as? [Any] ?? []
            if object["conditions"] != nil, object["conditions"] as? [Any] == nil { fail("\(at).conditions", "must be a list") }
            if rawConditions.count > maxConditions { fail("\(at).conditions", "at most \(maxConditions) conditions") }
            for (position, raw) in rawConditions.enumerated() {
                let cat = "\(at).conditions[\(position)]"
                guard let condition = raw as? [String: Any] else { fail(cat, "must be a mapping {field, op, value}"); continue }
                switch parseCondition(condition) {
                case let .success(parsed): conditions.append(parsed)
                case let .failure(problem): fail("\(cat).\(problem.field)", problem.description)
                }
            }
            guard let actionObject = object["actions"] as? [String: Any] else { fail("\(at).actions", "is required (a mapping)"); continue }
            var actions = EventRule.Actions()
            for (key, value) in actionObject {
                let aat = "\(at).actions.\(key)"
                switch key {
                case "suppress":
                    guard let flag = value as? Bool else { fail(aat, "must be true or false"); continue }
                    actions.suppress = flag
                case "severity", "urgency", "priority", "dedup_key", "route", "note":
                    guard let text = value as? String, !text.isEmpty else { fail(aat, "must be non-empty text"); continue }
                    switch key {
                    case "severity":
                        guard severities.contains(text) else { fail(aat, "must be one of \(severities.joined(separator: ", "))"); continue }
                        actions.severity = text
                    case "urgency":
                        guard text == "high" || text == "low" else { fail(aat, "must be high or low"); continue }
                        actions.urgency = text
                    case "priority":
                        guard priorities.contains(text) else { fail(aat, "must be one of P1, P2, P3, P4, P5"); continue }
                        actions.priority = text
                    case "dedup_key":
                        guard text.count <= 255 else { fail(aat, "at most 255 characters"); continue }
                        actions.dedupKey = text
                    case "route": actions.route = text
                    default:
                        guard text.count <= 2000 else { fail(aat, "at most 2000 characters"); continue }
                        actions.note = text
                    }
                default:
                    fail(aat, "unknown action (expected suppress, severity, urgency, priority, dedup_key, route, note)")
                }
            }
            let continueAfter = object["continue"] as? Bool ?? false
            if object["continue"] != nil, object["continue"] as? Bool == nil { fail("\(at).continue", "must be true or false") }
            rules.append(EventRule(name: name, conditions: conditions, actions: actions, continueAfter: continueAfter))
        }
        return problems.isEmpty ? .success(rules) : .failure(ConditionProblems(problems))
    }

    public static func parseCondition(_ object: [String: Any]) -> Result<EventCondition, ConditionProblem> {
        for key in object.keys where !["field", "op", "value"].contains(key) {
            return .failure(ConditionProblem(field: key, description: "unknown field (expected field, op, value)"))
        }
        guard let field = object["field"] as? String else { return .failure(ConditionProblem(field: "field", description: "is required")) }
        let op = object["op"] as? String ?? "="
        let value = object["value"] as? String ?? ""
        if op != "exists", object["value"] as? String == nil {
            return .failure(ConditionProblem(field: "value", description: "is required (text) for \(op)"))
        }
        return EventCondition.make(field: field, op: op, value: value)
    }

    /// The canonical JSON of rules (stored, exported, shown): keys sorted, defaults left out.
    public static func json(_ rules: [EventRule]) -> String {
        let items: [[String: Any]] = rules.map { rule in
            var object: [String: Any] = ["conditions": rule.conditions.map(conditionObject), "actions": actionsObject(rule.actions)]
            if !rule.name.isEmpty { object["name"] = rule.name }
            if rule.continueAfter { object["continue"] = true }
            return object
        }
        let data = (try? JSONSerialization.data(withJSONObject: items, options: [.sortedKeys])) ?? Data("[]".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    public static func conditionObject(_ condition: EventCondition) -> [String: Any] {
        condition.op == .exists
            ? ["field": condition.field, "op": "exists"] : ["field": condition.field, "op": condition.op.rawValue, "value": condition.value]
    }

    static func actionsObject(_ actions: EventRule.Actions) -> [String: Any] {
        var object: [String: Any] = [:]
        if actions.suppress { object["suppress"] = true }
        if let value = actions.severity { object["severity"] = value }
        if let value = actions.urgency { object["urgency"] = value }
        if let value = actions.priority { object["priority"] = value }
        if let value = actions.dedupKey { object["dedup_key"] = value }
        if let value = actions.route { object["route"] = value }
        if let value = actions.note { object["note"] = value }
        return object
    }

    /// One line per rule for people: "2. drop test hosts: source =~ ^test- → suppress".
    public static func describe(_ rule: EventRule, position: Int) -> String {
        let conditions = rule.conditions.isEmpty ? "every event" : rule.conditions.map(\.description).joined(separator: " and ")
        var actions: [String] = []
        let a = rule.actions
        if a.suppress { actions.append("suppress") }
        if let v = a.severity { actions.append("severity \(v)") }
        if let v = a.urgency { actions.append("urgency \(v)") }
        if let v = a.priority { actions.append("priority \(v)") }
        if let v = a.dedupKey { actions.append("dedup key \(v)") }
        if let v = a.route { actions.append("route to \(v)") }
        if let v = a.note { actions.append("note \"\(v)\"") }
        if rule.continueAfter { actions.append("continue") }
        return "\(position). \(rule.name.isEmpty ? "" : rule.name + ": ")\(conditions) → \(actions.isEmpty ? "nothing" : actions.joined(separator: ", "))"
    }
}

/// Every problem of a document, each named by its path.
public struct ConditionProblems: Error, Sendable, Equatable {
    public var items: [ConditionProblem]
    public init(_ items: [ConditionProblem]) { self.items = items }
}
