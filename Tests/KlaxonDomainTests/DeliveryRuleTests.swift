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

/// The per-phone throttle (issue 25, point 5): one a minute, 5 SMS / 3 calls per 15 minutes.
@Suite struct ContactThrottleTests {
    let sms = ContactThrottle.rules(kind: "sms", smsPer15Minutes: 5, voicePer15Minutes: 3, gapMs: 60_000)
    let minute: Millis = 60_000

    @Test func oneAMinuteAndFivePerFifteenMinutes() {
        #expect(ContactThrottle.nextAllowed(sends: [], now: 0, rules: sms) == 0)
        #expect(ContactThrottle.nextAllowed(sends: [0], now: 1_000, rules: sms) == minute)
        // Four sends a minute apart: the fifth at minute 4 is allowed; a sixth waits for the first to leave the 15 minutes.
        let five: [Millis] = [0, minute, 2 * minute, 3 * minute, 4 * minute]
        #expect(ContactThrottle.nextAllowed(sends: Array(five.prefix(4)), now: 4 * minute, rules: sms) == 4 * minute)
        #expect(ContactThrottle.nextAllowed(sends: five, now: 5 * minute, rules: sms) == 15 * minute)
        #expect(ContactThrottle.nextAllowed(sends: five, now: 15 * minute, rules: sms) == 15 * minute)
        // Calls: three per 15 minutes.
        let voice = ContactThrottle.rules(kind: "phone", smsPer15Minutes: 5, voicePer15Minutes: 3, gapMs: minute)
        #expect(ContactThrottle.nextAllowed(sends: [0, 2 * minute, 4 * minute], now: 5 * minute, rules: voice) == 15 * minute)
        #expect(ContactThrottle.rules(kind: "webhook", smsPer15Minutes: 5, voicePer15Minutes: 3, gapMs: minute).isEmpty)
    }
}

/// Verified contact methods (issue 25, point 3): a 6-digit code, valid 10 minutes, 5 tries; an
/// unverified method is never paged, not even at minute zero.
@Suite struct ContactVerificationTests {
    let minute: Millis = 60_000

    @Test func aCodeIsValidTenMinutesForFiveTries() {
        let sent = ContactVerification.Pending.issued(at: 1_000)
        #expect(sent.expiresAt == 1_000 + 10 * minute && sent.triesLeft == 5)
        #expect(ContactVerification.check(matches: true, pending: sent, now: 1_000 + 10 * minute - 1) == .verified)
        #expect(ContactVerification.check(matches: true, pending: sent, now: 1_000 + 10 * minute) == .expired)
        // Five wrong tries: 4, 3, 2, 1, 0 left; then even the right code is refused.
        var pending = sent
        for left in stride(from: 4, through: 0, by: -1) {
            #expect(ContactVerification.check(matches: false, pending: pending, now: 2_000) == .wrong(triesLeft: left))
            pending.triesLeft = left
        }
        #expect(ContactVerification.check(matches: true, pending: pending, now: 2_000) == .exhausted)
        #expect(ContactVerification.check(matches: true, pending: nil, now: 2_000) == .noCode)
    }

    @Test func codesAreSixDigitsAndANewOneOnceAMinute() {
        #expect(ContactVerification.isWellFormed("042917"))
        for bad in ["42917", "0429170", "04291a", "０４２９１７", ""] { #expect(!ContactVerification.isWellFormed(bad), "\(bad)") }
        let sent = ContactVerification.Pending.issued(at: 0)
        #expect(ContactVerification.resendRefusedUntil(last: sent, now: 59_999) == minute)
        #expect(ContactVerification.resendRefusedUntil(last: sent, now: minute) == nil)
        #expect(ContactVerification.resendRefusedUntil(last: nil, now: 0) == nil)
        #expect(["sms", "phone", "email"].allSatisfy(ContactVerification.needsCode))
        #expect(!["webhook", "slack", "push"].contains(where: ContactVerification.needsCode))
    }

    @Test func anUnverifiedMethodIsNotPagedEvenAtMinuteZero() {
        let page = DuePage(reason: .assigned, minuteZero: true, currentStatus: .triggered, userStillAssigned: true, contactUnverified: true)
        #expect(NotificationCore.decide(page) == .skip(reason: NotificationCore.unverifiedReason))
        var verified = page
        verified.contactUnverified = false
        #expect(NotificationCore.decide(verified) == .sendSnapshot)
    }

    @Test func threeFailedPagesInARowFlagAMethod() {
        #expect(ContactVerification.failuresInARow(["failed", "failed", "failed", "sent"]) == 3)
        #expect(ContactVerification.failuresInARow(["failed", "sent", "failed", "failed"]) == 1)
        #expect(ContactVerification.failuresInARow([]) == 0)
    }
}
