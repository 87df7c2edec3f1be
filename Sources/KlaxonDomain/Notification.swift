/// A user's notification rule, as far as scheduling is concerned.
public struct NotificationRule: Sendable, Equatable {
    public var id: UInt64
    public var contactMethodID: UInt64
    public var startDelaySeconds: UInt32
    public var urgency: Urgency

    public init(id: UInt64, contactMethodID: UInt64, startDelaySeconds: UInt32, urgency: Urgency) {
        self.id = id
        self.contactMethodID = contactMethodID
        self.startDelaySeconds = startDelaySeconds
        self.urgency = urgency
    }

    public var isMinuteZero: Bool { startDelaySeconds == 0 }
}

public struct ScheduledNotification: Sendable, Equatable {
    public var ruleID: UInt64
    public var contactMethodID: UInt64
    public var dueAt: Millis
    public var minuteZero: Bool

    public init(ruleID: UInt64, contactMethodID: UInt64, dueAt: Millis, minuteZero: Bool) {
        self.ruleID = ruleID
        self.contactMethodID = contactMethodID
        self.dueAt = dueAt
        self.minuteZero = minuteZero
    }
}

/// What to do with a due notification.
public enum NotificationDecision: Sendable, Equatable {
    /// Send the snapshot taken when the user was assigned.
    case sendSnapshot
    /// Send with the incident's current state.
    case sendCurrent
    case skip(reason: String)
}

public enum NotificationCore {
    /// One scheduled notification per rule matching the incident's urgency, due at
    /// `requestedAt + start_delay_seconds`.
    public static func expand(rules: [NotificationRule], urgency: Urgency, requestedAt: Millis)
        -> [ScheduledNotification]
    {
        rules.filter { $0.urgency == urgency }.map { rule in
            ScheduledNotification(
                ruleID: rule.id, contactMethodID: rule.contactMethodID,
                dueAt: requestedAt + Millis(rule.startDelaySeconds) * 1000, minuteZero: rule.isMinuteZero)
        }
    }

    /// Minute-zero notifications always go out with their snapshot; delayed ones only while the
    /// incident still needs this user for the page's purpose (its family):
    /// - assignment pages: the incident is still triggered and the user still assigned;
    /// - responder requests: the user's request is still pending (a reminder is for that), and
    ///   skipped with the answer (joined, declined, no_answer) or `resolved` once it is not;
    /// - status updates: the incident is open and the user still subscribed.
    public static func decide(_ page: DuePage) -> NotificationDecision {
        // An address nobody proved is never paged, minute zero included (a typo'd number is a stranger's).
        if page.contactUnverified { return .skip(reason: unverifiedReason) }
        if page.minuteZero { return .sendSnapshot }
        if page.currentStatus == .resolved { return .skip(reason: "resolved") }
        switch page.reason.family {
        case .assignment:
            if page.currentStatus == .acknowledged { return .skip(reason: "acknowledged") }
            return page.userStillAssigned ? .sendCurrent : .skip(reason: "reassigned")
        case .responderRequest:
            switch page.requestState {
            case .pending?: return .sendCurrent
            case .cancelled?: return .skip(reason: "resolved")
            case let answered?: return .skip(reason: answered.rawValue)
            case nil: return .skip(reason: "no responder request")
            }
        case .statusUpdate:
            return page.stillSubscribed ? .sendCurrent : .skip(reason: "unsubscribed")
        }
    }

    /// The skip reason of a page to an unverified contact method.
    public static let unverifiedReason = "contact method not verified"

    /// The assignment-page rule alone (kept for callers that know nothing else).
    public static func decide(minuteZero: Bool, currentStatus: IncidentStatus, userStillAssigned: Bool) -> NotificationDecision {
        decide(DuePage(reason: .assigned, minuteZero: minuteZero, currentStatus: currentStatus, userStillAssigned: userStillAssigned))
    }

    /// The waiting notifications a newer notify request (`requestID`, requested at `requestedAt`,
    /// for `reason`) for the same incident and user supersedes: the delayed ones of older
    /// requests of the same family that are not being sent right now (lease passed). Minute
    /// zero never is: it always goes out. A status update never cancels a responder reminder,
    /// and neither touches the assignment pages.
    public static func superseded(
        _ waiting: [WaitingNotification], byRequest requestID: String, reason: NotifyReason = .assigned, requestedAt: Millis, now: Millis
    ) -> [WaitingNotification] {
        waiting.filter {
            !$0.minuteZero && $0.requestID != requestID && $0.requestedAt <= requestedAt && $0.leaseUntil <= now
                && $0.reason.family == reason.family
        }
    }

