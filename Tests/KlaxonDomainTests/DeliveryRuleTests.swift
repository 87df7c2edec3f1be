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

/// PRODUCT.md: a newer notify request for the same incident and user supersedes the waiting
/// delayed notifications of older ones; minute zero never is, nor one being sent right now.
@Suite struct SupersedeRuleTests {
    static func waiting(_ id: String, request: String, minuteZero: Bool = false, requestedAt: Millis = 0, leaseUntil: Millis = 0) -> WaitingNotification {
        WaitingNotification(id: id, ruleID: 1, requestID: request, minuteZero: minuteZero, requestedAt: requestedAt, leaseUntil: leaseUntil)
    }

    @Test func onlyOlderWaitingDelayedOnesAreSuperseded() {
        let waiting = [
            Self.waiting("delayed-old", request: "r1"),
            Self.waiting("minute-zero-old", request: "r1", minuteZero: true),
            Self.waiting("being-sent", request: "r1", leaseUntil: 10_000),
            Self.waiting("own", request: "r2", requestedAt: 5_000),
            Self.waiting("newer", request: "r3", requestedAt: 9_000),
        ]
        let superseded = NotificationCore.superseded(waiting, byRequest: "r2", requestedAt: 5_000, now: 6_000)
        #expect(superseded.map(\.id) == ["delayed-old"])
    }
}
