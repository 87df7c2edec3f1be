import Foundation
import KlaxonDomain
import Testing

/// Heartbeat monitors, maintenance windows and event rules (issue 27, points 3–5): the pure
/// rules, with PRODUCT.md's semantics and real time zones.
@Suite struct MonitorRulesTests {
    static func at(_ text: String) -> Millis { RFC3339.millis(text)! }
    static func cron(_ text: String) -> CronSchedule { try! CronSchedule.parse(text).get() }

    // MARK: Cron

    @Test func cronKeepsTheLocalHourAcrossTheSpringDSTChange() {
        let paris = TimeZone(identifier: "Europe/Paris")!
        let daily = Self.cron("0 9 * * *")
        // 2027-03-28: Paris moves from UTC+1 to UTC+2 at 01:00 UTC.
        #expect(daily.next(after: Self.at("2027-03-27T08:00:00Z"), in: paris) == Self.at("2027-03-28T07:00:00Z"))
        #expect(daily.next(after: Self.at("2027-03-26T08:30:00Z"), in: paris) == Self.at("2027-03-27T08:00:00Z"))
        // A time the change skips (02:30) runs just past it, once.
        let skipped = Self.cron("30 2 * * *")
        #expect(skipped.next(after: Self.at("2027-03-27T12:00:00Z"), in: paris) == Self.at("2027-03-28T01:30:00Z"))
        // And in the autumn (2027-10-31, back to UTC+1) the 09:00 run is at 08:00 UTC.
        #expect(daily.next(after: Self.at("2027-10-30T08:00:00Z"), in: paris) == Self.at("2027-10-31T08:00:00Z"))
    }

    @Test func cronFieldsListsRangesStepsNamesAndTheDayRule() {
        let utc = TimeZone(identifier: "UTC")!
        // Weekdays at 09:15 and 17:15: Friday 17:15 → Monday 09:15.
        let weekdays = Self.cron("15 9,17 * * mon-fri")
        #expect(weekdays.next(after: Self.at("2027-01-08T17:15:00Z"), in: utc) == Self.at("2027-01-11T09:15:00Z"))
        let quarter = Self.cron("*/15 * * * *")
        #expect(quarter.next(after: Self.at("2027-01-08T17:16:00Z"), in: utc) == Self.at("2027-01-08T17:30:00Z"))
        // Day of month and day of week both restricted: either matches (the 1st, or a Monday).
        let either = Self.cron("0 0 1 * 1")
        #expect(either.next(after: Self.at("2027-02-01T00:00:00Z"), in: utc) == Self.at("2027-02-08T00:00:00Z"))
        #expect(CronSchedule.parse("0 9 * *").failureDescription?.contains("5 fields") == true)
        #expect(CronSchedule.parse("61 * * * *").failureDescription?.contains("minute") == true)
        #expect(Self.cron("0 0 30 2 *").next(after: Self.at("2027-01-01T00:00:00Z"), in: utc) == nil)
    }

    // MARK: Heartbeats

    @Test func aPeriodMonitorIsDownAfterPeriodPlusGraceAndTheNextSuccessResolves() {
        var monitor = HeartbeatMonitor(periodSeconds: 60, graceSeconds: 10)
        let t0 = Self.at("2027-01-01T00:00:00Z")
        // New: nothing expected until the first ping.
        #expect(monitor.deadline == nil)
        #expect(monitor.deadlinePassed(at: t0 + 3_600_000) == nil)
        #expect(monitor.ping(.success, body: "ok", at: t0) == nil)
        #expect(monitor.deadline == t0 + 70_000)
        #expect(monitor.deadlinePassed(at: t0 + 69_999) == nil)
        guard case let .trigger(reason)? = monitor.deadlinePassed(at: t0 + 70_000) else { Issue.record("no trigger"); return }
        #expect(reason.contains("no success ping since 2027-01-01T00:00:00"))
        #expect(monitor.status == .down)
        // Down stays down (no second trigger) until a success, which resolves.
        #expect(monitor.deadlinePassed(at: t0 + 200_000) == nil)
        #expect(monitor.ping(.log, body: "still broken", at: t0 + 210_000) == nil)
        #expect(monitor.lastPingBody == "still broken")
        #expect(monitor.ping(.success, body: "", at: t0 + 220_000) == .resolve)
        #expect(monitor.deadline == t0 + 290_000)
    }

