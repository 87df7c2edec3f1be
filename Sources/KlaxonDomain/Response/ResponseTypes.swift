/// The typed vocabulary of major-incident response (PRODUCT.md, "Major incident response"). The
/// wire and the database keep their strings; these are what the rules speak.

/// P1–P5, optional on every incident.
public enum Priority: String, Sendable, CaseIterable, Comparable {
    case p1 = "P1", p2 = "P2", p3 = "P3", p4 = "P4", p5 = "P5"

    public static func < (a: Priority, b: Priority) -> Bool { a.rawValue < b.rawValue }
    /// "P1, P2, P3, P4, P5", for refusals.
    public static var listed: String { allCases.map(\.rawValue).joined(separator: ", ") }
}

/// A role in a major incident's response. One commander at a time; several of the others.
public enum Role: String, Sendable, CaseIterable {
    case commander, deputy, scribe
    case subjectMatterExpert = "subject_matter_expert"
    case customerLiaison = "customer_liaison"
    case internalLiaison = "internal_liaison"

    /// At most one holder at a time (assigning another hands it over).
    public var isSingle: Bool { self == .commander }
    public static var listed: String { allCases.map(\.rawValue).joined(separator: ", ") }
    /// "subject matter expert".
    public var spoken: String { rawValue.replacingOccurrences(of: "_", with: " ") }
}

/// A responder request's state: pending → joined | declined | no_answer | cancelled.
public enum RequestState: String, Sendable, CaseIterable {
    case pending, joined, declined
    case noAnswer = "no_answer"
    /// The major incident was resolved while the request was pending.
    case cancelled

    public var isAnswered: Bool { self != .pending }
}

/// One person asked to join a major incident (one per person per incident: asking again
/// re-opens a declined, unanswered or cancelled request; a joined one stays joined).
public struct ResponderRequest: Sendable, Equatable {
    public var user: UInt64
    public var state: RequestState
    public var role: Role?
    public var message: String
    public var requestedBy: String
    public var requestedAt: Millis
    public var timeoutAt: Millis
    public var answeredAt: Millis?

    public init(
        user: UInt64, state: RequestState = .pending, role: Role? = nil, message: String = "", requestedBy: String, requestedAt: Millis,
        timeoutAt: Millis, answeredAt: Millis? = nil
    ) {
        self.user = user
        self.state = state
        self.role = role
        self.message = message
        self.requestedBy = requestedBy
        self.requestedAt = requestedAt
        self.timeoutAt = timeoutAt
        self.answeredAt = answeredAt
    }
}

/// Someone holding a role.
public struct RoleHolding: Sendable, Equatable, Hashable {
    public var role: Role
    public var user: UInt64
    public var assignedAt: Millis
    public var assignedBy: String

    public init(role: Role, user: UInt64, assignedAt: Millis, assignedBy: String) {
        self.role = role
        self.user = user
        self.assignedAt = assignedAt
        self.assignedBy = assignedBy
    }
}

/// Where responders meet: the conference bridge and the chat channel, and the plan they came from.
public struct Bridge: Sendable, Equatable {
    public var conferenceURL: String
    public var conferencePhone: String
    public var chatChannel: String
    /// The response plan applied (nil: none).
    public var planID: Int64?

    public init(conferenceURL: String = "", conferencePhone: String = "", chatChannel: String = "", planID: Int64? = nil) {
        self.conferenceURL = conferenceURL
        self.conferencePhone = conferencePhone
        self.chatChannel = chatChannel
        self.planID = planID
    }
}

/// Everything the response rules know about one major incident.
public struct ResponseState: Sendable, Equatable {
    public var incidentID: UInt64
    /// false: an ordinary incident (every response command is refused until it is declared).
    public var major: Bool
    public var status: IncidentStatus
    public var bridge: Bridge
    /// In the order they were first asked.
    public var requests: [ResponderRequest]
    public var roles: [RoleHolding]
    public var subscribers: [UInt64]
    public var channels: [String]

