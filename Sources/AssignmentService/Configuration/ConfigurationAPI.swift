import Foundation
import IncidentEngine
import KlaxonDomain
import Shared

/// Configuration as code (`klaxon apply -f`, `klaxon export`): the whole configuration as one
/// document — users with their contact methods and rules, schedules, escalation policies,
/// services with their routing keys — referring to each other by name (users by email).
/// Applying compares the document with what Klaxon holds and makes the difference in one
/// transaction: everything or, on any error, nothing. Things Klaxon holds that the document does
/// not name are kept unless `prune` is asked for. A dry run is the same transaction rolled back,
/// so its plan is exactly what applying would do.
extension AdminAPI {
    func registerConfiguration(into router: inout RPCRouter) {
        let pool = self.pool
        let clock = self.clock
        router.register(Admin.ApplyConfiguration) { (request: ConfigDocument, _) in
            try await Configuration.apply(pool, json: request.json, prune: request.prune, dryRun: request.dryRun, now: clock.nowMs())
        }
        router.register(Admin.ExportConfiguration) { (_: Empty, _) in
            try await pool.withConnection { connection in ConfigDocument(json: try ConfigExporter.export(connection)) }
        }
    }
}

struct DryRun: Error {
    var changes: [PlanChange]
}

// MARK: - The document

/// The document as read: every value with the path it came from (`services[1].escalation_policy`),
/// so each error names where it is (the CLI turns the path into a file line).
struct ConfigModel: Sendable {
    struct User: Sendable { var path: String; var name, email, timeZone, role: String; var chatID = ""; var contactMethods: [Contact]; var rules: [Rule] }
    /// `verified: true` pre-verifies a method (migrations; the document is applied with an admin token).
    struct Contact: Sendable { var path: String; var name, type, address: String; var verified = false }
    struct Rule: Sendable { var path: String; var contactMethod: String; var delaySeconds: UInt32; var urgency: String }
    struct Schedule: Sendable { var path: String; var name, timeZone: String; var layers: [Layer]; var overrides: [Override] }
    struct Layer: Sendable {
        var path: String; var users: [String]; var rotationStart: Millis; var turnLengthSeconds: UInt32
        var restrictions: [KlaxonDomain.ScheduleRestriction]; var start: Millis?; var end: Millis?
    }
    struct Override: Sendable { var path: String; var user: String; var start, end: Millis }
    struct Policy: Sendable { var path: String; var name: String; var numLoops: UInt32; var levels: [Level] }
    struct Level: Sendable { var path: String; var delaySeconds: UInt32; var targets: [Target] }
    struct Target: Sendable { var path: String; var user: String?; var schedule: String? }
    struct Service: Sendable {
        var path: String; var name, policy, urgencyRule: String
        var ackTimeoutSeconds, autoResolveSeconds, eventsPerMinute, eventsBurst: UInt32; var keys: [Key]
        /// The service's event rules as written (nil: not in the document, left as they are).
        var eventRules: JSONValue?
        /// live (the default) or shadow: everything but delivery, each page recorded instead.
        var mode = "live"
    }
    /// A heartbeat monitor, by name; `id` pins its ping URL (else Klaxon makes one, and keeps it).
    struct HeartbeatDoc: Sendable {
        var path: String; var name, service: String; var id: String?; var periodSeconds: UInt32; var cron, timeZone: String
        var graceSeconds, startTimeoutSeconds: UInt32
    }
    /// A maintenance window, by its description.
    struct WindowDoc: Sendable {
        var path: String; var description: String; var services: [String]; var start, end: Millis; var rrule, timeZone, mode: String
        var matchers: [EventConditionInfo]
    }
    struct Key: Sendable { var path: String; var name: String; var key: String? }
    /// An outbound webhook subscription, by URL; `secret` (whsec_…) optional: Klaxon makes one
    /// (printed by the apply that creates it) and keeps it when the document names none.
    struct WebhookDoc: Sendable {
        var path: String; var url, description: String; var events, services: [String]; var headers: [String: String]; var secret: String?
        /// A user's email: told when the subscription is disabled.
        var owner: String?
    }
    /// A response plan: responders name a user (email), schedule or escalation policy (by name).
    struct Plan: Sendable {
        var path: String; var name, message, conferenceURL, conferencePhone, chatChannel: String; var requestTimeoutSeconds: UInt32
        var responders: [Responder]; var subscribers: [String]; var channelWebhooks: [String]
    }
    struct Responder: Sendable { var path: String; var user, schedule, policy: String?; var role: String }
    /// Surge detection's settings; a field left out keeps its value.
    struct Surge: Sendable {
        var path: String; var enabled: Bool?; var windowSeconds, minIncidents, rateFactor, minServices, quietPeriodSeconds: UInt32?
        var responsePlan: String?
    }

