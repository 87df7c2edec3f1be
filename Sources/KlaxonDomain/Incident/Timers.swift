extension IncidentCore {
    /// The timer of `state` due first at `now`, if any (an escalation and an auto-resolve may
    /// both be due after a long outage: the earliest goes first).
    public static func dueTimer(of state: IncidentState, at now: Millis) -> IncidentCommand? {
        guard state.status != .resolved else { return nil }
        let candidates: [(Millis?, IncidentCommand)] = [
            (state.escalateAt, .escalationTimerFired), (state.ackTimeoutAt, .ackTimeoutFired), (state.autoResolveAt, .autoResolveTimerFired),
            (state.heldUntil, .maintenanceEnded),
        ]
        return candidates.compactMap { at, command in at.map { ($0, command) } }
            .filter { $0.0 <= now }.min { $0.0 < $1.0 }?.1
    }

    /// Fires every timer of the incident due at `now`, earliest first, as one transition. A due
    /// timer the rules decline is stale (a state edited by hand, say): it is cleared, or it would
    /// stay due and fire forever. Timers fire at `now`, the real time: after an outage the
    /// timeline shows when paging actually happened, and follow-up timers count from then.
    public func fireDueTimers(_ state: IncidentState, now: Millis) throws(IncidentCommandError) -> IncidentTransition {
        var current = IncidentTransition(state: state, effects: [])
        for _ in 0..<64 {
            guard let command = Self.dueTimer(of: current.state, at: now) else { break }
            let next = try apply(command, to: current.state, now: now)
            if next.state == current.state {
                switch command {
                case .escalationTimerFired: current.state.escalateAt = nil
                case .ackTimeoutFired: current.state.ackTimeoutAt = nil
                case .maintenanceEnded: current.state.heldUntil = nil
                default: current.state.autoResolveAt = nil
                }
                continue
            }
            current = IncidentTransition(state: next.state, effects: current.effects + next.effects)
        }
        return current
    }
}