    @Test func startTimeoutFailureAndExitCodes() {
        var monitor = HeartbeatMonitor(periodSeconds: 3600, graceSeconds: 60, startTimeoutSeconds: 300)
        let t0 = Self.at("2027-01-01T00:00:00Z")
        #expect(monitor.ping(.start, body: "", at: t0) == nil)
        #expect(monitor.status == .started)
        #expect(monitor.deadline == t0 + 300_000)
        guard case let .trigger(reason)? = monitor.deadlinePassed(at: t0 + 300_000) else { Issue.record("no trigger"); return }
        #expect(reason.contains("start timeout of 300 s"))
        #expect(monitor.ping(.exitCode(0), body: "", at: t0 + 400_000) == .resolve)
        #expect(monitor.ping(.exitCode(3), body: "disk full", at: t0 + 500_000) == .trigger(reason: "the job exited with code 3"))
        #expect(monitor.ping(.fail, body: "", at: t0 + 510_000) == nil)  // already down
        #expect(monitor.ping(.success, body: "", at: t0 + 520_000) == .resolve)
        #expect(monitor.ping(.fail, body: String(repeating: "x", count: 20_000), at: t0 + 530_000) == .trigger(reason: "the job reported a failure"))
        #expect(monitor.lastPingBody.utf8.count == 10 * 1024)
    }

    @Test func aCronMonitorExpectsTheNextRunPlusGraceInItsZone() {
        var monitor = HeartbeatMonitor(periodSeconds: 0, cron: Self.cron("0 9 * * *"), timeZone: "Europe/Paris", graceSeconds: 300)
        _ = monitor.ping(.success, body: "", at: Self.at("2027-03-27T08:01:00Z"))  // 09:01 Paris, winter time
        #expect(monitor.deadline == Self.at("2027-03-28T07:05:00Z"))             // 09:05 Paris, summer time
    }

    @Test func anOutageMovesPassedDeadlinesAWholePeriodPastTheRestart() {
        var monitor = HeartbeatMonitor(periodSeconds: 60, graceSeconds: 10)
        let t0 = Self.at("2027-01-01T00:00:00Z")
        _ = monitor.ping(.success, body: "", at: t0)
        // Klaxon stopped watching at t0 + 30 s and is back at t0 + 5 min.
        monitor.afterOutage(lastChecked: t0 + 30_000, now: t0 + 300_000)
        #expect(monitor.deadline == t0 + 370_000)
        #expect(monitor.deadlinePassed(at: t0 + 369_999) == nil)
        #expect(monitor.deadlinePassed(at: t0 + 370_000) != nil)
    }

    // MARK: Maintenance windows

    @Test func aWeeklyWindowAcrossTheMarchDSTChangeStartsAtTheSameLocalHour() {
        // Saturdays 23:00–01:00 New York; the US moves to summer time on 2027-03-14.
        let rule = try! Recurrence.parse("FREQ=WEEKLY;BYDAY=SA").get()
        let window = MaintenanceWindow(
            id: 1, startsAt: Self.at("2027-03-07T04:00:00Z"), endsAt: Self.at("2027-03-07T06:00:00Z"), recurrence: rule,
            timeZone: "America/New_York")
        let starts = window.occurrences(from: Self.at("2027-03-01T00:00:00Z"), to: Self.at("2027-03-25T00:00:00Z")).map(\.start)
        #expect(starts == [Self.at("2027-03-07T04:00:00Z"), Self.at("2027-03-14T04:00:00Z"), Self.at("2027-03-21T03:00:00Z")])
        #expect(window.active(at: Self.at("2027-03-21T03:30:00Z"))?.end == Self.at("2027-03-21T05:00:00Z"))
        #expect(window.active(at: Self.at("2027-03-21T05:00:00Z")) == nil)
        // A year on, skipping ahead finds the same local hour.
        #expect(window.active(at: Self.at("2028-03-19T03:30:00Z")) != nil)  // Saturday 2028-03-18 23:30 EDT
        #expect(window.phase(at: Self.at("2027-03-01T00:00:00Z")) == "future")
        #expect(try! Recurrence.parse("FREQ=WEEKLY;COUNT=2").get().count == 2)
        #expect(Recurrence.parse("FREQ=HOURLY").failureDescription?.contains("FREQ") == true)
    }

