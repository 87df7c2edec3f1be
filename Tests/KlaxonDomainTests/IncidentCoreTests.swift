import KlaxonDomain
import Testing

/// The incident rules with a manual clock: every instant is a value the test chooses.
@Suite struct IncidentCoreTests {
    /// 2026-11-21 00:00:00 UTC; `at(2, 4)` is 02:04.
    static let day: Millis = 1_795_219_200_000
    static func at(_ hour: Int, _ minute: Int, _ second: Int = 0) -> Millis {
        day + Millis(hour * 3600 + minute * 60 + second) * 1000
    }

    static let alice: UInt64 = 1, bob: UInt64 = 2, carol: UInt64 = 3, dave: UInt64 = 4

    static func core(
        levels: [[EscalationTarget]] = [[.user(alice), .user(bob)], [.user(carol)]], delay: UInt32 = 600,
        loops: Int = 0, ackTimeout: UInt32 = 300, autoResolve: UInt32 = 0
    ) -> IncidentCore {
        IncidentCore(
            policy: EscalationPolicy(levels: levels.map { EscalationLevel(delaySeconds: delay, targets: $0) }, numLoops: loops),
            settings: IncidentSettings(ackTimeoutSeconds: ackTimeout, autoResolveSeconds: autoResolve))  // no schedules: nobody on call
    }

    static func notified(_ transition: IncidentTransition) -> [UInt64] {
        transition.effects.compactMap { if case let .notify(user, _, _) = $0 { user } else { nil } }
    }

    static func timelineTypes(_ transition: IncidentTransition) -> [TimelineType] {
        transition.effects.compactMap { if case let .timeline(entry) = $0 { entry.type } else { nil } }
    }

    /// PRODUCT.md's seed example: T = 5 min, A acks 02:00, B acks 02:04 → nothing at 02:05,
    /// back to triggered at 02:09, both re-notified.
    @Test func ackTimeoutRunsFromTheLatestAcknowledgement() throws {
        let core = Self.core(ackTimeout: 300)
        var state = try core.apply(.trigger, to: IncidentState(urgency: .high), now: Self.at(1, 58)).state
        #expect(state.assignees == [Self.alice, Self.bob])

        state = try core.apply(.acknowledge(user: Self.alice, actor: "alice"), to: state, now: Self.at(2, 0)).state
        #expect(state.status == .acknowledged)
        #expect(state.ackTimeoutAt == Self.at(2, 5))
        #expect(state.escalateAt == nil)
        state = try core.apply(.acknowledge(user: Self.bob, actor: "bob"), to: state, now: Self.at(2, 4)).state
        #expect(state.ackTimeoutAt == Self.at(2, 9))
        #expect(state.openAcknowledgements.map(\.user) == [Self.alice, Self.bob])

        let at0205 = try core.apply(.ackTimeoutFired, to: state, now: Self.at(2, 5))
        #expect(at0205.state == state)
        #expect(at0205.effects.isEmpty)

        let at0209 = try core.apply(.ackTimeoutFired, to: state, now: Self.at(2, 9))
        #expect(at0209.state.status == .triggered)
        #expect(Self.timelineTypes(at0209) == [.ackTimeout])
        #expect(at0209.effects.filter { $0 == .notify(user: Self.alice, reason: .ackTimeout, status: .triggered) || $0 == .notify(user: Self.bob, reason: .ackTimeout, status: .triggered) }.count == 2)
        #expect(at0209.state.openAcknowledgements.isEmpty)
        #expect(at0209.state.acknowledgements.count == 2)  // kept in history
        #expect(at0209.state.acknowledgements.allSatisfy { $0.closedAt == Self.at(2, 9) })
        #expect(at0209.state.escalateAt == Self.at(2, 19))  // level 1's 10-minute timer starts again
        #expect(at0209.state.ackTimeoutAt == nil)
    }

