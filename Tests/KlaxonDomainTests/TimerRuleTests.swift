import KlaxonDomain
import Testing

/// Which timer is due and what a stale one means: rules of the incident engine, not of the
/// service that polls for due incidents.
@Suite struct TimerRuleTests {
    typealias C = IncidentCoreTests

    @Test func everyDueTimerFiresEarliestFirstInOneTransition() throws {
        // 10 min levels, ack timeout 5 min, auto-resolve 2 h. Acknowledged at 0; nobody looks for
        // 3 hours (an outage): the ack timeout (5 min) fires first, then the auto-resolve (2 h).
        let core = C.core(ackTimeout: 300, autoResolve: 7200)
        var state = try core.apply(.trigger, to: IncidentState(urgency: .high), now: 0).state
        state = try core.apply(.acknowledge(user: C.alice, actor: "user:1"), to: state, now: 0).state
        #expect(IncidentCore.dueTimer(of: state, at: 299_999) == nil)
        #expect(IncidentCore.dueTimer(of: state, at: 300_000) == .ackTimeoutFired)
        let fired = try core.fireDueTimers(state, now: 3 * 3_600_000)
        let types = fired.effects.compactMap { if case let .timeline(entry) = $0 { entry.type } else { nil } }
        #expect(types.first == .ackTimeout)
        #expect(types.last == .resolve)
        #expect(fired.state.status == .resolved)
        #expect(IncidentCore.dueTimer(of: fired.state, at: .max) == nil, "nothing left due")
    }

    @Test func aStaleTimerIsClearedNotFiredForever() throws {
        // An escalation instant on an acknowledged incident (a row edited by hand): the rules
        // decline it, so it is cleared and nothing else changes.
        let core = C.core()
        var state = try core.apply(.trigger, to: IncidentState(urgency: .high), now: 0).state
        state = try core.apply(.acknowledge(user: C.alice, actor: "user:1"), to: state, now: 0).state
        state.escalateAt = 1_000
        let fired = try core.fireDueTimers(state, now: 2_000)
        #expect(fired.state.escalateAt == nil)
        #expect(fired.effects.isEmpty)
        #expect(fired.state.status == .acknowledged)
    }
}
