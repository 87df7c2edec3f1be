extension IncidentCore {
    /// Assigned by hand to 1–10 users, outside the policy: they are responsible until they act
    /// or someone reassigns (no escalation timer).
    func reassign(users: [UInt64], actor: String, _ step: inout RuleStep) throws(IncidentCommandError) {
        var unique: [UInt64] = []
        for user in users where !unique.contains(user) { unique.append(user) }
        guard !unique.isEmpty else { throw .invalidArgument(field: "users", description: "at least one user is required") }
        guard unique.count <= Self.maxReassignUsers else {
            throw .invalidArgument(field: "users", description: "at most \(Self.maxReassignUsers) users, got \(unique.count)")
        }
        step.backToTriggered()
        step.state.assignees = unique
        step.state.level = 0
        step.state.loop = 0
        step.state.exhausted = false
        step.state.escalateAt = nil
        step.timeline(.reassign, actor, ["users": unique.map(String.init).joined(separator: ",")])
        for user in unique { step.notify(user, .reassigned) }
    }

    /// The policy starts over at level 1.
    func reassignToPolicy(actor: String, _ step: inout RuleStep) {
        step.backToTriggered()
        step.state.exhausted = false
        step.timeline(.reassign, actor, ["policy": "restart at level 1"])
        enterLevel(1, loop: 0, reason: .reassigned, actor: actor, &step)
    }
}