    /// Opsgenie's unacknowledge: back to triggered at once, as the ack timeout would be at 02:05
    /// — both assignees paged again, level 1's timer restarted — and nothing on an incident that
    /// is not acknowledged.
    @Test func unacknowledgeIsTheAckTimeoutNow() throws {
        let core = Self.core(ackTimeout: 300)
        var state = try core.apply(.trigger, to: IncidentState(urgency: .high), now: Self.at(1, 58)).state
        #expect(try core.apply(.unacknowledge(actor: "integration"), to: state, now: Self.at(1, 59)).effects.isEmpty)
        state = try core.apply(.acknowledge(user: nil, actor: "integration"), to: state, now: Self.at(2, 0)).state
        let undone = try core.apply(.unacknowledge(actor: "integration"), to: state, now: Self.at(2, 1))
        #expect(undone.state.status == .triggered && undone.state.ackTimeoutAt == nil)
        #expect(Self.timelineTypes(undone) == [.unacknowledge])
        #expect(Self.notified(undone) == [Self.alice, Self.bob])
        #expect(undone.state.escalateAt == Self.at(2, 11))
        #expect(undone.state.openAcknowledgements.isEmpty && undone.state.acknowledgements.count == 1)
    }

    @Test func escalatesThroughLevelsThenLoopsThenExhausts() throws {
        let core = Self.core(levels: [[.user(Self.alice)], [.user(Self.bob), .user(Self.carol)]], delay: 60, loops: 1)
        var now = Self.at(3, 0)
        var transition = try core.apply(.trigger, to: IncidentState(urgency: .high), now: now)
        #expect(Self.notified(transition) == [Self.alice])
        now += 60_000
        transition = try core.apply(.escalationTimerFired, to: transition.state, now: now)
        #expect(transition.state.level == 2)
        #expect(transition.state.assignees == [Self.bob, Self.carol])
        #expect(transition.effects.contains(.notify(user: Self.bob, reason: .escalated, status: .triggered)))
        now += 60_000
        transition = try core.apply(.escalationTimerFired, to: transition.state, now: now)
        #expect(transition.state.level == 1)
        #expect(transition.state.loop == 1)
        #expect(Self.timelineTypes(transition).contains(.repeatEscalationPath))
        #expect(transition.state.assignees == [Self.alice])
        now += 60_000
        transition = try core.apply(.escalationTimerFired, to: transition.state, now: now)
        #expect(transition.state.level == 2)
        now += 60_000
        transition = try core.apply(.escalationTimerFired, to: transition.state, now: now)
        #expect(transition.state.level == 2)  // stays on the last level
        #expect(transition.state.exhausted)
        #expect(transition.state.escalateAt == nil)
        #expect(Self.timelineTypes(transition) == [.exhaustEscalationPath])
        #expect(Self.notified(transition).isEmpty)
    }

    @Test func emptyLevelIsSkippedAtOnce() throws {
        let core = Self.core(levels: [[.schedule(9)], [.user(Self.dave)]])
        let transition = try core.apply(.trigger, to: IncidentState(urgency: .high), now: Self.at(4, 0))
        #expect(Self.timelineTypes(transition) == [.escalate, .assign])
        #expect(transition.state.level == 2)
        #expect(Self.notified(transition) == [Self.dave])
    }

    @Test func lowUrgencyDoesNotEscalate() throws {
        let core = Self.core()
        let state = try core.apply(.trigger, to: IncidentState(urgency: .low), now: Self.at(5, 0)).state
        #expect(state.assignees == [Self.alice, Self.bob])
        #expect(state.escalateAt == nil)
    }

    @Test func acknowledgingUserBecomesAssigned() throws {
        let core = Self.core()
        let state = try core.apply(.trigger, to: IncidentState(urgency: .high), now: Self.at(6, 0)).state
        let acked = try core.apply(.acknowledge(user: Self.dave, actor: "dave"), to: state, now: Self.at(6, 1)).state
        #expect(acked.assignees == [Self.alice, Self.bob, Self.dave])
    }

