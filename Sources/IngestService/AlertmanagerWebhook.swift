import Foundation
import KlaxonDomain
import Shared

/// Prometheus Alertmanager's own webhook (`webhook_configs`, payload version 4), so a team keeps
/// its Alertmanager routes and only points a receiver at Klaxon (issue 27, point 2). Mapped onto
/// the same event semantics as every other front door (validation, dedup, rate limit, reply after
/// commit): one incident per (service, groupKey) — the dedup key is a hash of Alertmanager's
/// groupKey, never of text, so two groups whose alerts share a summary stay two incidents — and
/// one alert per fingerprint inside it.
public enum AlertmanagerWebhook {
    /// One alert of the notification (Alertmanager's `alerts[]`).
    public struct Alert: Sendable, Equatable {
        public var status: String
        public var labels: [String: String]
        public var annotations: [String: String]
        public var startsAtMs: Int64
        public var endsAtMs: Int64
        public var generatorURL: String
        public var fingerprint: String

        public var firing: Bool { status != "resolved" }

        /// The summary of this alert alone: its own summary annotation, else alertname and labels.
        public var summary: String {
            if let summary = annotations["summary"], !summary.isEmpty { return summary }
            let name = labels["alertname"] ?? "alert"
            let rest = labels.filter { $0.key != "alertname" }.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
            return ([name] + rest).joined(separator: " ")
        }

        /// What the alert row keeps (`alerts.event`).
        var json: String {
            var writer = JSONWriter(capacity: 512)
            writer.beginObject()
            writer.field("dialect", "alertmanager")
            writer.field("status", status)
            writer.field("fingerprint", fingerprint)
            writer.field("labels", labels)
            writer.field("annotations", annotations)
            writer.field("starts_at_ms", startsAtMs)
            writer.field("ends_at_ms", endsAtMs)
            writer.field("generatorURL", generatorURL)
            writer.endObject()
            return writer.string
        }
    }

    /// The whole notification (one alert group's state).
    public struct Notification: Sendable, Equatable {
        public var groupKey: String
        public var status: String
        public var receiver: String
        public var groupLabels: [String: String]
        public var commonLabels: [String: String]
        public var commonAnnotations: [String: String]
        public var externalURL: String
        public var truncatedAlerts: Int
        public var alerts: [Alert]

        public init(
            groupKey: String, status: String, receiver: String, groupLabels: [String: String], commonLabels: [String: String],
            commonAnnotations: [String: String], externalURL: String, truncatedAlerts: Int, alerts: [Alert]
        ) {
            self.groupKey = groupKey
            self.status = status
            self.receiver = receiver
            self.groupLabels = groupLabels
            self.commonLabels = commonLabels
            self.commonAnnotations = commonAnnotations
            self.externalURL = externalURL
            self.truncatedAlerts = truncatedAlerts
            self.alerts = alerts
        }

        public var firing: Bool { status == "firing" }

        /// commonAnnotations.summary, else alertname plus the group labels' values (GoAlert keys on
        /// the summary text and merges different groups; here the title is only a title).
        public var title: String {
            if let summary = commonAnnotations["summary"], !summary.isEmpty { return summary }
            let name = groupLabels["alertname"] ?? commonLabels["alertname"] ?? "Alertmanager alert group"
            let values = groupLabels.filter { $0.key != "alertname" }.sorted { $0.key < $1.key }.map(\.value)
            return ([name] + values).joined(separator: " ")
        }

        /// critical, error, warning or info from the common `severity` label (Alertmanager's own
        /// PagerDuty integration sends `error` when there is none).
        public var severity: Severity {
            switch commonLabels["severity"]?.lowercased() {
            case "critical", "page", "p1", "fatal", "emergency": .critical
            case "warning", "warn": .warning
            case "info", "informational", "none", "notice": .info
            default: .error
            }
        }

        /// The incident's dedup key: Alertmanager's groupKey, hashed (it can be long).
        public var dedupKey: String { AlertmanagerWebhook.dedupKey(groupKey: groupKey) }
    }

    public static func dedupKey(groupKey: String) -> String {
        "alertmanager-" + Secrets.sha256Hex(groupKey, bytes: 16)
    }