    var users: [User] = []
    var schedules: [Schedule] = []
    var policies: [Policy] = []
    var services: [Service] = []
    var plans: [Plan] = []
    var surge: Surge?
    var heartbeats: [HeartbeatDoc] = []
    var windows: [WindowDoc] = []
    var webhooks: [WebhookDoc] = []

    static let weekdays = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]

    static func parse(json: String) throws -> ConfigModel {
        let root: JSONValue
        do {
            root = try JSONDecoder().decode(JSONValue.self, from: Data(json.utf8))
        } catch {
            throw RPCError.invalidArgument([FieldViolation(field: "json", description: "is not JSON: \(error.localizedDescription)")])
        }
        var reader = Reader()
        var model = ConfigModel()
        reader.object(root, path: "", keys: Set(ConfigKeys.topLevel)) { top in
            model.users = top.list("users") { user in
                let path = user.path
                return User(
                    path: path, name: user.string("name", required: true) ?? "", email: user.string("email", required: true) ?? "",
                    timeZone: user.string("time_zone") ?? "UTC", role: user.choice("role", ["admin", "responder", "observer"]) ?? "responder",
                    chatID: user.string("chat_id", maxLength: 64) ?? "",
                    contactMethods: user.list("contact_methods") { contact in
                        Contact(
                            path: contact.path, name: contact.string("name", required: true) ?? "",
                            type: contact.choice("type", ContactKind.names, required: true) ?? "",
                            address: contact.string("address", required: true, maxLength: 2048) ?? "",
                            verified: contact.bool("verified") ?? false)
                    },
                    rules: user.list("notification_rules") { rule in
                        Rule(
                            path: rule.path, contactMethod: rule.string("contact_method", required: true) ?? "",
                            delaySeconds: rule.uint("start_delay_seconds") ?? 0, urgency: rule.choice("urgency", ["high", "low"]) ?? "high")
                    })
            }
            model.schedules = top.list("schedules") { schedule in
                Schedule(
                    path: schedule.path, name: schedule.string("name", required: true) ?? "",
                    timeZone: schedule.string("time_zone") ?? "UTC",
                    layers: schedule.list("layers") { layer in
                        Layer(
                            path: layer.path, users: layer.strings("users"),
                            rotationStart: layer.instant("rotation_virtual_start", required: true) ?? 0,
                            turnLengthSeconds: layer.uint("rotation_turn_length_seconds", required: true) ?? 0,
                            restrictions: layer.list("restrictions") { restriction in
                                let start = restriction.timeOfDay("start", required: true) ?? 0
                                let duration = Int(restriction.uint("duration_seconds", required: true) ?? 0)
                                switch restriction.choice("kind", ["daily", "weekly"], required: true) {
                                case "weekly":
                                    let day = restriction.choice("weekday", weekdays, required: true).flatMap { weekdays.firstIndex(of: $0) } ?? 0
                                    return .weekly(weekday: day + 1, startSecondOfDay: start, durationSeconds: duration)
                                default:
                                    return .daily(startSecondOfDay: start, durationSeconds: duration)
                                }
                            },
                            start: layer.instant("start"), end: layer.instant("end"))
                    },
                    overrides: schedule.list("overrides") { override in
                        Override(
                            path: override.path, user: override.string("user", required: true) ?? "",
                            start: override.instant("start", required: true) ?? 0, end: override.instant("end", required: true) ?? 0)
                    })
            }
            model.policies = top.list("escalation_policies") { policy in
                Policy(
                    path: policy.path, name: policy.string("name", required: true) ?? "", numLoops: policy.uint("num_loops") ?? 0,
                    levels: policy.list("levels") { level in
                        Level(
                            path: level.path, delaySeconds: level.uint("escalation_delay_seconds", required: true) ?? 0,
                            targets: level.list("targets") { target in
                                let user = target.string("user")
                                let schedule = target.string("schedule")
                                if (user == nil) == (schedule == nil) { target.fail("", "set exactly one of user and schedule") }
                                return Target(path: target.path, user: user, schedule: schedule)
                            })
                    })
            }
            model.services = top.list("services") { service in
                Service(
                    path: service.path, name: service.string("name", required: true) ?? "",
                    policy: service.string("escalation_policy", required: true) ?? "",
                    urgencyRule: service.choice("urgency_rule", ["high", "low", "severity"]) ?? "high",
                    ackTimeoutSeconds: service.uint("ack_timeout_seconds") ?? 1800,
                    autoResolveSeconds: service.uint("auto_resolve_timeout_seconds") ?? 14400,
                    eventsPerMinute: service.uint("events_per_minute") ?? 120, eventsBurst: service.uint("events_burst") ?? 60,
                    keys: service.list("routing_keys") { key in
                        Key(path: key.path, name: key.string("name", required: true) ?? "", key: key.string("key"))
                    },
                    eventRules: service.value("event_rules", required: false),
                    mode: service.choice("mode", ["live", "shadow"]) ?? "live")
            }
            model.heartbeats = top.list("heartbeats") { heartbeat in
                HeartbeatDoc(
                    path: heartbeat.path, name: heartbeat.string("name", required: true) ?? "", service: heartbeat.string("service", required: true) ?? "",
                    id: heartbeat.string("id", maxLength: 64), periodSeconds: heartbeat.uint("period_seconds") ?? 0, cron: heartbeat.string("cron") ?? "",
                    timeZone: heartbeat.string("time_zone") ?? "UTC", graceSeconds: heartbeat.uint("grace_seconds") ?? 0,
                    startTimeoutSeconds: heartbeat.uint("start_timeout_seconds") ?? 0)
            }
            model.windows = top.list("maintenance_windows") { window in
                WindowDoc(
                    path: window.path, description: window.string("description", required: true, maxLength: 1000) ?? "",
                    services: window.strings("services"), start: window.instant("start", required: true) ?? 0,
                    end: window.instant("end", required: true) ?? 0, rrule: window.string("rrule") ?? "", timeZone: window.string("time_zone") ?? "UTC",
                    mode: window.choice("mode", ["hold", "drop"]) ?? "hold",
                    matchers: window.list("matchers") { matcher in
                        EventConditionInfo(field: matcher.string("field", required: true) ?? "", op: matcher.string("op") ?? "=", value: matcher.string("value", maxLength: 1000) ?? "")
                    })
            }
            model.webhooks = top.list("webhooks") { hook in
                var headers: [String: String] = [:]
                switch hook.value("headers", required: false) {
                case nil: break
                case let .object(values)?:
                    for (name, value) in values {
                        if case let .string(text) = value { headers[name] = text } else { hook.fail("headers.\(name)", "must be a string") }
                    }
                default: hook.fail("headers", "must be a mapping of header names to values")
                }
                return WebhookDoc(
                    path: hook.path, url: hook.string("url", required: true, maxLength: 2048) ?? "",
                    description: hook.string("description", maxLength: 1000) ?? "", events: hook.strings("events", required: false),
                    services: hook.strings("services", required: false), headers: headers, secret: hook.string("secret", maxLength: 200),
                    owner: hook.string("owner"))
            }
            model.plans = top.list("response_plans") { plan in
                Plan(
                    path: plan.path, name: plan.string("name", required: true) ?? "", message: plan.string("message", maxLength: 4000) ?? "",
                    conferenceURL: plan.string("conference_url", maxLength: 1024) ?? "",
                    conferencePhone: plan.string("conference_phone", maxLength: 1024) ?? "",
                    chatChannel: plan.string("chat_channel", maxLength: 1024) ?? "",
                    requestTimeoutSeconds: plan.uint("request_timeout_seconds") ?? 300,
                    responders: plan.list("responders") { responder in
                        Responder(
                            path: responder.path, user: responder.string("user"), schedule: responder.string("schedule"),
                            policy: responder.string("escalation_policy"),
                            role: responder.choice("role", ResponseAPI.roles) ?? "")
                    },
                    subscribers: plan.strings("subscribers", required: false), channelWebhooks: plan.strings("channel_webhooks", required: false))
            }
            model.surge = top.mapping("surge") { surge in
                Surge(
                    path: surge.path, enabled: surge.bool("enabled"), windowSeconds: surge.uint("window_seconds"),
                    minIncidents: surge.uint("min_incidents"), rateFactor: surge.uint("rate_factor"), minServices: surge.uint("min_services"),
                    quietPeriodSeconds: surge.uint("quiet_period_seconds"),
                    responsePlan: surge.value("response_plan", required: false) == .string("") ? "" : surge.string("response_plan"))
            }
        }
        model.checkNames(&reader)
        guard reader.violations.isEmpty else { throw RPCError.invalidArgument(reader.violations) }
        return model
    }

    /// Names must be unique where they are references.
    func checkNames(_ reader: inout Reader) {
        func unique<T>(_ items: [T], _ key: (T) -> String, _ path: (T) -> String, field: String, what: String) {
            var seen: [String: String] = [:]
            for item in items {
                let name = key(item)
                if let first = seen[name] { reader.fail(path(item) + "." + field, "\(what) \"\(name)\" is already defined at \(first)") }
                else { seen[name] = path(item) }
            }
        }
        unique(users, { $0.email.lowercased() }, \.path, field: "email", what: "a user with email")
        unique(schedules, \.name, \.path, field: "name", what: "schedule")
        unique(policies, \.name, \.path, field: "name", what: "escalation policy")
        unique(services, \.name, \.path, field: "name", what: "service")
        for user in users {
            unique(user.contactMethods, \.name, \.path, field: "name", what: "contact method")
            if user.rules.count > UserRules.maxRulesPerUser {
                reader.fail(user.path + ".notification_rules", "at most \(UserRules.maxRulesPerUser) rules per user, got \(user.rules.count)")
            }
            for rule in user.rules where !user.contactMethods.contains(where: { $0.name == rule.contactMethod }) {
                reader.fail(rule.path + ".contact_method", "\"\(rule.contactMethod)\" is not one of this user's contact methods")
            }
        }
        for service in services { unique(service.keys, \.name, \.path, field: "name", what: "routing key") }
        unique(plans, \.name, \.path, field: "name", what: "response plan")
        unique(heartbeats, \.name, \.path, field: "name", what: "heartbeat monitor")
        unique(webhooks, \.url, \.path, field: "url", what: "webhook")
        unique(windows, \.description, \.path, field: "description", what: "maintenance window")
        for plan in plans {
            for responder in plan.responders where [responder.user, responder.schedule, responder.policy].compactMap({ $0 }).count != 1 {
                reader.fail(responder.path, "name exactly one of user, schedule, escalation_policy")
            }
        }
    }
}

