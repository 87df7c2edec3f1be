/// The rules of a major incident's response (PRODUCT.md, "Major incident response"): pure,
/// `now` comes in as a value, like `IncidentCore`. `ResponseStore` loads a `ResponseState`,
/// calls `apply`, saves the transition; API handlers, chat commands, the surge loop and due work
/// only translate and call. Each rule has its file: ResponderRequests (asking, answering,
/// expiry, cancellation), Roles, StatusUpdates (with subscriptions), and this one (plans,
/// links, and the rule that closes a resolved response).
public enum ResponseCore {
    public static let defaultTimeoutSeconds: UInt32 = 300
    public static let timeoutRange: ClosedRange<UInt32> = 5...86_400
    public static let maxStatusUpdateLength = 4000
    public static let maxTitleLength = 1024

    public static func apply(_ command: ResponseCommand, to state: ResponseState, now: Millis) throws(IncidentCommandError)
        -> ResponseTransition
    {
        var step = ResponseStep(state: state, now: now)
        switch command {
        case .expireRequests:
            expireRequests(&step)
            return step.transition
        case let .incidentResolved(actor):
            cancelPending(actor: actor, &step)
            return step.transition
        default:
            try requireOpen(state)
        }
        switch command {
        case .expireRequests, .incidentResolved: break  // above
        case let .applyPlan(plan, actor): applyPlan(plan, actor: actor, &step)
        case let .requestResponders(users, message, role, timeoutSeconds, actor):
            guard !users.isEmpty else { throw .invalidArgument(field: "user_ids", description: "name at least one user, schedule or policy") }
            guard timeoutRange.contains(timeoutSeconds) else {
                throw .invalidArgument(field: "timeout_seconds", description: "must be 5 to 86400")
            }
            request(users, message: message, role: role, timeoutSeconds: timeoutSeconds, actor: actor, &step)
        case let .answer(user, join, actor): try answer(user: user, join: join, actor: actor, &step)
        case let .assignRole(role, user, actor): assign(role, to: user, actor: actor, &step)
        case let .relinquishRole(role, user, actor): try relinquish(role, user: user, actor: actor, &step)
        case let .postStatusUpdate(text, actor): try postStatusUpdate(text, actor: actor, &step)
        case let .subscribe(users, channels, actor): subscribe(users: users, channels: channels, actor: actor, &step)
        case let .unsubscribe(users, channels, actor): unsubscribe(users: users, channels: channels, actor: actor, &step)
        case let .link(children, merge, actor):
            step.timeline(.linked, actor, ["children": children.map(String.init).joined(separator: ","), "merged": merge ? "true" : "false"])
        }
        return step.transition
    }

    /// A response runs only on a major incident that is still open: an ordinary incident must be
    /// declared first; a resolved one's response is closed (its record stays readable).
    public static func requireOpen(_ state: ResponseState) throws(IncidentCommandError) {
        guard state.major else {
            throw .failedPrecondition(
                "incident \(state.incidentID) is not a major incident: declare it first (klaxon incident declare \(state.incidentID))")
        }
        guard state.status != .resolved else {
            throw .failedPrecondition("major incident \(state.incidentID) is resolved: its response is closed")
        }
    }

    /// A plan's bridge and chat channel, its subscribers, and a request to each of its responders
    /// (once per person, with the first role the plan gives them).
    static func applyPlan(_ plan: ResolvedPlan, actor: String, _ step: inout ResponseStep) {
        var bridge = plan.bridge
        bridge.planID = plan.id
        step.state.bridge = bridge
        step.addSubscribers(plan.subscribers)
        step.addChannels(plan.channels)
        step.timeline(.responsePlanApplied, actor, [
            "plan": plan.name, "conference_url": bridge.conferenceURL, "conference_phone": bridge.conferencePhone,
        ])
        var seen = Set<UInt64>()
        for (role, users) in plan.responders {
            let fresh = users.filter { seen.insert($0).inserted }
            guard !fresh.isEmpty else { continue }
            request(fresh, message: plan.message, role: role, timeoutSeconds: plan.timeoutSeconds, actor: actor, &step)
        }
    }
}

/// One transition being built: the next state and its effects, at `now`.
struct ResponseStep {
    var state: ResponseState
    var effects: [ResponseEffect] = []
    let now: Millis

    init(state: ResponseState, now: Millis) {
        self.state = state
        self.now = now
    }

    var transition: ResponseTransition { ResponseTransition(state: state, effects: effects) }

    mutating func timeline(_ type: TimelineType, _ actor: String, _ details: [String: String] = [:], at: Millis? = nil) {
        effects.append(.timeline(TimelineEntry(at: at ?? now, type: type, actor: actor, details: details)))
    }

    mutating func addSubscribers(_ users: [UInt64]) {
        for user in users where !state.subscribers.contains(user) { state.subscribers.append(user) }
    }

    mutating func addChannels(_ urls: [String]) {
        for url in urls where !state.channels.contains(url) { state.channels.append(url) }
    }
}