    /// The notification, or what is wrong with the body (INVALID_ARGUMENT-style violations).
    public static func parse(_ body: [UInt8]) -> (notification: Notification?, violations: [FieldViolation]) {
        // Machine-made JSON: Foundation's parser alone (no strict pre-pass, as PagerDuty's shape
        // needs: the notification is Alertmanager's, not a person's), its error named when it fails.
        let root: Any
        do {
            root = try JSONSerialization.jsonObject(with: Data(body))
        } catch {
            return (nil, [FieldViolation(field: "body", description: "is not valid JSON: \(StrictJSON.problem(body) ?? "\(error)")")])
        }
        guard let object = root as? [String: Any] else {
            return (nil, [FieldViolation(field: "body", description: "is not a JSON object")])
        }
        if PagerDutyEvents.containsNUL(object) { return (nil, [FieldViolation(field: "body", description: "contains a NUL character")]) }
        var violations: [FieldViolation] = []
        func add(_ field: String, _ description: String) { violations.append(FieldViolation(field: field, description: description)) }
        func string(_ object: [String: Any], _ key: String, _ path: String, required: Bool = false) -> String {
            switch object[key] {
            case nil, is NSNull:
                if required { add(path, "is required") }
                return ""
            case let value as String:
                if required, value.isEmpty { add(path, "is required") }
                return value
            default:
                add(path, "must be a string")
                return ""
            }
        }
        func map(_ object: [String: Any], _ key: String, _ path: String) -> [String: String] {
            switch object[key] {
            case nil, is NSNull: return [:]
            case let value as [String: Any]:
                var result: [String: String] = [:]
                for (name, item) in value {
                    guard let text = item as? String else {
                        add("\(path).\(name)", "must be a string")
                        continue
                    }
                    result[name] = text
                }
                return result
            default:
                add(path, "must be an object of strings")
                return [:]
            }
        }
        func instant(_ object: [String: Any], _ key: String, _ path: String) -> Int64 {
            let text = string(object, key, path)
            // Go's zero time (0001-01-01T00:00:00Z) is Alertmanager's "not set".
            guard !text.isEmpty, !text.hasPrefix("0001-") else { return 0 }
            guard let millis = PagerDutyEvents.parseTimestamp(text) else {
                add(path, "must be an RFC 3339 date-time, got \"\(text.prefix(64))\"")
                return 0
            }
            return millis
        }
        let version = string(object, "version", "version", required: true)
        if !version.isEmpty, version != "4" { add("version", "must be \"4\" (Alertmanager's webhook payload), got \"\(version.prefix(16))\"") }
        let status = string(object, "status", "status", required: true)
        if !status.isEmpty, status != "firing", status != "resolved" { add("status", "must be firing or resolved") }
        var notification = Notification(
            groupKey: string(object, "groupKey", "groupKey", required: true), status: status, receiver: string(object, "receiver", "receiver"),
            groupLabels: map(object, "groupLabels", "groupLabels"), commonLabels: map(object, "commonLabels", "commonLabels"),
            commonAnnotations: map(object, "commonAnnotations", "commonAnnotations"), externalURL: string(object, "externalURL", "externalURL"),
            truncatedAlerts: (object["truncatedAlerts"] as? NSNumber)?.intValue ?? 0, alerts: [])
        switch object["alerts"] {
        case let items as [Any]:
            for (index, item) in items.enumerated() {
                let path = "alerts[\(index)]"
                guard let alert = item as? [String: Any] else {
                    add(path, "must be an object")
                    continue
                }
                var parsed = Alert(
                    status: string(alert, "status", "\(path).status"), labels: map(alert, "labels", "\(path).labels"),
                    annotations: map(alert, "annotations", "\(path).annotations"), startsAtMs: instant(alert, "startsAt", "\(path).startsAt"),
                    endsAtMs: instant(alert, "endsAt", "\(path).endsAt"), generatorURL: string(alert, "generatorURL", "\(path).generatorURL"),
                    fingerprint: string(alert, "fingerprint", "\(path).fingerprint"))
                if parsed.fingerprint.isEmpty {
                    // Alertmanager always sends one; other senders get one from the labels.
                    let labels = parsed.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "\u{1F}")
                    parsed.fingerprint = Secrets.sha256Hex(labels, bytes: 8)
                }
                if parsed.fingerprint.count > 255 { add("\(path).fingerprint", "must be at most 255 characters") }
                notification.alerts.append(parsed)
            }
        case nil, is NSNull:
            break
        default:
            add("alerts", "must be an array")
        }
        return violations.isEmpty ? (notification, []) : (nil, violations)
    }

    /// The event the notification is, for the one event path: a trigger while the group fires,
    /// a resolve once Alertmanager says the whole group resolved. Long texts are cut to the
    /// limits rather than refused: Alertmanager drops whatever gets a 4xx.
    public static func event(_ notification: Notification, routingKey: String) -> (event: Event, customDetailsJSON: String) {
        let source = notification.commonLabels["instance"] ?? notification.commonLabels["job"] ?? notification.receiver
        var details = JSONWriter(capacity: 512)
        details.beginObject()
        details.field("alertmanager_group_key", notification.groupKey)
        details.field("receiver", notification.receiver)
        details.field("group_labels", notification.groupLabels)
        details.field("common_labels", notification.commonLabels)
        details.field("common_annotations", notification.commonAnnotations)
        details.field("external_url", notification.externalURL)
        details.endObject()
        var flat: [String: String] = [:]
        for (key, value) in notification.commonLabels.prefix(EventValidation.maxCustomDetails - 1) where !key.isEmpty {
            flat[cut(key, EventValidation.maxShortField)] = cut(value, EventValidation.maxSummary)
        }
        flat["alertmanager_group_key"] = cut(notification.groupKey, EventValidation.maxSummary)
        let event = Event(
            routingKey: routingKey, eventAction: notification.firing ? .trigger : .resolve, dedupKey: notification.dedupKey,
            payload: Payload(
                summary: cut(notification.title, EventValidation.maxSummary), source: cut(source.isEmpty ? "alertmanager" : source, EventValidation.maxSource),
                severity: notification.severity, customDetails: flat),
            client: "Alertmanager", clientURL: notification.externalURL.count <= EventValidation.maxURL ? notification.externalURL : "")
        return (event, details.string)
    }

    /// What recording the alerts changed.
    public struct Recorded: Sendable, Equatable {
        public var added = 0
        public var resolved = 0
    }

    /// One alert row per fingerprint on the incident, in the event's transaction (its follow-up):
    /// a new fingerprint joins it (`alert_added`, no page), a fingerprint's status change is
    /// recorded (`alert_resolved`, `alert_refired`). Alerts a truncated notification left out are
    /// not touched: only what Alertmanager sent is known. `created`: the incident was opened by
    /// this notification, in this transaction, its first alert written with it (fingerprint,
    /// status, JSON): nothing needs reading, and a one-alert group writes nothing more.
    public static func record(
        _ connection: PGConnection, incidentID: Int64, notification: Notification, created: Bool, now: Millis
    ) throws -> Recorded {
        var recorded = Recorded()
        var alerts: [Alert] = []
        var seen = Set<String>()
        for alert in notification.alerts where seen.insert(alert.fingerprint).inserted { alerts.append(alert) }
        guard !alerts.isEmpty else { return recorded }
        func status(_ alert: Alert) -> String { alert.status.isEmpty ? notification.status : alert.status }
        func details(_ alert: Alert) -> [String: String] {
            ["fingerprint": alert.fingerprint, "summary": cut(alert.summary),
             "labels": alert.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")]
        }
        var known: [String: String] = [:]
        if created {
            // The trigger wrote the first alert (its fingerprint, status and JSON) with the incident.
            known[alerts[0].fingerprint] = status(alerts[0])
        } else {
            let existing = try connection.query(
                "SELECT fingerprint, status FROM alerts WHERE incident_id = $1 AND fingerprint = ANY($2::text[]) FOR UPDATE",
                [incidentID, PGArray(alerts.map(\.fingerprint))])
            for row in 0..<existing.count { known[existing.string(row, "fingerprint")!] = existing.string(row, "status")! }
        }
        for alert in alerts {
            if let previous = known[alert.fingerprint] {
                if created, alert.fingerprint == alerts[0].fingerprint { continue }  // written just above
                try connection.enqueue(
                    "UPDATE alerts SET status = $3, event = $4::jsonb, last_at_ms = $5 WHERE incident_id = $1 AND fingerprint = $2",
                    [incidentID, alert.fingerprint, status(alert), alert.json, now])
                if previous != status(alert) {
                    let resolved = status(alert) == "resolved"
                    if resolved { recorded.resolved += 1 }
                    try Timeline.enqueue(connection, incidentID: incidentID, TimelineEntry(
                        at: now, type: resolved ? .alertResolved : .alertRefired, actor: EventProcessor.consumerActor, details: details(alert)))
                }
            } else {
                try connection.enqueue(
                    """
                    INSERT INTO alerts (incident_id, summary, source, severity, event, first_at_ms, last_at_ms, fingerprint, status)
                    VALUES ($1, $2, $3, $4, $5::jsonb, $6, $6, $7, $8)
                    """, [incidentID, cut(alert.summary), alert.labels["instance"] ?? notification.receiver, alert.labels["severity"] ?? "",
                          alert.json, now, alert.fingerprint, status(alert)])
                recorded.added += 1
                try Timeline.enqueue(connection, incidentID: incidentID, TimelineEntry(
                    at: now, type: .alertAdded, actor: EventProcessor.consumerActor, details: details(alert)))
            }
        }
        return recorded
    }

    /// `text`, cut to `limit` characters with an ellipsis (a summary's by default).
    static func cut(_ text: String, _ limit: Int = EventValidation.maxSummary) -> String {
        text.count <= limit ? text : String(text.prefix(limit - 1)) + "…"
    }
}
