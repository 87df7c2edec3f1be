extension IncidentCore {
    /// Escalated by hand to `level` (1-based), in the current loop.
    func escalate(to level: Int, actor: String, _ step: inout RuleStep) throws(IncidentCommandError) {
        guard (1...max(policy.levels.count, 1)).contains(level), !policy.levels.isEmpty else {
            throw .invalidArgument(field: "level", description: "must be 1–\(policy.levels.count), got \(level)")
        }
        step.backToTriggered()
        step.state.exhausted = false
        step.timeline(.escalate, actor, ["level": String(level), "manual": "true"])
        enterLevel(level, loop: step.state.loop, reason: .manual, actor: actor, &step)
    }

    /// The escalation delay of the current level elapsed while still triggered.
    func escalationTimerFired(_ step: inout RuleStep) {
        guard step.state.status == .triggered, let due = step.state.escalateAt, due <= step.now else { return }
        let isLastLevel = step.state.level >= policy.levels.count
        if isLastLevel && step.state.loop >= policy.numLoops {
            // Stays on the last level; nothing more will happen by itself.
            step.state.exhausted = true
            step.state.escalateAt = nil
            step.timeline(.exhaustEscalationPath, "system", ["level": String(step.state.level), "loop": String(step.state.loop)])
            return
        }
        let fromLevel = step.state.level
        let delay = policy.levels.indices.contains(fromLevel - 1) ? policy.levels[fromLevel - 1].delaySeconds : 0
        let mark = step.effects.count
        enterLevel(fromLevel + 1, loop: step.state.loop, reason: .escalated, actor: "system", &step)
        // Written before the assignment it causes, once the level it lands on is known.
        step.effects.insert(.timeline(TimelineEntry(
            at: step.now, type: .escalate, actor: "system",
            details: ["from_level": String(fromLevel), "to_level": String(step.state.level),
                      "reason": "not acknowledged within \(delay) s"])), at: mark)
    }

    /// When the incident moves on from `level`: after the level's delay; never for low urgency or
    /// outside the policy. The last level of the last loop waits its delay too, then records
    /// that the path is exhausted.
    func escalationInstant(level: Int, urgency: Urgency, now: Millis) -> Millis? {
        guard urgency == .high, level >= 1, level <= policy.levels.count else { return nil }
        return now + Millis(policy.levels[level - 1].delaySeconds) * 1000
    }

    /// Assigns `start` (1-based) at `startLoop`, skipping levels that resolve to nobody at once.
    /// Past the last level the path repeats while loops remain, else it is exhausted.
    func enterLevel(_ start: Int, loop startLoop: Int, reason: NotifyReason, actor: String, _ step: inout RuleStep) {
        var level = start
        var loop = startLoop
        var emptyInARow = 0
        let now = step.now
        while !policy.levels.isEmpty {
            if level > policy.levels.count {
                guard loop < policy.numLoops else { break }
                loop += 1
                level = 1
                step.timeline(.repeatEscalationPath, "system", ["loop": String(loop)])
            }
            let users = assignees(ofLevel: level, at: now)
            if users.isEmpty {
                step.timeline(.escalate, "system", ["level": String(level), "reason": "empty level"])
                emptyInARow += 1
                if emptyInARow >= policy.levels.count { break }  // a whole cycle with nobody: stop
                level += 1
                continue
            }
            step.state.assignees = users
            step.state.level = level
            step.state.loop = loop
            step.state.exhausted = false
            step.timeline(.assign, actor, ["level": String(level), "loop": String(loop), "users": users.map(String.init).joined(separator: ",")])
            for user in users { step.notify(user, reason) }
            step.state.escalateAt = escalationInstant(level: level, urgency: step.state.urgency, now: now)
            return
        }
        step.state.exhausted = true
        step.state.escalateAt = nil
        step.timeline(.exhaustEscalationPath, "system", ["reason": "nobody left to escalate to"])
    }
}
