/// Responder requests: pending → joined | declined | no_answer (at the timeout) | cancelled (the
/// major incident resolved). Asking pages the person with reason `responder_request`.
extension ResponseCore {
    /// Asks `users` (re-opening a declined, unanswered or cancelled request; a person who joined
    /// is not asked again) and pages those asked.
    static func request(
        _ users: [UInt64], message: String, role: Role?, timeoutSeconds: UInt32, actor: String, _ step: inout ResponseStep
    ) {
        var asked: [UInt64] = []
        for user in users where !asked.contains(user) {
            let fresh = ResponderRequest(
                user: user, state: .pending, role: role, message: message, requestedBy: actor, requestedAt: step.now,
                timeoutAt: step.now + Millis(timeoutSeconds) * 1000)
            if let index = step.state.requests.firstIndex(where: { $0.user == user }) {
                guard step.state.requests[index].state != .joined else { continue }
                step.state.requests[index] = fresh
            } else {
                step.state.requests.append(fresh)
            }
            asked.append(user)
            step.timeline(.responderRequested, actor, [
                "user": String(user), "role": role?.rawValue ?? "", "message": message, "timeout_seconds": String(timeoutSeconds),
            ])
        }
        guard !asked.isEmpty else { return }
        var details = ["response.message": message]
        if let role { details["response.requested_role"] = role.rawValue }
        step.effects.append(.page(users: asked, reason: .responderRequest, details: details))
    }

    /// A person's answer; joining with a role asked for gives them that role.
    static func answer(user: UInt64, join: Bool, actor: String, _ step: inout ResponseStep) throws(IncidentCommandError) {
        guard let index = step.state.requests.firstIndex(where: { $0.user == user }) else {
            throw .failedPrecondition("user \(user) was not asked to join incident \(step.state.incidentID)")
        }
        let state: RequestState = join ? .joined : .declined
        guard step.state.requests[index].state != state else { return }
        step.state.requests[index].state = state
        step.state.requests[index].answeredAt = step.now
        step.timeline(join ? .responderJoined : .responderDeclined, actor, ["user": String(user)])
        if join, let role = step.state.requests[index].role {
            assign(role, to: user, actor: actor, &step)
        }
    }

    /// Pending requests past their timeout: no answer (timelined at the timeout instant).
    static func expireRequests(_ step: inout ResponseStep) {
        for index in step.state.requests.indices
        where step.state.requests[index].state == .pending && step.state.requests[index].timeoutAt <= step.now {
            step.state.requests[index].state = .noAnswer
            step.timeline(.responderNoAnswer, "klaxon", ["user": String(step.state.requests[index].user)], at: step.state.requests[index].timeoutAt)
        }
    }

    /// The incident resolved: nobody is waited for any more.
    static func cancelPending(actor: String, _ step: inout ResponseStep) {
        step.state.status = .resolved
        for index in step.state.requests.indices where step.state.requests[index].state == .pending {
            step.state.requests[index].state = .cancelled
            step.state.requests[index].answeredAt = step.now
            step.timeline(.responderCancelled, actor, ["user": String(step.state.requests[index].user), "reason": "resolved"])
        }
    }

    /// The earliest instant a pending request times out (the due-work loop's next wake-up).
    public static func nextTimeout(_ state: ResponseState) -> Millis? {
        state.requests.filter { $0.state == .pending }.map(\.timeoutAt).min()
    }
}
