extension IncidentCore {
    /// A new incident: level 1 of the policy, its minute-zero pages, the auto-resolve timer.
    /// Applied once: a redelivered trigger changes nothing.
    func trigger(_ step: inout RuleStep) {
        let state = step.state
        guard !state.triggerApplied else { return }
        step.state.triggerApplied = true
        if settings.autoResolveSeconds > 0 { step.state.autoResolveAt = step.now + Millis(settings.autoResolveSeconds) * 1000 }
        enterLevel(1, loop: 0, reason: .assigned, actor: "system", &step)
        // Only rows written before the trigger rule existed can be acknowledged or resolved
        // here: page level 1 all the same, keep who acknowledged, and start no escalation.
        for user in state.assignees where !step.state.assignees.contains(user) { step.state.assignees.append(user) }
        if state.status != .triggered {
            step.state.status = state.status
            step.state.escalateAt = nil
            if state.status == .resolved { step.state.autoResolveAt = nil }
        }
    }
}
