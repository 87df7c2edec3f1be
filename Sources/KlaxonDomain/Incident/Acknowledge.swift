extension IncidentCore {
    /// Acknowledged by `user` (nil: the monitor). The ack timeout is measured from the latest
    /// acknowledgement: every new one moves it. No escalation while acknowledged.
    func acknowledge(user: UInt64?, actor: String, _ step: inout RuleStep) {
        if let user, !step.state.assignees.contains(user) { step.state.assignees.append(user) }
        step.state.status = .acknowledged
        step.state.acknowledgements.append(Acknowledgement(user: user, actor: actor, at: step.now))
        step.state.escalateAt = nil
        step.state.snoozedUntil = nil
        step.state.ackTimeoutAt = settings.ackTimeoutSeconds > 0 ? step.now + Millis(settings.ackTimeoutSeconds) * 1000 : nil
        step.timeline(.acknowledge, actor, user.map { ["user": String($0)] } ?? [:])
    }

    /// Snooze an acknowledged incident: its end replaces the ack timeout.
    func snooze(seconds: UInt32, actor: String, _ step: inout RuleStep) throws(IncidentCommandError) {
        guard Self.snoozeRange.contains(seconds) else {
            throw .invalidArgument(field: "seconds", description: "must be 1–\(Self.snoozeRange.upperBound) (7 days), got \(seconds)")
        }
        guard step.state.status == .acknowledged else { throw .failedPrecondition("only an acknowledged incident can be snoozed") }
        let until = step.now + Millis(seconds) * 1000
        step.state.snoozedUntil = until
        step.state.ackTimeoutAt = until
        step.timeline(.snooze, actor, ["until_ms": String(until)])
    }

    /// Back to triggered: every assignee of the current level is paged again and the level's
    /// escalation timer starts again.
    /// Unacknowledged by `actor`: back to triggered at once, the assignees paged again (reason
    /// `ack_timeout`: the acknowledgement no longer holds) and the level's escalation restarted.
    func unacknowledge(actor: String, _ step: inout RuleStep) {
        guard step.state.status == .acknowledged else { return }
        step.backToTriggered()
        step.timeline(.unacknowledge, actor)
        for user in step.state.assignees { step.notify(user, .ackTimeout) }
        step.state.escalateAt = escalationInstant(level: step.state.level, urgency: step.state.urgency, now: step.now)
    }

    func ackTimeoutFired(_ step: inout RuleStep) {
        guard step.state.status == .acknowledged, let due = step.state.ackTimeoutAt, due <= step.now else { return }
        let wasSnooze = step.state.snoozedUntil != nil
        step.backToTriggered()
        step.timeline(.ackTimeout, "system", wasSnooze ? ["reason": "snooze ended"] : [:])
        for user in step.state.assignees { step.notify(user, .ackTimeout) }
        step.state.escalateAt = escalationInstant(level: step.state.level, urgency: step.state.urgency, now: step.now)
    }
}