    @Test func snoozeReplacesTheAckTimeout() throws {
        let core = Self.core(ackTimeout: 300)
        var state = try core.apply(.trigger, to: IncidentState(urgency: .high), now: Self.at(7, 0)).state
        #expect(throws: IncidentCommandError.failedPrecondition("only an acknowledged incident can be snoozed")) {
            try core.apply(.snooze(seconds: 600, actor: "alice"), to: state, now: Self.at(7, 1))
        }
        state = try core.apply(.acknowledge(user: Self.alice, actor: "alice"), to: state, now: Self.at(7, 1)).state
        state = try core.apply(.snooze(seconds: 3600, actor: "alice"), to: state, now: Self.at(7, 2)).state
        #expect(state.ackTimeoutAt == Self.at(8, 2))
        #expect(try core.apply(.ackTimeoutFired, to: state, now: Self.at(7, 6)).effects.isEmpty)  // the old timeout is gone
        #expect(try core.apply(.ackTimeoutFired, to: state, now: Self.at(8, 2)).state.status == .triggered)
        for seconds: UInt32 in [0, 7 * 24 * 3600 + 1] {
            #expect(throws: IncidentCommandError.self) { try core.apply(.snooze(seconds: seconds, actor: "a"), to: state, now: Self.at(7, 3)) }
        }
    }

    @Test func reassignToUsers() throws {
        let core = Self.core()
        var state = try core.apply(.trigger, to: IncidentState(urgency: .high), now: Self.at(9, 0)).state
        state = try core.apply(.acknowledge(user: Self.alice, actor: "alice"), to: state, now: Self.at(9, 1)).state
        let transition = try core.apply(.reassign(users: [Self.dave, Self.carol, Self.dave], actor: "alice"), to: state, now: Self.at(9, 2))
        #expect(transition.state.status == .triggered)
        #expect(transition.state.assignees == [Self.dave, Self.carol])
        #expect(transition.state.openAcknowledgements.isEmpty)
        #expect(Self.notified(transition) == [Self.dave, Self.carol])
        #expect(throws: IncidentCommandError.invalidArgument(field: "users", description: "at most 10 users, got 11")) {
            try core.apply(.reassign(users: Array(1...11), actor: "a"), to: state, now: Self.at(9, 3))
        }
    }

    @Test func manualEscalationToLevelN() throws {
        let core = Self.core()
        let state = try core.apply(.trigger, to: IncidentState(urgency: .high), now: Self.at(10, 0)).state
        let transition = try core.apply(.escalate(level: 2, actor: "alice"), to: state, now: Self.at(10, 1))
        #expect(transition.state.level == 2)
        #expect(transition.effects.contains(.notify(user: Self.carol, reason: .manual, status: .triggered)))
        #expect(throws: IncidentCommandError.invalidArgument(field: "level", description: "must be 1–2, got 3")) {
            try core.apply(.escalate(level: 3, actor: "a"), to: state, now: Self.at(10, 1))
        }
    }

    @Test func resolvedIncidentRefusesActionsAndIgnoresTimers() throws {
        let core = Self.core(autoResolve: 3600)
        var state = try core.apply(.trigger, to: IncidentState(urgency: .high), now: Self.at(11, 0)).state
        #expect(state.autoResolveAt == Self.at(12, 0))
        let resolved = try core.apply(.autoResolveTimerFired, to: state, now: Self.at(12, 0))
        #expect(resolved.state.status == .resolved)
        #expect(Self.timelineTypes(resolved) == [.resolve])
        state = resolved.state
        #expect(state.escalateAt == nil && state.ackTimeoutAt == nil && state.autoResolveAt == nil)
        for action: IncidentCommand in [
            .acknowledge(user: 1, actor: "a"), .resolve(actor: "a", reason: ""), .reassign(users: [1], actor: "a"),
            .escalate(level: 1, actor: "a"), .snooze(seconds: 60, actor: "a"), .note(text: "n", actor: "a"),
            .reassignToPolicy(actor: "a"),
        ] {
            #expect(throws: IncidentCommandError.failedPrecondition("the incident is resolved")) {
                try core.apply(action, to: state, now: Self.at(12, 1))
            }
        }
        for timer: IncidentCommand in [.escalationTimerFired, .ackTimeoutFired, .autoResolveTimerFired] {
            let transition = try core.apply(timer, to: state, now: Self.at(13, 0))
            #expect(transition.state == state)
            #expect(transition.effects.isEmpty)
        }
    }

    @Test func policyLimits() {
        let eleven = EscalationPolicy(levels: [
            EscalationLevel(delaySeconds: 60, targets: [.user(1)]),
            EscalationLevel(delaySeconds: 60, targets: (1...11).map { .user($0) }),
        ])
        #expect(eleven.violations().map(\.field) == ["levels[1].targets"])
        #expect(eleven.violations().first?.description == "level 2 must have 1–10 targets, got 11")
        let ten = EscalationPolicy(levels: [EscalationLevel(delaySeconds: 60, targets: (1...10).map { .user($0) })], numLoops: 9)
        #expect(ten.violations().isEmpty)
        #expect(EscalationPolicy(levels: [], numLoops: 10).violations().map(\.field) == ["levels", "num_loops"])
        #expect(EscalationPolicy(levels: [EscalationLevel(delaySeconds: 0, targets: [.user(1)])]).violations().map(\.field)
            == ["levels[0].escalation_delay_seconds"])
    }
}