/// Reads untyped JSON with paths, collecting every problem instead of stopping at the first.
struct Reader {
    var violations: [FieldViolation] = []

    mutating func fail(_ path: String, _ description: String) {
        violations.append(FieldViolation(field: path.isEmpty ? "document" : path, description: description))
    }

    mutating func object(_ value: JSONValue, path: String, keys: Set<String>, _ body: (inout Object) -> Void) {
        guard case let .object(dictionary) = value else {
            fail(path, "must be a mapping")
            return
        }
        for key in dictionary.keys.sorted() where !keys.contains(key) {
            fail(Object.join(path, key), "unknown field (expected one of \(keys.sorted().joined(separator: ", ")))")
        }
        var object = Object(values: dictionary, path: path, reader: self)
        body(&object)
        self = object.reader
    }

    struct Object {
        let values: [String: JSONValue]
        let path: String
        var reader: Reader

        static func join(_ path: String, _ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

        mutating func fail(_ key: String, _ description: String) { reader.fail(key.isEmpty ? path : Self.join(path, key), description) }

        mutating func value(_ key: String, required: Bool) -> JSONValue? {
            guard let value = values[key], value != .null else {
                if required { fail(key, "is required") }
                return nil
            }
            return value
        }

        mutating func string(_ key: String, required: Bool = false, maxLength: Int = 255) -> String? {
            guard let value = value(key, required: required) else { return nil }
            guard case let .string(text) = value else {
                fail(key, "must be a string")
                return nil
            }
            if text.isEmpty || text.unicodeScalars.count > maxLength { fail(key, "must be 1–\(maxLength) characters") }
            if text.contains("\u{0}") { fail(key, "contains a NUL character") }
            return text
        }

        mutating func choice(_ key: String, _ allowed: [String], required: Bool = false) -> String? {
            guard let text = string(key, required: required) else { return nil }
            guard allowed.contains(text) else {
                fail(key, "must be \(allowed.dropLast().joined(separator: ", ")) or \(allowed.last!), got \"\(text)\"")
                return nil
            }
            return text
        }

        mutating func bool(_ key: String, required: Bool = false) -> Bool? {
            guard let value = value(key, required: required) else { return nil }
            guard case let .bool(flag) = value else {
                fail(key, "must be true or false")
                return nil
            }
            return flag
        }

        /// A nested mapping (its fields from `ConfigKeys.allowed[key]`), nil when absent.
        mutating func mapping<T>(_ key: String, _ body: (inout Object) -> T) -> T? {
            guard let value = value(key, required: false) else { return nil }
            let itemPath = Self.join(path, key)
            guard case let .object(dictionary) = value else {
                fail(key, "must be a mapping")
                return nil
            }
            let allowed = Set(ConfigKeys.allowed[key] ?? [])
            for unknown in dictionary.keys.sorted() where !allowed.contains(unknown) {
                reader.fail(Self.join(itemPath, unknown), "unknown field (expected one of \(allowed.sorted().joined(separator: ", ")))")
            }
            var object = Object(values: dictionary, path: itemPath, reader: reader)
            let result = body(&object)
            reader = object.reader
            return result
        }

        mutating func uint(_ key: String, required: Bool = false) -> UInt32? {
            guard let value = value(key, required: required) else { return nil }
            guard case let .number(number) = value, number >= 0, number <= Double(UInt32.max), number.rounded() == number else {
                fail(key, "must be a whole number ≥ 0")
                return nil
            }
            return UInt32(number)
        }

        mutating func strings(_ key: String, required: Bool = true) -> [String] {
            guard let value = value(key, required: required) else { return [] }
            guard case let .array(list) = value else {
                fail(key, "must be a list")
                return []
            }
            return list.enumerated().compactMap { index, item in
                guard case let .string(text) = item, !text.isEmpty else {
                    fail("\(key)[\(index)]", "must be a non-empty string")
                    return nil
                }
                return text
            }
        }

        /// An instant: RFC 3339 text (`2026-01-05T09:00:00Z`).
        mutating func instant(_ key: String, required: Bool = false) -> Millis? {
            guard let text = string(key, required: required) else { return nil }
            guard let millis = RFC3339Parser.millis(text) else {
                fail(key, "must be an RFC 3339 instant such as 2026-01-05T09:00:00Z, got \"\(text)\"")
                return nil
            }
            return millis
        }

        /// A local time of day, "HH:MM" → seconds.
        mutating func timeOfDay(_ key: String, required: Bool) -> Int? {
            guard let text = string(key, required: required) else { return nil }
            let parts = text.split(separator: ":", omittingEmptySubsequences: false)
            let numbers = parts.map { $0.count == 2 ? Int($0) : nil }
            guard (2...3).contains(parts.count), let hours = numbers[0], let minutes = numbers[1], (0..<24).contains(hours),
                (0..<60).contains(minutes), parts.count == 2 || (numbers[2].map { (0..<60).contains($0) } ?? false)
            else {
                fail(key, "must be a time of day HH:MM or HH:MM:SS, got \"\(text)\"")
                return nil
            }
            return hours * 3600 + minutes * 60 + (parts.count == 3 ? numbers[2]! : 0)
        }

        mutating func list<T>(_ key: String, _ element: (inout Object) -> T) -> [T] {
            guard let value = value(key, required: false) else { return [] }
            guard case let .array(items) = value else {
                fail(key, "must be a list")
                return []
            }
            var out: [T] = []
            for (index, item) in items.enumerated() {
                let itemPath = "\(Self.join(path, key))[\(index)]"
                guard case let .object(dictionary) = item else {
                    reader.fail(itemPath, "must be a mapping")
                    continue
                }
                let allowed = Set(ConfigKeys.allowed[key] ?? [])
                for unknown in dictionary.keys.sorted() where !allowed.contains(unknown) {
                    reader.fail(Self.join(itemPath, unknown), "unknown field (expected one of \(allowed.sorted().joined(separator: ", ")))")
                }
                var object = Object(values: dictionary, path: itemPath, reader: reader)
                out.append(element(&object))
                reader = object.reader
            }
            return out
        }
    }
}

/// The fields each list's items may have (also the order `klaxon export` writes them in).
public enum ConfigKeys {
    public static let allowed: [String: [String]] = [
        "users": ["name", "email", "time_zone", "role", "chat_id", "contact_methods", "notification_rules"],
        "contact_methods": ["name", "type", "address", "verified"],
        "notification_rules": ["contact_method", "start_delay_seconds", "urgency"],
        "schedules": ["name", "time_zone", "layers", "overrides"],
        "layers": ["users", "rotation_virtual_start", "rotation_turn_length_seconds", "restrictions", "start", "end"],
        "restrictions": ["kind", "weekday", "start", "duration_seconds"],
        "overrides": ["user", "start", "end"],
        "escalation_policies": ["name", "num_loops", "levels"],
        "levels": ["escalation_delay_seconds", "targets"],
        "targets": ["user", "schedule"],
        "services": [
            "name", "escalation_policy", "urgency_rule", "ack_timeout_seconds", "auto_resolve_timeout_seconds", "events_per_minute", "mode",
            "events_burst", "routing_keys", "event_rules",
        ],
        "event_rules": ["name", "conditions", "actions", "continue"],
        "conditions": ["field", "op", "value"],
        "heartbeats": ["name", "service", "id", "period_seconds", "cron", "time_zone", "grace_seconds", "start_timeout_seconds"],
        "maintenance_windows": ["description", "services", "start", "end", "rrule", "time_zone", "mode", "matchers"],
        "matchers": ["field", "op", "value"],
        "webhooks": ["url", "description", "events", "services", "headers", "secret", "owner"],
        "routing_keys": ["name", "key"],
        "response_plans": [
            "name", "message", "conference_url", "conference_phone", "chat_channel", "request_timeout_seconds", "responders", "subscribers",
            "channel_webhooks",
        ],
        "responders": ["user", "schedule", "escalation_policy", "role"],
        "surge": ["enabled", "window_seconds", "min_incidents", "rate_factor", "min_services", "quiet_period_seconds", "response_plan"],
    ]
    public static let topLevel = [
        "users", "schedules", "escalation_policies", "services", "response_plans", "surge", "heartbeats", "maintenance_windows", "webhooks",
    ]
}

enum RFC3339Parser {
    static func millis(_ text: String) -> Millis? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: text) { return Millis((date.timeIntervalSince1970 * 1000).rounded()) }
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.date(from: text).map { Millis(($0.timeIntervalSince1970 * 1000).rounded()) }
    }
}

