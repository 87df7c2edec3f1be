import Foundation

/// An event as conditions see it: flat field names → text, whatever the dialect it came in.
/// `summary`, `source`, `severity`, `component`, `group`, `class`, `dedup_key`, `action`,
/// `client`, `dialect`, `custom_details.<key>`, `labels.<name>` (Alertmanager), `tags`
/// (Opsgenie, comma-separated). A custom detail that is not text is its JSON.
public typealias EventFields = [String: String]

/// One condition over an event field (event rules and maintenance-window matchers).
public struct EventCondition: Sendable, Equatable {
    public enum Op: String, Sendable, CaseIterable {
        case equals = "=", notEquals = "!=", matches = "=~", notMatches = "!~", exists
    }

    public var field: String
    public var op: Op
    public var value: String
    private let regex: CompiledRegex?

    /// nil with a reason when the condition cannot be used (unknown operator, bad regex).
    public static func make(field: String, op: String, value: String) -> Result<EventCondition, ConditionProblem> {
        guard !field.isEmpty else { return .failure(ConditionProblem(field: "field", description: "is required")) }
        guard let kind = Op(rawValue: op) else {
            return .failure(ConditionProblem(field: "op", description: "must be one of =, !=, =~, !~, exists (got \"\(op)\")"))
        }
        var regex: CompiledRegex?
        if kind == .matches || kind == .notMatches {
            guard let compiled = CompiledRegex(value) else {
                return .failure(ConditionProblem(field: "value", description: "is not a valid regular expression: \"\(value)\""))
            }
            regex = compiled
        }
        return .success(EventCondition(field: field, op: kind, value: value, regex: regex))
    }

    private init(field: String, op: Op, value: String, regex: CompiledRegex?) {
        self.field = field
        self.op = op
        self.value = value
        self.regex = regex
    }

    /// `=~` matches anywhere in the value (anchor with ^ and $); a missing field is "" for
    /// `=`/`!=`/`=~`/`!~`, and `exists` asks whether it is there and not empty.
    public func holds(for fields: EventFields) -> Bool {
        let actual = fields[field] ?? ""
        switch op {
        case .equals: return actual == value
        case .notEquals: return actual != value
        case .matches: return regex?.matches(actual) ?? false
        case .notMatches: return !(regex?.matches(actual) ?? false)
        case .exists: return !actual.isEmpty
        }
    }

    public static func == (a: EventCondition, b: EventCondition) -> Bool {
        a.field == b.field && a.op == b.op && a.value == b.value
    }

    /// "severity = critical", "labels.team exists".
    public var description: String { op == .exists ? "\(field) exists" : "\(field) \(op.rawValue) \(value)" }
}

public struct ConditionProblem: Error, Sendable, Equatable {
    public var field: String
    public var description: String
}

/// A regular expression compiled once (NSRegularExpression is thread-safe for matching).
final class CompiledRegex: @unchecked Sendable {
    let expression: NSRegularExpression

    init?(_ pattern: String) {
        guard let expression = try? NSRegularExpression(pattern: pattern) else { return nil }
        self.expression = expression
    }

    func matches(_ text: String) -> Bool {
        expression.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil
    }
}

extension EventFields {
    /// The fields of an event in PagerDuty's Events v2 shape (what `klaxon rules test` reads), or
    /// of the parts a front door knows. `customDetails` may hold any JSON (an object's top-level
    /// keys become `custom_details.<key>`).
    public static func of(
        summary: String, source: String, severity: String, component: String = "", group: String = "", eventClass: String = "",
        dedupKey: String = "", action: String = "", client: String = "", dialect: String = "",
        customDetails: [String: String] = [:], labels: [String: String] = [:], tags: [String] = []
    ) -> EventFields {
        var fields: EventFields = [
            "summary": summary, "source": source, "severity": severity, "component": component, "group": group,
            "class": eventClass, "dedup_key": dedupKey, "action": action, "client": client, "dialect": dialect,
        ]
        for (key, value) in customDetails { fields["custom_details." + key] = value }
        for (key, value) in labels { fields["labels." + key] = value }
        if !tags.isEmpty { fields["tags"] = tags.joined(separator: ",") }
        return fields.filter { !$0.value.isEmpty }
    }

    /// A JSON object's top-level members as text: strings as they are, anything else as its JSON.
    public static func flatten(json text: String) -> [String: String] {
        guard text.hasPrefix("{"), let object = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] else { return [:] }
        var flat: [String: String] = [:]
        for (key, value) in object {
            switch value {
            case let string as String: flat[key] = string
            case let number as NSNumber: flat[key] = number.stringValue
            case is NSNull: continue
            default:
                if let data = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys]) { flat[key] = String(decoding: data, as: UTF8.self) }
            }
        }
        return flat
    }
}
