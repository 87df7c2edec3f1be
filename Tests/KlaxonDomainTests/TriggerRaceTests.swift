import KlaxonDomain
import Testing

/// PRODUCT.md, "Assignment and escalation": the trigger's assignment and minute-zero pages happen
/// whatever arrived first; only the escalation state follows what happened. Seed example: A and B
/// on level 1, ack timeout 5 min, A acknowledges one second after the trigger, before Assignment
/// processed it.
@Suite struct TriggerRaceTests {
    typealias T = IncidentCoreTests
    static let alice = T.alice, bob = T.bob, carol = T.carol

    static func notifies(_ transition: IncidentTransition) -> [IncidentEffect] {
        transition.effects.filter { if case .notify = $0 { true } else { false } }
    }

    @Test func acknowledgeBeforeTheTriggerWasProcessedStillPagesLevelOne() throws {
        let core = T.core(delay: 600, ackTimeout: 300)
        let fresh = IncidentState(urgency: .high)  // as Ingest wrote it
        let acked = try core.apply(.acknowledge(user: Self.alice, actor: "alice"), to: fresh, now: T.at(2, 0, 1))
        // Level 1 assigned and paged with a `triggered` snapshot, then the acknowledgement.
        #expect(Self.notifies(acked) == [
            .notify(user: Self.alice, reason: .assigned, status: .triggered),
            .notify(user: Self.bob, reason: .assigned, status: .triggered),
        ])
        #expect(T.timelineTypes(acked) == [.assign, .acknowledge])
        #expect(acked.state.status == .acknowledged)
        #expect(acked.state.assignees == [Self.alice, Self.bob])
        #expect(acked.state.level == 1)
        #expect(acked.state.escalateAt == nil, "an acknowledged incident does not escalate")
        #expect(acked.state.ackTimeoutAt == T.at(2, 5, 1))
        #expect(acked.state.triggerApplied)

        // The IncidentTriggered message arrives later: already applied, nothing more happens.
        let late = try core.apply(.trigger, to: acked.state, now: T.at(2, 0, 2))
        #expect(late.effects.isEmpty)
        #expect(late.state == acked.state)

        // The ack timeout re-pages every assignee of level 1 and escalation continues from there.
        let timedOut = try core.apply(.ackTimeoutFired, to: acked.state, now: T.at(2, 5, 1))
        #expect(Self.notifies(timedOut) == [
            .notify(user: Self.alice, reason: .ackTimeout, status: .triggered),
            .notify(user: Self.bob, reason: .ackTimeout, status: .triggered),
        ])
        #expect(timedOut.state.escalateAt == T.at(2, 15, 1))
        let escalated = try core.apply(.escalationTimerFired, to: timedOut.state, now: T.at(2, 15, 1))
        #expect(escalated.state.level == 2)
        #expect(escalated.state.assignees == [Self.carol])
    }

    @Test func monitorAcknowledgeWithoutUserKeepsLevelOneAsAssignees() throws {
        let core = T.core(ackTimeout: 300)
        let acked = try core.apply(.acknowledge(user: nil, actor: "integration"), to: IncidentState(urgency: .high), now: T.at(3, 0))
        #expect(Self.notifies(acked).count == 2)
        #expect(acked.state.assignees == [Self.alice, Self.bob])
        #expect(acked.state.status == .acknowledged)
        #expect(acked.state.escalateAt == nil)
    }

    @Test func resolveBeforeTheTriggerOnlyGetsMinuteZeroPages() throws {
        let core = T.core(autoResolve: 3600)
        let resolved = try core.apply(.resolve(actor: "integration", reason: "resolve event"), to: IncidentState(urgency: .high), now: T.at(4, 0))
        #expect(Self.notifies(resolved) == [
            .notify(user: Self.alice, reason: .assigned, status: .triggered),
            .notify(user: Self.bob, reason: .assigned, status: .triggered),
        ])
        #expect(T.timelineTypes(resolved) == [.assign, .resolve])
        #expect(resolved.state.status == .resolved)
        #expect(resolved.state.escalateAt == nil)
        #expect(resolved.state.ackTimeoutAt == nil)
        #expect(resolved.state.autoResolveAt == nil)
        // The late trigger message changes nothing and is not refused.
        let late = try core.apply(.trigger, to: resolved.state, now: T.at(4, 0, 2))
        #expect(late.effects.isEmpty)
    }

    @Test func reassignBeforeTheTriggerPagesLevelOneThenTheNewAssignees() throws {
        let core = T.core()
        let reassigned = try core.apply(.reassign(users: [Self.carol], actor: "lead"), to: IncidentState(urgency: .high), now: T.at(5, 0))
        #expect(Self.notifies(reassigned) == [
            .notify(user: Self.alice, reason: .assigned, status: .triggered),
            .notify(user: Self.bob, reason: .assigned, status: .triggered),
            .notify(user: Self.carol, reason: .reassigned, status: .triggered),
        ])
        #expect(reassigned.state.assignees == [Self.carol], "delayed rules of level 1 are skipped: reassigned")
        #expect(reassigned.state.escalateAt == nil)
    }

    @Test func escalationEntryNamesBothLevelsAndTheReason() throws {
        let core = T.core(delay: 600)
        let triggered = try core.apply(.trigger, to: IncidentState(urgency: .high), now: T.at(6, 0))
        let escalated = try core.apply(.escalationTimerFired, to: triggered.state, now: T.at(6, 10))
        let entry = try #require(escalated.effects.compactMap { if case let .timeline(e) = $0, e.type == .escalate { e } else { nil } }.first)
        #expect(entry.details == ["from_level": "1", "to_level": "2", "reason": "not acknowledged within 600 s"])
        #expect(T.timelineTypes(escalated) == [.escalate, .assign])
    }
}
