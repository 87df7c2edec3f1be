extension IncidentCore {
    /// A new incident: level 1 of the policy, its minute-zero pages, the auto-resolve timer.
    /// Applied once: a redelivered trigger changes nothing.
    func trigger(_ step: inout RuleStep) {
        let state = step.state
        guard !state.triggerApplied else { return }
        step.state.triggerApplied = true
        if settings.autoResolveSeconds > 0 { step.state.autoResolveAt = step.now + Millis(settings.autoResolveSeconds) * 1000 }
        if let held = state.heldUntil {
            guard held > step.now, state.status == .triggered else {
                step.state.heldUntil = nil
                enterLevel(1, loop: 0, reason: .assigned, actor: "system", &step)
                return
            }
            // In maintenance: created and visible, nobody paged, no escalation until it ends.
            step.timeline(.maintenanceHeld, "system", ["until": RFC3339.string(millis: held)])
            return
        }
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

extension IncidentCore {
    /// The maintenance window holding the incident ended: a still-triggered incident starts
    /// escalation at level 1 (its users paged with reason `assigned`); an acknowledged one gets
    /// its level-1 users without a page (escalation waits for the acknowledgement, as always).
    func maintenanceEnded(_ step: inout RuleStep) {
        guard let held = step.state.heldUntil, held <= step.now else { return }
        step.state.heldUntil = nil
        step.timeline(.maintenanceReleased, "system", [:])
        if step.state.status == .triggered {
            enterLevel(1, loop: 0, reason: .assigned, actor: "system", &step)
        } else {
            let users = assignees(ofLevel: 1, at: step.now)
            guard !users.isEmpty else { return }
            step.state.assignees = users
            step.state.level = 1
            step.timeline(.assign, "system", ["level": "1", "loop": "0", "users": users.map(String.init).joined(separator: ",")])
        }
    }
}
