import KlaxonDomain
import KlaxonTestSupport
import Testing

/// 10,000 random incident lifecycles — random policies, settings, actions and times, timers
/// fired the way the service fires them (due ones, earliest first) — checking the invariants of
/// PRODUCT.md after every step.
@Suite struct IncidentSimulationTests {
    @Test func invariantsHoldOverTenThousandLifecycles() async throws {
        var rng = SplitMix(state: 0x5EED)
        var steps = 0
        var transitions: [TimelineType: Int] = [:]
        for lifecycle in 0..<10_000 {
            if lifecycle % 200 == 0 { await Task.yield() }  // share the 2 cooperative threads with other suites
            let levelCount = Int.random(in: 1...4, using: &rng)
            let levels = (0..<levelCount).map { _ in
                EscalationLevel(
                    delaySeconds: UInt32.random(in: 1...900, using: &rng),
                    targets: (0..<Int.random(in: 1...10, using: &rng)).map { _ in
                        Int.random(in: 0..<5, using: &rng) == 0 ? .schedule(UInt64.random(in: 1...3, using: &rng))
                            : .user(UInt64.random(in: 1...12, using: &rng))
                    })
            }
            let policy = EscalationPolicy(levels: levels, numLoops: Int.random(in: 0...3, using: &rng))
            #expect(policy.violations().isEmpty)
            let settings = IncidentSettings(
                ackTimeoutSeconds: Bool.random(using: &rng) ? 0 : UInt32.random(in: 1...1800, using: &rng),
                autoResolveSeconds: Int.random(in: 0..<4, using: &rng) == 0 ? UInt32.random(in: 60...7200, using: &rng) : 0)
            // Schedule 1 (UTC): user 100 in every even hour of the day; 2 and 3 are unknown.
            let evenHours = Schedule(timeZone: "UTC", layers: [ScheduleLayer(
                users: [100], rotationVirtualStart: 0, turnLengthSeconds: 86_400,
                restrictions: stride(from: 0, to: 24, by: 2).map { .daily(startSecondOfDay: $0 * 3600, durationSeconds: 3600) })])
            let core = IncidentCore(policy: policy, settings: settings, schedules: [1: evenHours])
            var now: Millis = 1_800_000_000_000 + Millis.random(in: 0..<86_400_000, using: &rng)
            var state = try core.apply(.trigger, to: IncidentState(urgency: Bool.random(using: &rng) ? .high : .low), now: now).state
            try check(state, core: core, lifecycle: lifecycle)

            for _ in 0..<Int.random(in: 1...30, using: &rng) {
                now += Millis.random(in: 0...900_000, using: &rng)
                // Fire every due timer, earliest first, as the timer managers would.
                while let (due, timer) = nextTimer(state), due <= now {
                    let transition = try core.apply(timer, to: state, now: due)
                    record(transition, into: &transitions)
                    #expect(transition.state != state || transition.effects.isEmpty, "a timer that changes nothing writes nothing")
                    if state.status == .resolved { #expect(transition.effects.isEmpty, "no timer fires for a resolved incident") }
                    state = transition.state
                    try check(state, core: core, lifecycle: lifecycle)
                    steps += 1
                }
                let command = randomCommand(state, policy: policy, rng: &rng)
                do {
                    let transition = try core.apply(command, to: state, now: now)
                    if command != .escalationTimerFired {
                        #expect(state.status != .resolved, "an action on a resolved incident must fail")
                    } else if state.status == .resolved {
                        #expect(transition.effects.isEmpty && transition.state == state)
                    }
                    record(transition, into: &transitions)
                    state = transition.state
                } catch let error {
                    switch error {
                    case .failedPrecondition: #expect(state.status == .resolved || { if case .snooze = command { true } else { false } }())
                    case .invalidArgument: break
                    }
                }
                try check(state, core: core, lifecycle: lifecycle)
                steps += 1
                if state.status == .resolved, Bool.random(using: &rng) { break }
            }
        }
        #expect(steps > 100_000)
        // The simulation reached every rule, not just the easy ones.
        for type: TimelineType in [.assign, .acknowledge, .ackTimeout, .escalate, .repeatEscalationPath, .exhaustEscalationPath, .reassign, .snooze, .resolve, .note] {
            #expect(transitions[type, default: 0] > 0, "never saw \(type)")
        }
    }

    func nextTimer(_ state: IncidentState) -> (Millis, IncidentCommand)? {
        [(state.escalateAt, IncidentCommand.escalationTimerFired), (state.ackTimeoutAt, .ackTimeoutFired),
         (state.autoResolveAt, .autoResolveTimerFired)]
            .compactMap { instant, command in instant.map { ($0, command) } }
            .min { $0.0 < $1.0 }
    }

    func record(_ transition: IncidentTransition, into counts: inout [TimelineType: Int]) {
        for case let .timeline(entry) in transition.effects { counts[entry.type, default: 0] += 1 }
    }

    func randomCommand(_ state: IncidentState, policy: EscalationPolicy, rng: inout SplitMix) -> IncidentCommand {
        switch Int.random(in: 0..<20, using: &rng) {
        case 0..<7: return .acknowledge(user: UInt64.random(in: 1...12, using: &rng), actor: "user")
        case 7: return .resolve(actor: "user", reason: "")
        case 8: return .reassign(users: (0..<Int.random(in: 0...11, using: &rng)).map { _ in UInt64.random(in: 1...12, using: &rng) }, actor: "user")
        case 9: return .reassignToPolicy(actor: "user")
        case 10: return .escalate(level: Int.random(in: 0...(policy.levels.count + 1), using: &rng), actor: "user")
        case 11...12: return .snooze(seconds: UInt32.random(in: 0...700_000, using: &rng), actor: "user")
        case 13: return .note(text: Bool.random(using: &rng) ? "looking" : "", actor: "user")
        default: return .escalationTimerFired  // a stray poke: must be harmless when not due
        }
    }

    func check(_ state: IncidentState, core: IncidentCore, lifecycle: Int) throws {
        // Built only when an expectation fails (the comments are autoclosures).
        var context: String { "lifecycle \(lifecycle): \(state)" }
        #expect(core.policy.levels.allSatisfy { $0.targets.count <= EscalationLevel.maxTargets }, "\(context)")
        #expect(Set(state.assignees).count == state.assignees.count, "duplicate assignees: \(context)")
        switch state.status {
        case .triggered:
            #expect(!state.assignees.isEmpty || state.escalateAt != nil || state.exhausted,
                    "a triggered incident needs an assignee or a pending escalation: \(context)")
            #expect(state.ackTimeoutAt == nil && state.openAcknowledgements.isEmpty, "\(context)")
            if state.urgency == .low { #expect(state.escalateAt == nil, "low urgency escalated: \(context)") }
        case .acknowledged:
            #expect(state.escalateAt == nil, "escalation pending while acknowledged: \(context)")
            let latest = try #require(state.openAcknowledgements.map(\.at).max(), "acknowledged without an acknowledgement: \(context)")
            if let snooze = state.snoozedUntil {
                #expect(state.ackTimeoutAt == snooze, "\(context)")
            } else if core.settings.ackTimeoutSeconds > 0 {
                #expect(state.ackTimeoutAt == latest + Millis(core.settings.ackTimeoutSeconds) * 1000,
                        "ack timeout is not latest ack + T: \(context)")
            } else {
                #expect(state.ackTimeoutAt == nil, "\(context)")
            }
        case .resolved:
            #expect(state.escalateAt == nil && state.ackTimeoutAt == nil && state.autoResolveAt == nil && state.snoozedUntil == nil,
                    "a resolved incident keeps a timer: \(context)")
        }
    }
}
