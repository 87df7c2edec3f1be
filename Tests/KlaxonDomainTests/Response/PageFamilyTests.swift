import KlaxonDomain
import Testing

/// Delayed pages are decided by what they are for (PRODUCT.md, "Responder request" and
/// "Notifications"): a responder reminder goes out while the request is pending; supersede
/// works within one family only.
@Suite struct PageFamilyTests {
    @Test func aResponderReminderGoesOutWhileTheRequestIsPending() {
        // A responder is not an assignee: that must not skip the reminder as `reassigned`.
        let pending = DuePage(reason: .responderRequest, minuteZero: false, currentStatus: .triggered, userStillAssigned: false, requestState: .pending)
        #expect(NotificationCore.decide(pending) == .sendCurrent)
        // Acknowledged major incidents still gather their responders.
        var acknowledged = pending
        acknowledged.currentStatus = .acknowledged
        #expect(NotificationCore.decide(acknowledged) == .sendCurrent)
        for (state, reason) in [(RequestState.joined, "joined"), (.declined, "declined"), (.noAnswer, "no_answer"), (.cancelled, "resolved")] {
            var answered = pending
            answered.requestState = state
            #expect(NotificationCore.decide(answered) == .skip(reason: reason))
        }
        var resolved = pending
        resolved.currentStatus = .resolved
        #expect(NotificationCore.decide(resolved) == .skip(reason: "resolved"))
        // Minute zero always goes out.
        var zero = resolved
        zero.minuteZero = true
        #expect(NotificationCore.decide(zero) == .sendSnapshot)
    }

    @Test func statusUpdateRemindersFollowTheSubscription() {
        let page = DuePage(reason: .statusUpdate, minuteZero: false, currentStatus: .acknowledged, stillSubscribed: true)
        #expect(NotificationCore.decide(page) == .sendCurrent)
        var unsubscribed = page
        unsubscribed.stillSubscribed = false
        #expect(NotificationCore.decide(unsubscribed) == .skip(reason: "unsubscribed"))
    }

    @Test func assignmentPagesKeepTheirRule() {
        #expect(NotificationCore.decide(DuePage(reason: .escalated, minuteZero: false, currentStatus: .triggered, userStillAssigned: true)) == .sendCurrent)
        #expect(NotificationCore.decide(DuePage(reason: .assigned, minuteZero: false, currentStatus: .triggered, userStillAssigned: false)) == .skip(reason: "reassigned"))
        #expect(NotificationCore.decide(DuePage(reason: .assigned, minuteZero: false, currentStatus: .acknowledged, userStillAssigned: true)) == .skip(reason: "acknowledged"))
    }

    @Test func supersedeWorksWithinOneFamilyOnly() {
        let t: Millis = 1_000
        let waiting = [
            WaitingNotification(id: "reminder", ruleID: 2, requestID: "req-1", minuteZero: false, requestedAt: t, leaseUntil: 0, reason: .responderRequest),
            WaitingNotification(id: "assigned", ruleID: 2, requestID: "asg-1", minuteZero: false, requestedAt: t, leaseUntil: 0, reason: .assigned),
            WaitingNotification(id: "update", ruleID: 2, requestID: "upd-1", minuteZero: false, requestedAt: t, leaseUntil: 0, reason: .statusUpdate),
        ]
        // A status update supersedes the older status update's reminder, nothing else.
        #expect(NotificationCore.superseded(waiting, byRequest: "upd-2", reason: .statusUpdate, requestedAt: t + 1, now: t + 1).map(\.id) == ["update"])
        // A second responder request supersedes the first one's reminder.
        #expect(NotificationCore.superseded(waiting, byRequest: "req-2", reason: .responderRequest, requestedAt: t + 1, now: t + 1).map(\.id) == ["reminder"])
        // An escalation supersedes the assignment reminder only.
        #expect(NotificationCore.superseded(waiting, byRequest: "esc-1", reason: .escalated, requestedAt: t + 1, now: t + 1).map(\.id) == ["assigned"])
    }
}