/// JSON as read, keeping booleans apart from numbers.
enum JSONValue: Decodable, Equatable, @unchecked Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null }
        else if let value = try? container.decode(Bool.self) { self = .bool(value) }
        else if let value = try? container.decode(Double.self) { self = .number(value) }
        else if let value = try? container.decode(String.self) { self = .string(value) }
        else if let value = try? container.decode([JSONValue].self) { self = .array(value) }
        else { self = .object(try container.decode([String: JSONValue].self)) }
    }
}

/// Applying a configuration document in-process (what `klaxon dev` does with the example file,
/// and the benchmarks with theirs): the same code the Admin API runs.
public enum Configuration {
    public static func apply(_ pool: PostgresPool, json: String, prune: Bool = false, dryRun: Bool = false, now: Millis) async throws -> ApplyReply {
        let document = try ConfigModel.parse(json: json)
        // Webhook URLs are checked as CreateWebhook checks them (the metadata guard resolves names).
        var violations: [FieldViolation] = []
        for hook in document.webhooks {
            let found = await AdminAPI.webhookViolations(WebhookSubscription(url: hook.url, eventTypes: hook.events, headers: hook.headers))
            violations += found.map { FieldViolation(field: "\(hook.path).\($0.field.replacingOccurrences(of: "event_types", with: "events"))", description: $0.description) }
            if let secret = hook.secret, !WebhookEvents.validSecret(secret) {
                violations.append(FieldViolation(field: "\(hook.path).secret", description: "must be whsec_ and 24 to 64 bytes in base64"))
            }
        }
        guard violations.isEmpty else { throw RPCError.invalidArgument(violations) }
        do {
            return try await pool.transaction { connection in
                let sequences = dryRun ? try Self.holdSequences(connection) : []
                var applier = ConfigApplier(connection: connection, document: document, prune: prune, now: now)
                applier.dryRun = dryRun
                try applier.apply()
                if dryRun {
                    try Self.restore(connection, sequences)
                    throw DryRun(changes: applier.changes)
                }
                return ApplyReply(changes: applier.changes, applied: true, createdKeys: applier.createdKeys)
            }
        } catch let dryRun as DryRun {
            return ApplyReply(changes: dryRun.changes, applied: false)
        }
    }

