import Foundation
import KlaxonDomain
import Shared

/// The webhook message of PRODUCT.md (JSON, POST, header Idempotency-Key = notification_id).
public struct WebhookMessage: Codable, Sendable, Equatable {
    public struct ServiceRef: Codable, Sendable, Equatable {
        public var id: UInt64
        public var name: String
    }

    public struct IncidentBody: Codable, Sendable, Equatable {
        public var id: UInt64
        public var number: UInt64
        public var title: String
        public var status: String
        public var urgency: String
        public var service: ServiceRef
        public var dedupKey: String
        public var createdAt: String
        public var htmlURL: String?
        /// The one-tap acknowledge endpoint for this user and incident (POST; no body needed).
        public var ackURL: String?
        /// Its service's change events in the window before it opened (deploys first thing to
        /// look at), newest first; absent when there are none.
        public var recentChanges: [ChangeBody]?

        enum CodingKeys: String, CodingKey {
            case id, number, title, status, urgency, service
            case dedupKey = "dedup_key", createdAt = "created_at", htmlURL = "html_url", ackURL = "ack_url", recentChanges = "recent_changes"
        }
    }

    public struct ChangeBody: Codable, Sendable, Equatable {
        public var summary: String
        public var source: String
        public var at: String
        public var links: [String]
    }

    public struct UserRef: Codable, Sendable, Equatable {
        public var id: UInt64
        public var name: String
        public var email: String

        public init(id: UInt64, name: String, email: String) {
            self.id = id
            self.name = name
            self.email = email
        }
    }

    public struct RuleRef: Codable, Sendable, Equatable {
        public var id: UInt64
        public var startDelaySeconds: UInt32

        public init(id: UInt64, startDelaySeconds: UInt32) {
            self.id = id
            self.startDelaySeconds = startDelaySeconds
        }

        enum CodingKeys: String, CodingKey {
            case id
            case startDelaySeconds = "start_delay_seconds"
        }
    }

    public var notificationID: String
    public var reason: String
    public var snapshot: Bool
    public var incident: IncidentBody
    public var user: UserRef
    public var rule: RuleRef
    public var sentAt: String
    /// A major incident's response, present only on its pages: `conference_url`,
    /// `conference_phone`, `chat_channel`, `priority`, `role.<role>` (user ids), and for a
    /// responder request `message` and `requested_role`, for a status update `status_update`.
    public var response: [String: String]?
    /// The person's SMS reply code for this incident ("Reply 4a to ack"), when SMS goes through
    /// Twilio; not part of the JSON.
    public var replyCode: Int? = nil
    /// Other incidents this message stands for (a throttled phone's bundle); not part of the JSON.
    public var bundled: [BundledIncident] = []

    /// "38 more incidents on Checkout, Payments: #13 Disk full, #14 Queue stuck, …" (nil: no bundle).
    public func bundleSummary(titles: Int = 3) -> String? {
        guard !bundled.isEmpty else { return nil }
        var services: [String] = []
        for item in bundled where !services.contains(item.service) { services.append(item.service) }
        var text = "\(counted(bundled.count, "more incident")) on \(services.prefix(3).joined(separator: ", "))\(services.count > 3 ? ", …" : "")"
        let named = bundled.prefix(titles).map { "#\($0.number) \($0.title)" }
        if !named.isEmpty { text += ": " + named.joined(separator: ", ") + (bundled.count > titles ? ", …" : "") }
        return text
    }

    public struct BundledIncident: Sendable, Equatable {
        public var number: UInt64
        public var title: String
        public var service: String
    }

    enum CodingKeys: String, CodingKey {
        case notificationID = "notification_id", reason, snapshot, incident, user, rule, sentAt = "sent_at", response
    }

    public init(
        notificationID: String, reason: NotifyReason, isSnapshot: Bool, incident: IncidentSnapshot,
        user: UserRef, rule: RuleRef, sentAt: Millis
    ) {
        self.notificationID = notificationID
        self.reason = reason.rawValue
        self.snapshot = isSnapshot
        self.incident = IncidentBody(
            id: incident.incidentID, number: incident.number, title: incident.title,
            status: incident.status?.rawValue ?? "triggered", urgency: incident.urgency?.rawValue ?? "high",
            service: ServiceRef(id: incident.serviceID, name: incident.serviceName), dedupKey: incident.dedupKey,
            createdAt: Self.iso8601(incident.createdAtMs), htmlURL: nil,
            recentChanges: incident.recentChanges.isEmpty ? nil : incident.recentChanges.map {
                ChangeBody(summary: $0.summary, source: $0.source, at: Self.iso8601($0.atMs), links: $0.linkHrefs)
            })
        self.user = user
        self.rule = rule
        self.sentAt = Self.iso8601(sentAt)
        var response: [String: String] = [:]
        for (key, value) in incident.details where key.hasPrefix("response.") { response[String(key.dropFirst(9))] = value }
        self.response = response.isEmpty ? nil : response
    }

    /// The body, written by hand in the Codable form's sorted key order (Foundation's JSONEncoder
    /// cost about a tenth of a page's CPU): the same JSON, parsed, as `JSONEncoder` with
    /// `.sortedKeys` makes from this struct (`WebhookBodyTests`); it does not escape `/`.
    public func jsonBytes() -> [UInt8] {
        var json = JSONWriter(capacity: 768)
        json.beginObject()
        json.beginObject("incident")
        if let ackURL = incident.ackURL { json.field("ack_url", ackURL) }
        json.field("created_at", incident.createdAt)
        json.field("dedup_key", incident.dedupKey)
        if let htmlURL = incident.htmlURL { json.field("html_url", htmlURL) }
        json.field("id", incident.id)
        json.field("number", incident.number)
        if let changes = incident.recentChanges {
            json.beginArray("recent_changes")
            for change in changes {
                json.beginObject()
                json.field("at", change.at)
                json.beginArray("links")
                for link in change.links { json.value(link) }
                json.endArray()
                json.field("source", change.source)
                json.field("summary", change.summary)
                json.endObject()
            }
            json.endArray()
        }
        json.beginObject("service")
        json.field("id", incident.service.id)
        json.field("name", incident.service.name)
        json.endObject()
        json.field("status", incident.status)
        json.field("title", incident.title)
        json.field("urgency", incident.urgency)
        json.endObject()
        json.field("notification_id", notificationID)
        json.field("reason", reason)
        if let response { json.field("response", response) }
        json.beginObject("rule")
        json.field("id", rule.id)
        json.field("start_delay_seconds", Int64(rule.startDelaySeconds))
        json.endObject()
        json.field("sent_at", sentAt)
        json.field("snapshot", snapshot)
        json.beginObject("user")
        json.field("email", user.email)
        json.field("id", user.id)
        json.field("name", user.name)
        json.endObject()
        json.endObject()
        return json.bytes
    }

    /// RFC 3339 UTC with milliseconds.
    public static func iso8601(_ millis: Millis) -> String {
        RFC3339.string(millis: millis)
    }
}
