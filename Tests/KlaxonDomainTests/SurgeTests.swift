import KlaxonDomain
import Testing

/// The surge detector (issue 14, point 2): a pure function of counts and time, driven here by a
/// manual sequence of instants.
@Suite struct SurgeTests {
    let settings = SurgeSettings(windowMs: 300_000, minIncidents: 50, rateFactor: 10, minServices: 3, quietPeriodMs: 600_000)
    let start: Millis = 1_800_000_000_000

    @Test func anAbsoluteCountAcrossEnoughServicesOpensOneSurge() {
        // 312 incidents across 7 services in 5 min: a surge, named with its numbers.
        let counts = SurgeCounts(inWindow: 312, servicesInWindow: 7, trailingHour: 400)
        let first = SurgeDetector.evaluate(counts, state: .quiet, settings: settings, now: start)
        #expect(first.decision == .open(summary: "Surge: 312 incidents across 7 services in 5 min"))
        #expect(first.state == .surging(since: start, lastAboveAt: start))
        // Evaluated again (another replica, a later tick): it goes on, it does not open a second one.
        let again = SurgeDetector.evaluate(counts, state: first.state, settings: settings, now: start + 5_000)
        #expect(again.decision == .continues)
        #expect(again.state == .surging(since: start, lastAboveAt: start + 5_000))
    }

    @Test func tooFewServicesIsNotASurge() {
        // 500 incidents from two services is those services' problem, not a surge across services.
        let counts = SurgeCounts(inWindow: 500, servicesInWindow: 2, trailingHour: 0)
        #expect(SurgeDetector.evaluate(counts, state: .quiet, settings: settings, now: start).decision == .none)
        // 49 across 3, with a busy trailing hour (600/h → 50 expected per 5 min; 10× is 500): no.
        let below = SurgeCounts(inWindow: 49, servicesInWindow: 3, trailingHour: 600)
        #expect(SurgeDetector.evaluate(below, state: .quiet, settings: settings, now: start).decision == .none)
        // The 50th: the absolute threshold N.
        let at = SurgeCounts(inWindow: 50, servicesInWindow: 3, trailingHour: 600)
        #expect(SurgeDetector.evaluate(at, state: .quiet, settings: settings, now: start).decision
            == .open(summary: "Surge: 50 incidents across 3 services in 5 min"))
    }

    @Test func tenTimesTheTrailingHoursRateIsASurge() {
        // The trailing hour had 24 incidents: 2 per 5-minute window. K = 10 → 20 in the window.
        var rateOnly = settings
        rateOnly.minIncidents = 0
        #expect(!SurgeDetector.isAbove(SurgeCounts(inWindow: 19, servicesInWindow: 4, trailingHour: 24), rateOnly))
        #expect(SurgeDetector.isAbove(SurgeCounts(inWindow: 20, servicesInWindow: 4, trailingHour: 24), rateOnly))
        // After a silent hour the expectation is one a window, not zero: the first incidents are
        // not a surge, ten are.
        #expect(!SurgeDetector.isAbove(SurgeCounts(inWindow: 3, servicesInWindow: 3, trailingHour: 0), rateOnly))
        #expect(SurgeDetector.isAbove(SurgeCounts(inWindow: 10, servicesInWindow: 3, trailingHour: 0), rateOnly))
    }

    @Test func itEndsOnlyAfterAQuietPeriodWithoutFlapping() {
        let high = SurgeCounts(inWindow: 80, servicesInWindow: 4, trailingHour: 0)
        let low = SurgeCounts(inWindow: 5, servicesInWindow: 4, trailingHour: 0)
        var state = SurgeState.quiet
        var opened = 0, ended = 0
        // The rate hovers around the threshold every 30 s for 20 minutes, then stays low.
        var now = start
        for tick in 0..<40 {
            let counts = tick.isMultiple(of: 2) ? high : low
            let step = SurgeDetector.evaluate(counts, state: state, settings: settings, now: now)
            if case .open = step.decision { opened += 1 }
            if step.decision == .end { ended += 1 }
            state = step.state
            now += 30_000
        }
        #expect(opened == 1, "hovering at the threshold opens one major incident, not one per crossing")
        #expect(ended == 0)
        let lastAbove = start + 38 * 30_000
        #expect(state == .surging(since: start, lastAboveAt: lastAbove))
        // Low from here: still on just before the quiet period has passed, over at it.
        #expect(SurgeDetector.evaluate(low, state: state, settings: settings, now: lastAbove + 599_999).decision == .continues)
        let over = SurgeDetector.evaluate(low, state: state, settings: settings, now: lastAbove + 600_000)
        #expect(over.decision == .end && over.state == .quiet)
        // A new burst later is a new surge.
        #expect(SurgeDetector.evaluate(high, state: .quiet, settings: settings, now: lastAbove + 700_000).decision
            == .open(summary: "Surge: 80 incidents across 4 services in 5 min"))
    }

    @Test func disabledDetectsNothingAndEndsARunningSurge() {
        var off = settings
        off.enabled = false
        let high = SurgeCounts(inWindow: 900, servicesInWindow: 9, trailingHour: 0)
        #expect(SurgeDetector.evaluate(high, state: .quiet, settings: off, now: start).decision == .none)
        #expect(SurgeDetector.evaluate(high, state: .surging(since: start, lastAboveAt: start), settings: off, now: start + 1).decision == .end)
    }

    @Test func settingsAreValidatedFieldByField() {
        #expect(settings.violations.isEmpty)
        let bad = SurgeSettings(windowMs: 1_000, minIncidents: 0, rateFactor: 0, minServices: 0, quietPeriodMs: -1)
        #expect(bad.violations.map(\.field) == ["window_seconds", "min_incidents", "min_services", "quiet_period_seconds"])
    }
}
