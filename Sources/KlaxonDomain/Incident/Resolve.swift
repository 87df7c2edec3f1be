extension IncidentCore {
    func resolve(actor: String, reason: String, _ step: inout RuleStep) {
        resolveIncident(&step.state)
        step.timeline(.resolve, actor, reason.isEmpty ? [:] : ["reason": reason])
    }

    func autoResolveTimerFired(_ step: inout RuleStep) {
        guard let due = step.state.autoResolveAt, due <= step.now else { return }
        resolveIncident(&step.state)
        step.timeline(.resolve, "system", ["reason": "auto-resolve timeout"])
    }

    /// Resolved: every timer off; later timers do nothing and actions are refused.
    func resolveIncident(_ state: inout IncidentState) {
        state.status = .resolved
        state.escalateAt = nil
        state.ackTimeoutAt = nil
        state.snoozedUntil = nil
        state.autoResolveAt = nil
    }
}
