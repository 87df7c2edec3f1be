import KlaxonDomain
import Testing

/// PRODUCT.md, "Notifications": retry by time, not by count; 4xx (not 408/429) fails at once;
/// Retry-After honoured; the last retry at the window's end at the latest.
@Suite struct DeliveryRuleTests {
    static let window = DeliveryWindow(lengthMs: 900_000)  // the default 15 minutes, backoff 1 s → 60 s

    @Test func retriesWithBackoffUntilTheWindowEnds() {
        let first: Millis = 1_000_000
        let failure = DeliveryFailure(description: "HTTP 503")
        #expect(NotificationCore.afterFailedAttempt(failure, attempts: 1, firstAttemptAt: first, finishedAt: first, window: Self.window)
            == .retry(at: first + 1_000))
        #expect(NotificationCore.afterFailedAttempt(failure, attempts: 3, firstAttemptAt: first, finishedAt: first + 10_000, window: Self.window)
            == .retry(at: first + 14_000))
        #expect(NotificationCore.afterFailedAttempt(failure, attempts: 20, firstAttemptAt: first, finishedAt: first + 100_000, window: Self.window)
            == .retry(at: first + 160_000), "capped at 60 s")
        #expect(NotificationCore.afterFailedAttempt(failure, attempts: 30, firstAttemptAt: first, finishedAt: first + 880_000, window: Self.window)
            == .retry(at: first + 900_000), "the last retry at the window's end")
        #expect(NotificationCore.afterFailedAttempt(failure, attempts: 31, firstAttemptAt: first, finishedAt: first + 900_000, window: Self.window)
            == .fail(reason: "HTTP 503; delivery window of 900 s passed"))
    }

    @Test func permanentRefusalsFailAtOnceAndRetryAfterIsHonoured() {
        #expect(NotificationCore.afterFailedAttempt(
            DeliveryFailure(description: "HTTP 404", permanent: true), attempts: 1, firstAttemptAt: 0, finishedAt: 0, window: Self.window)
            == .fail(reason: "HTTP 404"))
        #expect(NotificationCore.afterFailedAttempt(
            DeliveryFailure(description: "HTTP 429", retryAfterMs: 30_000), attempts: 1, firstAttemptAt: 0, finishedAt: 5, window: Self.window)
            == .retry(at: 30_005))
    }
}