    /// The tables an apply inserts into. A dry run rolls its inserts back, but sequences are not
    /// transactional: it locks these tables against inserts (SHARE ROW EXCLUSIVE: readers go on,
    /// a writer waits the few milliseconds of the dry run) so nobody else draws from their
    /// sequences meanwhile, and puts each sequence back where it was before rolling back. A later
    /// apply then makes the ids the plan showed.
    static let insertedTables = [
        "users", "contact_methods", "notification_rules", "schedules", "escalation_policies", "escalation_levels",
        "escalation_targets", "services", "routing_keys", "response_plans", "response_plan_responders",
        "response_plan_subscribers", "response_plan_channels", "webhook_subscriptions",
    ]

    static func holdSequences(_ connection: PGConnection) throws -> [(sequence: String, last: Int64?)] {
        // The apply's own lock, first (re-entrant: the applier takes it again).
        try connection.query("SELECT pg_advisory_xact_lock($1::bigint)", [ConfigApplier.applyLock])
        try connection.query("LOCK TABLE \(insertedTables.joined(separator: ", ")) IN SHARE ROW EXCLUSIVE MODE")
        let rows = try connection.query(
            """
            SELECT s.oid::regclass::text AS sequence, pg_sequence_last_value(s.oid) AS last
            FROM pg_class s JOIN pg_depend d ON d.objid = s.oid AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
                 JOIN pg_class t ON t.oid = d.refobjid
            WHERE s.relkind = 'S' AND t.relname = ANY($1::text[])
            """, [PGArray(insertedTables)])
        return (0..<rows.count).map { (rows.string($0, "sequence")!, rows.int64($0, "last")) }
    }

