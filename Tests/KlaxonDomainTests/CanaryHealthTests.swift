import KlaxonDomain
import Testing

/// When the pipeline counts as stalled (issue 26, point 8): the canary starts a round every
/// interval (60 s by default); no completed round trip in two intervals is an outage.
@Suite struct CanaryHealthTests {
    let minute: Millis = 60_000
    let start: Millis = 1_800_000_000_000

    @Test func aRoundTripWithinTwoIntervalsIsHealthy() {
        let last = (startedAt: start, deliveredAt: start + 42)
        #expect(CanaryHealth.evaluate(intervalMs: minute, last: last, watchingSince: start, now: start + 42 + 119_000)
            == .healthy(roundTripMs: 42, agoMs: 119_000))
        #expect(CanaryHealth.evaluate(intervalMs: minute, last: last, watchingSince: start, now: start + 42 + 120_000).isReady)
        #expect("\(CanaryHealth.healthy(roundTripMs: 42, agoMs: 12_300))" == "canary round trip 0.042 s, completed 12 s ago")
    }

    @Test func noRoundTripInTwoIntervalsIsStalled() {
        let last = (startedAt: start, deliveredAt: start + 42)
        let health = CanaryHealth.evaluate(intervalMs: minute, last: last, watchingSince: start, now: start + 42 + 120_001)
        #expect(health == .stalled(lastAgoMs: 120_001, intervalMs: minute))
        #expect(!health.isReady)
        #expect("\(health)".contains("no canary round trip completed in the last 120 s (two intervals of 60 s; the last one 120 s ago)"))
    }

    @Test func aNewProcessWaitsTwoIntervalsForItsFirstRoundTrip() {
        #expect(CanaryHealth.evaluate(intervalMs: minute, last: nil, watchingSince: start, now: start + 120_000) == .waiting(sinceMs: 120_000))
        #expect(CanaryHealth.evaluate(intervalMs: minute, last: nil, watchingSince: start, now: start + 120_001)
            == .stalled(lastAgoMs: nil, intervalMs: minute))
        // A round trip another replica completed before this process started counts.
        let earlier = (startedAt: start - 30_000, deliveredAt: start - 29_950)
        #expect(CanaryHealth.evaluate(intervalMs: minute, last: earlier, watchingSince: start, now: start + 5_000)
            == .healthy(roundTripMs: 50, agoMs: 34_950))
    }

    @Test func offIsNeitherHealthyNorStalled() {
        let health = CanaryHealth.evaluate(intervalMs: 0, last: nil, watchingSince: start, now: start + 10 * minute)
        #expect(health == .off && health.isReady)
    }
}
