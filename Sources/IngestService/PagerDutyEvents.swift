import Foundation
import KlaxonDomain
import Shared

/// PagerDuty Events API v2 JSON ⇄ Klaxon's `Event`, so monitors that speak PagerDuty (e.g.
/// Prometheus Alertmanager) work unchanged. Only the shape is checked here; the limits and the
/// semantics are `EventProcessor`'s, shared with the binary endpoint.
public enum PagerDutyEvents {
    public struct Parsed: Sendable {
        public var event: Event?
        public var customDetailsJSON: String?
        public var violations: [FieldViolation]
    }

    public static func parse(_ body: [UInt8]) -> Parsed {
        var violations: [FieldViolation] = []
        func add(_ field: String, _ description: String) { violations.append(FieldViolation(field: field, description: description)) }
        // Strict first: Foundation also takes what PagerDuty refuses (a trailing comma).
        if let problem = StrictJSON.problem(body) {
            return Parsed(event: nil, customDetailsJSON: nil, violations: [FieldViolation(field: "event", description: "body is not valid JSON: \(problem)")])
        }
        guard let root = try? JSONSerialization.jsonObject(with: Data(body)), let object = root as? [String: Any] else {
            return Parsed(event: nil, customDetailsJSON: nil, violations: [FieldViolation(field: "event", description: "body is not a JSON object")])
        }
        func string(_ object: [String: Any], _ key: String, _ path: String) -> String {
            switch object[key] {
            case nil, is NSNull: return ""
            case let value as String: return value
            default:
                add(path, "must be a string")
                return ""
            }
        }
        var event = Event(routingKey: string(object, "routing_key", "routing_key"), eventAction: nil)
        let action = string(object, "event_action", "event_action")
        if !action.isEmpty {
            if let parsed = EventAction(rawValue: action) {
                event.eventAction = parsed
            } else {
                add("event_action", "must be trigger, acknowledge or resolve, got \"\(action)\"")
            }
        }
        event.dedupKey = string(object, "dedup_key", "dedup_key")
        event.client = string(object, "client", "client")
        event.clientURL = string(object, "client_url", "client_url")
        var customDetailsJSON: String?
        if let payloadValue = object["payload"], !(payloadValue is NSNull) {
            if let payload = payloadValue as? [String: Any] {
                var parsed = Payload(summary: string(payload, "summary", "payload.summary"), source: string(payload, "source", "payload.source"))
                let severity = string(payload, "severity", "payload.severity")
                if !severity.isEmpty {
                    if let value = Severity(rawValue: severity) {
                        parsed.severity = value
                    } else {
                        add("payload.severity", "must be critical, error, warning or info, got \"\(severity)\"")
                    }
                }
                let timestamp = string(payload, "timestamp", "payload.timestamp")
                if !timestamp.isEmpty {
                    if let millis = parseTimestamp(timestamp) {
                        parsed.timestampMs = millis
                    } else {
                        add("payload.timestamp", "must be an ISO 8601 date-time, got \"\(timestamp)\"")
                    }
                }
                parsed.component = string(payload, "component", "payload.component")
                parsed.group = string(payload, "group", "payload.group")
                parsed.eventClass = string(payload, "class", "payload.class")
                switch payload["custom_details"] {
                case nil, is NSNull: break
                case let details as [String: Any]:
                    // Nested values are kept as JSON text, where a NUL is escaped (\u0000) and
                    // would only fail later, in PostgreSQL's jsonb: refused here, naming the key.
                    for key in details.keys.sorted() where !(details[key] is String) && containsNUL(details[key]!) {
                        add("payload.custom_details.\(key)", "contains a NUL character")
                    }
                    parsed.customDetails = details.mapValues { value in
                        (value as? String) ?? (try? JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed, .sortedKeys]))
                            .map { String(decoding: $0, as: UTF8.self) } ?? ""
                    }
                    customDetailsJSON = (try? JSONSerialization.data(withJSONObject: details, options: [.sortedKeys]))
                        .map { String(decoding: $0, as: UTF8.self) }
                default:
                    // PagerDuty also takes a plain value; keep it, under one key.
                    let value = payload["custom_details"]!
                    let text = (value as? String)
                        ?? (try? JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed])).map { String(decoding: $0, as: UTF8.self) } ?? ""
                    parsed.customDetails = ["details": text]
                    customDetailsJSON = JSON.object(["details": text])
                }
                event.payload = parsed
            } else {
                add("payload", "must be an object")
            }
        }
        func list(_ key: String) -> [[String: Any]] {
            switch object[key] {
            case nil, is NSNull: return []
            case let items as [Any]:
                return items.enumerated().compactMap { index, item in
                    if let item = item as? [String: Any] { return item }
                    add("\(key)[\(index)]", "must be an object")
                    return nil
                }
            default:
                add(key, "must be an array")
                return []
            }
        }
        event.links = list("links").enumerated().map { index, link in
            Link(href: string(link, "href", "links[\(index)].href"), text: string(link, "text", "links[\(index)].text"))
        }
        event.images = list("images").enumerated().map { index, image in
            Image(src: string(image, "src", "images[\(index)].src"), href: string(image, "href", "images[\(index)].href"),
                  alt: string(image, "alt", "images[\(index)].alt"))
        }
        for (text, field) in [(event.routingKey, "routing_key"), (event.dedupKey, "dedup_key")] where text.unicodeScalars.contains("\0") {
            add(field, "contains a NUL character")
        }
        return Parsed(event: event, customDetailsJSON: customDetailsJSON, violations: violations)
    }

    /// A change event (`POST /v2/change/enqueue`).
    public struct Change: Sendable {
        public var routingKey: String
        public var summary: String
        public var source: String
        public var timestampMs: Int64?
        public var customDetailsJSON: String
        public var linksJSON: String
    }

    /// PagerDuty's change event shape: `routing_key`, `payload.summary` (required, ≤ 1024),
    /// `payload.source`, `payload.timestamp`, `payload.custom_details`, `links[]` (≤ 50).
    public static func parseChange(_ body: [UInt8]) -> (change: Change?, violations: [FieldViolation]) {
        if let problem = StrictJSON.problem(body) {
            return (nil, [FieldViolation(field: "event", description: "body is not valid JSON: \(problem)")])
        }
        guard let object = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] else {
            return (nil, [FieldViolation(field: "event", description: "body is not a JSON object")])
        }
        var violations: [FieldViolation] = []
        func add(_ field: String, _ description: String) { violations.append(FieldViolation(field: field, description: description)) }
        if containsNUL(object) { add("event", "contains a NUL character") }
        let routingKey = object["routing_key"] as? String ?? ""
        if routingKey.count != EventValidation.routingKeyLength { add("routing_key", "must be \(EventValidation.routingKeyLength) characters") }
        let payload = object["payload"] as? [String: Any]
        if payload == nil { add("payload", "is required") }
        let summary = payload?["summary"] as? String ?? ""
        if summary.isEmpty || summary.count > EventValidation.maxSummary { add("payload.summary", "is required, at most \(EventValidation.maxSummary) characters") }
        let source = payload?["source"] as? String ?? ""
        if source.count > EventValidation.maxSource { add("payload.source", "must be at most \(EventValidation.maxSource) characters") }
        var timestampMs: Int64?
        if let text = payload?["timestamp"] as? String, !text.isEmpty {
            timestampMs = parseTimestamp(text)
            if timestampMs == nil { add("payload.timestamp", "must be an ISO 8601 date-time, got \"\(text.prefix(64))\"") }
        }
        var details = "{}"
        if let value = payload?["custom_details"], !(value is NSNull) {
            if let object = value as? [String: Any], let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) {
                details = String(decoding: data, as: UTF8.self)
            } else {
                add("payload.custom_details", "must be an object")
            }
        }
        var links: [[String: String]] = []
        if let value = object["links"], !(value is NSNull) {
            guard let items = value as? [[String: Any]] else {
                add("links", "must be an array of objects")
                return (nil, violations)
            }
            if items.count > EventValidation.maxLinks { add("links", "has \(items.count) entries; the limit is \(EventValidation.maxLinks)") }
            for (index, item) in items.prefix(EventValidation.maxLinks).enumerated() {
                let href = item["href"] as? String ?? ""
                if href.isEmpty || href.count > EventValidation.maxURL { add("links[\(index)].href", "is required, at most \(EventValidation.maxURL) characters") }
                links.append(["href": href, "text": String((item["text"] as? String ?? "").prefix(EventValidation.maxLinkText))])
            }
        }
        guard violations.isEmpty else { return (nil, violations) }
        let linksJSON = (try? JSONSerialization.data(withJSONObject: links, options: [.sortedKeys])).map { String(decoding: $0, as: UTF8.self) } ?? "[]"
        return (Change(routingKey: routingKey, summary: summary, source: source, timestampMs: timestampMs, customDetailsJSON: details, linksJSON: linksJSON), [])
    }

    static func parseTimestamp(_ text: String) -> Int64? {
        // RFC 3339 by arithmetic first: Foundation builds a formatter per call, which was most of
        // the Alertmanager path's CPU (`scripts/bench --dialects`: 44 % → 74 % of PagerDuty's rate).
        if let millis = RFC3339.millis(text) { return millis }
        let formatter = ISO8601DateFormatter()
        for options: ISO8601DateFormatter.Options in [
            [.withInternetDateTime, .withFractionalSeconds], [.withInternetDateTime],
        ] {
            formatter.formatOptions = options
            if let date = formatter.date(from: text) { return Int64((date.timeIntervalSince1970 * 1000).rounded()) }
        }
        // PagerDuty's own examples write the offset without a colon: 2015-07-17T08:42:58.315+0000.
        let posix = DateFormatter()
        posix.locale = Locale(identifier: "en_US_POSIX")
        for format in ["yyyy-MM-dd'T'HH:mm:ss.SSSZ", "yyyy-MM-dd'T'HH:mm:ssZ"] {
            posix.dateFormat = format
            if let date = posix.date(from: text) { return Int64((date.timeIntervalSince1970 * 1000).rounded()) }
        }
        return nil
    }

    /// PagerDuty's reply bodies.
    public static func accepted(dedupKey: String) -> [UInt8] {
        body(["status": "success", "message": "Event processed", "dedup_key": dedupKey])
    }

    public static func invalid(_ violations: [FieldViolation], message: String = "Event object is invalid") -> [UInt8] {
        body(["status": "invalid event", "message": message, "errors": violations.map { "\($0.field): \($0.description)" }])
    }

    public static func throttled(_ message: String) -> [UInt8] {
        body(["status": "throttle event", "message": "Requests for this service are arriving too quickly. Please retry later.",
              "errors": [message]])
    }

    public static func failed(_ message: String) -> [UInt8] {
        body(["status": "error", "message": message, "errors": [message]])
    }

    public static func body(_ object: [String: Any]) -> [UInt8] {
        Array((try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8))
    }

    /// Whether a parsed JSON value holds a NUL in any string or key, at any depth.
    static func containsNUL(_ value: Any) -> Bool {
        switch value {
        case let text as String: return text.utf8.contains(0)
        case let array as [Any]: return array.contains(where: containsNUL)
        case let object as [String: Any]: return object.contains { containsNUL($0.key) || containsNUL($0.value) }
        default: return false
        }
    }
}