    static func restore(_ connection: PGConnection, _ sequences: [(sequence: String, last: Int64?)]) throws {
        for (sequence, last) in sequences {
            // Never called yet: back to "next is 1".
            try connection.query("SELECT setval($1::regclass, $2::bigint, $3::boolean)", [sequence, last ?? 1, last != nil])
        }
    }

    /// The first admin token: `KLAXON_BOOTSTRAP_TOKEN` made an admin token (idempotent), or,
    /// when no admin token exists, a new one returned to be printed once. nil: nothing to show.
    public static func bootstrapAdmin(_ pool: PostgresPool, token: String, now: Millis) async throws -> String? {
        try await pool.transaction { connection in
            // Processes starting together: one at a time here (two would both find no bootstrap
            // token and insert it twice, or print two first tokens).
            try connection.query("SELECT pg_advisory_xact_lock(7402013)")
            if !token.isEmpty {
                try TokenStore.bootstrap(connection, token: token, now: now)
                return nil
            }
            guard try !TokenStore.hasAdmin(connection) else { return nil }
            return try TokenStore.issue(connection, name: "first admin", role: .admin, userID: nil, now: now).token
        }
    }
}

extension JSONValue {
    /// As JSONSerialization would have read it (for the parsers that take Foundation values).
    var foundation: Any {
        switch self {
        case .null: NSNull()
        case let .bool(value): value
        case let .number(value): value.rounded() == value && abs(value) < 1e15 ? Int(value) as Any : value as Any
        case let .string(value): value
        case let .array(items): items.map(\.foundation)
        case let .object(members): members.mapValues(\.foundation)
        }
    }
}
