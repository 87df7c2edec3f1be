import KlaxonDomain
import Testing

@Suite struct BackoffTests {
    /// PRODUCT.md, "Notifications": from 1 s, doubling, capped at 60 s.
    @Test func pagesBackOffFromOneSecondDoublingToAMinute() {
        let delays = (1...9).map { Backoff.delay(afterFailures: $0, first: 1_000, cap: 60_000) }
        #expect(delays == [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000])
    }

    @Test func hugeFailureCountsStayAtTheCap() {
        #expect(Backoff.delay(afterFailures: 1_000, first: 1_000, cap: 300_000) == 300_000)
        #expect(Backoff.delay(afterFailures: 0, first: 200, cap: 60_000) == 200)
    }
}