    public init(
        incidentID: UInt64, major: Bool = true, status: IncidentStatus = .triggered, bridge: Bridge = Bridge(),
        requests: [ResponderRequest] = [], roles: [RoleHolding] = [], subscribers: [UInt64] = [], channels: [String] = []
    ) {
        self.incidentID = incidentID
        self.major = major
        self.status = status
        self.bridge = bridge
        self.requests = requests
        self.roles = roles
        self.subscribers = subscribers
        self.channels = channels
    }

    public func request(of user: UInt64) -> ResponderRequest? { requests.first { $0.user == user } }
    public func holders(of role: Role) -> [UInt64] { roles.filter { $0.role == role }.map(\.user) }
}

/// A response plan with its targets already resolved to people (who is on call is the caller's
/// question, answered at `now` before the command).
public struct ResolvedPlan: Sendable, Equatable {
    public var id: Int64
    public var name: String
    public var bridge: Bridge
    public var message: String
    public var timeoutSeconds: UInt32
    /// In the plan's order, each with the role the plan gives them (a person is asked once, for
    /// the first role the plan gives them).
    public var responders: [(role: Role?, users: [UInt64])]
    public var subscribers: [UInt64]
    public var channels: [String]

    public init(
        id: Int64, name: String, bridge: Bridge, message: String, timeoutSeconds: UInt32, responders: [(role: Role?, users: [UInt64])],
        subscribers: [UInt64], channels: [String]
    ) {
        self.id = id
        self.name = name
        self.bridge = bridge
        self.message = message
        self.timeoutSeconds = timeoutSeconds
        self.responders = responders
        self.subscribers = subscribers
        self.channels = channels
    }

    public static func == (a: ResolvedPlan, b: ResolvedPlan) -> Bool {
        a.id == b.id && a.name == b.name && a.bridge == b.bridge && a.message == b.message && a.timeoutSeconds == b.timeoutSeconds
            && a.responders.map(\.role) == b.responders.map(\.role) && a.responders.map(\.users) == b.responders.map(\.users)
            && a.subscribers == b.subscribers && a.channels == b.channels
    }
}

/// What can happen to a major incident's response.
public enum ResponseCommand: Sendable, Equatable {
    case applyPlan(ResolvedPlan, actor: String)
    case requestResponders(users: [UInt64], message: String, role: Role?, timeoutSeconds: UInt32, actor: String)
    case answer(user: UInt64, join: Bool, actor: String)
    case assignRole(Role, user: UInt64, actor: String)
    case relinquishRole(Role, user: UInt64, actor: String)
    case postStatusUpdate(text: String, actor: String)
    case subscribe(users: [UInt64], channels: [String], actor: String)
    case unsubscribe(users: [UInt64], channels: [String], actor: String)
    /// Children are linked to this major incident (the children's own checks are the caller's).
    case link(children: [UInt64], merge: Bool, actor: String)
    /// Due work: pending requests whose timeout has passed get no answer.
    case expireRequests
    /// The major incident was resolved: pending requests end, cancelled.
    case incidentResolved(actor: String)
}

/// What the shell does besides saving the new state.
public enum ResponseEffect: Sendable, Equatable {
    case timeline(TimelineEntry)
    /// Page these people (their own rules apply, minute zero included) with the incident as it
    /// is after the command and the response's details plus `details`.
    case page(users: [UInt64], reason: NotifyReason, details: [String: String])
    /// Post to every subscribed chat channel, with the same snapshot as the command's pages.
    case postToChannels(reason: NotifyReason, details: [String: String])
    /// Keep a status update (its own record, besides the timeline).
    case recordStatusUpdate(author: String, text: String, at: Millis)
}

public struct ResponseTransition: Sendable, Equatable {
    public var state: ResponseState
    public var effects: [ResponseEffect]

    public init(state: ResponseState, effects: [ResponseEffect]) {
        self.state = state
        self.effects = effects
    }

    /// The people paged by this transition, in order (tests, logs).
    public var paged: [UInt64] {
        effects.flatMap { effect -> [UInt64] in
            if case let .page(users, _, _) = effect { return users }
            return []
        }
    }
}