    @Test func holdDropMatchersAndTheUnionOfOverlappingWindows() {
        let t0 = Self.at("2027-01-01T10:00:00Z")
        let notCritical = try! EventCondition.make(field: "severity", op: "!=", value: "critical").get()
        let a = MaintenanceWindow(id: 1, startsAt: t0, endsAt: t0 + 3_600_000, matchers: [notCritical])
        let b = MaintenanceWindow(id: 2, startsAt: t0 + 1_800_000, endsAt: t0 + 7_200_000)
        let warning: EventFields = ["severity": "warning", "summary": "disk 91%"]
        let critical: EventFields = ["severity": "critical", "summary": "checkout down"]
        #expect(Maintenance.decide([a, b], warning, at: t0 + 60_000) == .hold(until: t0 + 7_200_000, windowIDs: [1]))
        #expect(Maintenance.decide([a], critical, at: t0 + 60_000) == nil)
        #expect(Maintenance.decide([a, b], warning, at: t0 + 7_200_000) == nil)
        let drop = MaintenanceWindow(id: 3, startsAt: t0, endsAt: t0 + 60_000, mode: .drop)
        #expect(Maintenance.decide([a, drop], warning, at: t0) == .drop(windowID: 3))
        // Ended by hand: the occurrence ends then.
        var ended = a
        ended.endedAt = t0 + 600_000
        #expect(ended.active(at: t0 + 600_000) == nil)
        #expect(ended.phase(at: t0 + 700_000) == "past")
    }

    /// A hold window: the incident is created, nobody is paged and nothing escalates; at the
    /// window's end level 1 is paged with reason `assigned`, the timeline says
    /// `maintenance_released`, and escalation starts from there.
    @Test func aHeldIncidentPagesLevelOneWhenTheWindowEnds() throws {
        let core = IncidentCore(
            policy: EscalationPolicy(levels: [EscalationLevel(delaySeconds: 600, targets: [.user(1)]), EscalationLevel(delaySeconds: 600, targets: [.user(2)])], numLoops: 0),
            settings: IncidentSettings(ackTimeoutSeconds: 300, autoResolveSeconds: 0))
        let t0 = Self.at("2027-01-01T10:00:00Z")
        var state = IncidentState(urgency: .high)
        state.heldUntil = t0 + 7_200_000
        let held = try core.apply(.trigger, to: state, now: t0)
        #expect(IncidentCoreTests.notified(held) == [])
        #expect(IncidentCoreTests.timelineTypes(held) == [.maintenanceHeld])
        #expect(held.state.escalateAt == nil && held.state.assignees.isEmpty && held.state.triggerApplied)
        #expect(IncidentCore.dueTimer(of: held.state, at: t0 + 7_199_999) == nil)
        let released = try core.fireDueTimers(held.state, now: t0 + 7_200_000)
        #expect(released.effects.contains { if case .notify(1, .assigned, .triggered) = $0 { true } else { false } })
        #expect(IncidentCoreTests.timelineTypes(released).first == .maintenanceReleased)
        #expect(released.state.heldUntil == nil && released.state.level == 1 && released.state.escalateAt == t0 + 7_800_000)
        // A resolve during the hold applies, and nothing is paged at the end.
        let resolved = try core.apply(.resolve(actor: "integration", reason: "resolve event"), to: held.state, now: t0 + 60_000)
        #expect(resolved.state.status == .resolved && resolved.state.heldUntil == nil)
        #expect(IncidentCore.dueTimer(of: resolved.state, at: t0 + 7_200_000) == nil)
        // A window that already ended when the trigger is applied holds nothing.
        let late = try core.apply(.trigger, to: state, now: t0 + 7_200_000)
        #expect(IncidentCoreTests.notified(late) == [1] && late.state.heldUntil == nil)
    }

