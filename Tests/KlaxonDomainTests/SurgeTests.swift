import KlaxonDomain
import Testing

/// The surge detector (issue 14, point 2): a pure function of counts and time, driven here by a
/// manual sequence of instants.
@Suite struct SurgeTests {
    let settings = SurgeSettings(windowMs: 300_000, minIncidents: 50, rateFactor: 10, minServices: 3, quietPeriodMs: 600_000)
    let start: Millis = 1_800_000_000_000

    @Test func anAbsoluteCountAcrossEnoughServicesOpensOneSurge() {
        // 312 incidents across 7 services in 5 min, after an hour of 24 (2 a window): a surge, named with its numbers.
        let counts = SurgeCounts(inWindow: 312, servicesInWindow: 7, trailingHour: 24)
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
        // 49 across 3 after a quiet hour: under the floor N.
        let below = SurgeCounts(inWindow: 49, servicesInWindow: 3, trailingHour: 0)
        #expect(SurgeDetector.evaluate(below, state: .quiet, settings: settings, now: start).decision == .none)
        // The 50th: the floor N, and 50 ≥ 10 × the quiet hour's one a window.
        let at = SurgeCounts(inWindow: 50, servicesInWindow: 3, trailingHour: 0)
        #expect(SurgeDetector.evaluate(at, state: .quiet, settings: settings, now: start).decision
            == .open(summary: "Surge: 50 incidents across 3 services in 5 min"))
    }

    @Test func theFloorIsAlwaysRequiredAndTheRateTestComesOnTop() {
        // PRODUCT.md: N (50) is the floor and always required; K (10) is an additional condition.
        // Five services, after a quiet hour (trailing hour: 0), each in a 5-minute window.
        let quietHour = 0
        // 12 incidents after a quiet hour: 12 ≥ 10 × 1 passes the rate test, but not the floor.
        #expect(SurgeDetector.evaluate(
            SurgeCounts(inWindow: 12, servicesInWindow: 5, trailingHour: quietHour), state: .quiet, settings: settings, now: start
        ).decision == .none)
        // 60 after a quiet hour: above the floor and 60 ≥ 10 × 1.
        #expect(SurgeDetector.evaluate(
            SurgeCounts(inWindow: 60, servicesInWindow: 5, trailingHour: quietHour), state: .quiet, settings: settings, now: start
        ).decision == .open(summary: "Surge: 60 incidents across 5 services in 5 min"))
        // 60 when the trailing hour had 600 (50 expected per 5 min; 10× is 500): busy as usual.
        #expect(SurgeDetector.evaluate(
            SurgeCounts(inWindow: 60, servicesInWindow: 5, trailingHour: 600), state: .quiet, settings: settings, now: start
        ).decision == .none)
        // With the rate test off (K = 0), N alone decides.
        var floorOnly = settings
        floorOnly.rateFactor = 0
        #expect(SurgeDetector.isAbove(SurgeCounts(inWindow: 50, servicesInWindow: 5, trailingHour: 6_000), floorOnly))
        #expect(!SurgeDetector.isAbove(SurgeCounts(inWindow: 49, servicesInWindow: 5, trailingHour: 0), floorOnly))
        // A floor of 0 is refused: it would let the rate test alone declare a P1.
        var noFloor = settings
        noFloor.minIncidents = 0
        #expect(noFloor.violations.map(\.field) == ["min_incidents"])
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