    /// What follows a failed delivery attempt: retried with backoff (or the endpoint's
    /// Retry-After) until the delivery window, counted from the first attempt, has passed; the
    /// last retry happens at the window's end at the latest. A permanent refusal fails at once.
    public static func afterFailedAttempt(
        _ failure: DeliveryFailure, attempts: Int, firstAttemptAt: Millis, finishedAt: Millis, window: DeliveryWindow
    ) -> DeliveryOutcome {
        if failure.permanent { return .fail(reason: failure.description) }
        let windowEnd = firstAttemptAt + window.lengthMs
        if finishedAt >= windowEnd {
            return .fail(reason: "\(failure.description); delivery window of \(window.lengthMs / 1000) s passed")
        }
        let backoff = failure.retryAfterMs ?? Backoff.delay(afterFailures: attempts, first: window.firstBackoffMs, cap: window.maxBackoffMs)
        return .retry(at: min(finishedAt + max(backoff, 0), windowEnd))
    }
}

/// One failed attempt, as the delivery rule needs it.
public struct DeliveryFailure: Sendable, Equatable {
    public var description: String
    /// The endpoint will keep refusing this message (a 4xx other than 408 and 429).
    public var permanent: Bool
    /// The endpoint's own Retry-After, honoured instead of the backoff.
    public var retryAfterMs: Millis?

    public init(description: String, permanent: Bool = false, retryAfterMs: Millis? = nil) {
        self.description = description
        self.permanent = permanent
        self.retryAfterMs = retryAfterMs
    }
}

/// How long a page keeps trying and how its retries back off.
public struct DeliveryWindow: Sendable, Equatable {
    public var lengthMs: Millis
    public var firstBackoffMs: Millis
    public var maxBackoffMs: Millis

    public init(lengthMs: Millis, firstBackoffMs: Millis = 1_000, maxBackoffMs: Millis = 60_000) {
        self.lengthMs = lengthMs
        self.firstBackoffMs = firstBackoffMs
        self.maxBackoffMs = maxBackoffMs
    }
}

public enum DeliveryOutcome: Sendable, Equatable {
    case retry(at: Millis)
    case fail(reason: String)
}

/// A pending notification, as the supersede rule needs it.
public struct WaitingNotification: Sendable, Equatable {
    public var id: String
    public var ruleID: UInt64
    public var requestID: String
    public var minuteZero: Bool
    public var requestedAt: Millis
    public var leaseUntil: Millis
    public var reason: NotifyReason

    public init(
        id: String, ruleID: UInt64, requestID: String, minuteZero: Bool, requestedAt: Millis, leaseUntil: Millis,
        reason: NotifyReason = .assigned
    ) {
        self.id = id
        self.ruleID = ruleID
        self.requestID = requestID
        self.minuteZero = minuteZero
        self.requestedAt = requestedAt
        self.leaseUntil = leaseUntil
        self.reason = reason
    }
}

/// A notification at its due time, with what the delayed-rule decision needs to know now.
public struct DuePage: Sendable, Equatable {
    public var reason: NotifyReason
    public var minuteZero: Bool
    public var currentStatus: IncidentStatus
    /// Assignment pages: the user is still among the incident's assignees.
    public var userStillAssigned: Bool
    /// Responder requests: the user's request's state now (nil: none).
    public var requestState: RequestState?
    /// Status updates: the user still subscribes to the incident.
    public var stillSubscribed: Bool
    /// The contact method needs a code (`ContactVerification`) and has not been verified.
    public var contactUnverified: Bool

    public init(
        reason: NotifyReason, minuteZero: Bool, currentStatus: IncidentStatus, userStillAssigned: Bool = false,
        requestState: RequestState? = nil, stillSubscribed: Bool = false, contactUnverified: Bool = false
    ) {
        self.contactUnverified = contactUnverified
        self.reason = reason
        self.minuteZero = minuteZero
        self.currentStatus = currentStatus
        self.userStillAssigned = userStillAssigned
        self.requestState = requestState
        self.stillSubscribed = stillSubscribed
    }
}