    // MARK: Event rules

    static func rules(_ json: String) -> [EventRule] { try! EventRules.parse(json: json).get() }

    @Test func theFirstMatchingRuleWinsUnlessItSaysContinue() {
        let rules = Self.rules("""
            [{"name": "test hosts", "conditions": [{"field": "source", "op": "=~", "value": "^test-"}], "actions": {"suppress": true}},
             {"conditions": [{"field": "labels.team", "op": "=", "value": "db"}], "actions": {"priority": "P1", "note": "paged for {{labels.team}}"}, "continue": true},
             {"conditions": [{"field": "custom_details.region", "op": "exists"}], "actions": {"dedup_key": "{{labels.alertname}}/{{custom_details.region}}", "severity": "critical"}},
             {"conditions": [], "actions": {"urgency": "low"}}]
            """)
        let suppressed = EventRules.evaluate(rules, ["source": "test-7", "labels.team": "db"])
        #expect(suppressed.suppressedBy == 1 && suppressed.matched == [1])
        let db = EventRules.evaluate(rules, ["source": "db-1", "labels.team": "db", "labels.alertname": "Lag", "custom_details.region": "eu"])
        #expect(db.matched == [2, 3])
        #expect(db.priority == "P1" && db.notes == ["paged for db"])
        #expect(db.dedupKey == "Lag/eu" && db.severity == "critical" && db.fields["severity"] == "critical")
        #expect(db.urgency == nil)  // rule 3 matched and did not continue
        let other = EventRules.evaluate(rules, ["source": "web-1"])
        #expect(other.matched == [4] && other.urgency == "low" && !other.suppressed)
        let absent = EventRules.evaluate(rules, ["source": "web-1", "labels.team": "web"])
        #expect(absent.matched == [4])
    }

    @Test func operatorsAndProblemsNamedByPath() {
        func holds(_ op: String, _ value: String, _ fields: EventFields) -> Bool {
            try! EventCondition.make(field: "summary", op: op, value: value).get().holds(for: fields)
        }
        #expect(holds("=", "disk", ["summary": "disk"]) && !holds("=", "disk", ["summary": "disk 91%"]))
        #expect(holds("!=", "disk", ["summary": "cpu"]) && holds("!=", "disk", [:]))
        #expect(holds("=~", "disk \\d+%", ["summary": "host: disk 91%"]) && !holds("=~", "^disk", ["summary": "host: disk"]))
        #expect(holds("!~", "^disk", ["summary": "host: disk"]))
        #expect(holds("exists", "", ["summary": "x"]) && !holds("exists", "", [:]))
        guard case let .failure(problems) = EventRules.parse(json: """
            [{"conditions": [{"field": "summary", "op": "~", "value": "x"}, {"field": "source", "op": "=~", "value": "("}],
              "actions": {"priority": "P9", "explode": true}}]
            """) else { Issue.record("accepted"); return }
        let fields = Set(problems.items.map(\.field))
        #expect(fields == ["rules[0].conditions[0].op", "rules[0].conditions[1].value", "rules[0].actions.priority", "rules[0].actions.explode"])
        // The stored form reads back the same.
        let rules = Self.rules(#"[{"name":"n","conditions":[{"field":"a","op":"exists"}],"actions":{"route":"db"},"continue":true}]"#)
        #expect(Self.rules(EventRules.json(rules)) == rules)
    }
}

extension Result {
    var failureDescription: String? {
        if case let .failure(error) = self { return (error as? ConditionProblem)?.description ?? "\(error)" }
        return nil
    }
}
