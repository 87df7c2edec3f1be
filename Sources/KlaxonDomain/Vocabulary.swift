/// Instants are unix milliseconds; durations are seconds (the wire contract's units).
public typealias Millis = Int64

public enum IncidentStatus: String, Sendable, Codable, CaseIterable {
    case triggered, acknowledged, resolved
    public var isOpen: Bool { self != .resolved }
}

public enum Urgency: String, Sendable, Codable, CaseIterable {
    case high, low
}

public enum Severity: String, Sendable, Codable, CaseIterable {
    case critical, error, warning, info
}

/// How a service picks an incident's urgency (PRODUCT.md, Service).
public enum UrgencyRule: String, Sendable, Codable, CaseIterable {
    case high, low, severity

    /// `severity`: critical/error → high, warning/info → low; no severity given counts as high,
    /// so an event that says nothing is never quietly downgraded.
    public func urgency(for severity: Severity?) -> Urgency {
        switch self {
        case .high: return .high
        case .low: return .low
        case .severity:
            switch severity {
            case .warning?, .info?: return .low
            case .critical?, .error?, nil: return .high
            }
        }
    }
}

public enum EventAction: String, Sendable, CaseIterable {
    case trigger, acknowledge, resolve
}

public enum EventOutcome: String, Sendable, CaseIterable {
    case created, deduplicated, acknowledged, resolved, ignored
}

/// Why a user is being paged; carried in the notify request and the webhook message.
public enum NotifyReason: String, Sendable, Codable, CaseIterable {
    case assigned, escalated, ackTimeout = "ack_timeout", reassigned, manual
    /// Major incident response: asked to join; told of a status update.
    case responderRequest = "responder_request", statusUpdate = "status_update"

    /// Pages of one family supersede each other; pages of different purposes never do.
    public var family: PageFamily {
        switch self {
        case .assigned, .escalated, .ackTimeout, .reassigned, .manual: .assignment
        case .responderRequest: .responderRequest
        case .statusUpdate: .statusUpdate
        }
    }
}

/// What a page is for: being assigned the incident, being asked to join its response, or being
/// told of its progress. Each family has its own rule for delayed pages and its own supersede.
public enum PageFamily: String, Sendable, CaseIterable {
    case assignment, responderRequest = "responder_request", statusUpdate = "status_update"
}

/// The kinds of incident timeline entries (PRODUCT.md, Timeline entry).
public enum TimelineType: String, Sendable, Codable, CaseIterable {
    case trigger, alertDeduplicated = "alert_deduplicated", assign
    case notifyScheduled = "notify_scheduled", notifySent = "notify_sent"
    case notifySkipped = "notify_skipped", notifyFailed = "notify_failed"
    /// One delivery attempt failed and another is scheduled.
    case notifyRetry = "notify_retry"
    case acknowledge, ackTimeout = "ack_timeout", escalate
    /// Unacknowledged from outside (Opsgenie's API): back to triggered.
    case unacknowledge
    case repeatEscalationPath = "repeat_escalation_path"
    case exhaustEscalationPath = "exhaust_escalation_path"
    case reassign, snooze, resolve, note
    /// Major incident response (issue 14): an incident became major (by hand or by surge
    /// detection); a child was linked to its major incident; the surge ended.
    case majorDeclared = "major_declared", linked
    case surgeEnded = "surge_ended"
    /// The response: a plan applied; responders asked, joining, declining, not answering;
    /// roles given, handed over, given up; status updates.
    case responsePlanApplied = "response_plan_applied"
    case responderRequested = "responder_requested", responderJoined = "responder_joined"
    case responderDeclined = "responder_declined", responderNoAnswer = "responder_no_answer"
    /// A pending request ended because the major incident was resolved.
    case responderCancelled = "responder_cancelled"
    case roleAssigned = "role_assigned", roleHandedOver = "role_handed_over", roleRelinquished = "role_relinquished"
    case statusUpdate = "status_update"
    /// A status update posted to a subscribed chat channel (a Slack-compatible webhook), or not.
    case channelPosted = "channel_posted", channelPostFailed = "channel_post_failed"
    /// What the SMS/voice provider reported on a page it took (queued, sent, delivered, failed,
    /// undelivered, no-answer, busy, completed, …), with its message or call id.
    case notifyProviderStatus = "notify_provider_status"
    /// A page held back by its phone's throttle (sent later, alone or bundled).
    case notifyThrottled = "notify_throttled"
    /// Alertmanager's own webhook: an alert (a fingerprint) joined the incident's group, an alert
    /// resolved, a resolved one fired again — none pages anyone again.
    case alertAdded = "alert_added", alertResolved = "alert_resolved", alertRefired = "alert_refired"
    /// A maintenance window holds the incident (nobody paged), and then released it.
    case maintenanceHeld = "maintenance_held", maintenanceReleased = "maintenance_released"
    /// An event rule of the service matched (its position and name, what it did).
    case eventRule = "event_rule"
}

public struct TimelineEntry: Sendable, Equatable {
    public var at: Millis
    public var type: TimelineType
    public var actor: String
    public var details: [String: String]

    public init(at: Millis, type: TimelineType, actor: String, details: [String: String] = [:]) {
        self.at = at
        self.type = type
        self.actor = actor
        self.details = details
    }
}

/// "1 subscriber", "2 subscribers": counts in text people read.
public func counted(_ count: Int, _ singular: String, _ plural: String? = nil) -> String {
    "\(count) \(count == 1 ? singular : plural ?? singular + "s")"
}
