import KlaxonDomain
import Testing

@Suite struct EscalationCoreTests {
    static let now: Millis = 1_800_000_000_000
    static func resolveUsers(_ target: EscalationTarget, _: Millis) -> [UInt64] {
        if case let .user(id) = target { return [id] }
        return []
    }

    @Test func assignsEveryTargetOfLevelOneAtOnceAndPagesEach() {
        let policy = EscalationPolicy(levels: [
            EscalationLevel(delaySeconds: 300, targets: [.user(1), .user(2), .user(3)]),
            EscalationLevel(delaySeconds: 300, targets: [.user(9)]),
        ])
        let effects = EscalationCore.start(policy: policy, urgency: .high, now: Self.now, resolve: Self.resolveUsers)
        #expect(effects.first == .assign(users: [1, 2, 3], level: 1, loop: 0))
        #expect(effects.filter { if case .notify = $0 { true } else { false } } == [
            .notify(user: 1, reason: .assigned), .notify(user: 2, reason: .assigned), .notify(user: 3, reason: .assigned),
        ])
        #expect(effects.last == .setEscalationTimer(at: Self.now + 300_000))
    }

    @Test func duplicateTargetsArePagedOnce() {
        let policy = EscalationPolicy(levels: [EscalationLevel(delaySeconds: 60, targets: [.user(1), .user(2), .user(1)])])
        let effects = EscalationCore.start(policy: policy, urgency: .high, now: Self.now, resolve: Self.resolveUsers)
        #expect(effects.first == .assign(users: [1, 2], level: 1, loop: 0))
        #expect(effects.filter { if case .notify = $0 { true } else { false } }.count == 2)
    }

    @Test func levelThatResolvesToNobodyIsSkippedAtOnce() {
        let policy = EscalationPolicy(levels: [
            EscalationLevel(delaySeconds: 60, targets: [.schedule(7)]),  // nobody on call
            EscalationLevel(delaySeconds: 120, targets: [.user(5)]),
        ])
        let effects = EscalationCore.start(policy: policy, urgency: .high, now: Self.now, resolve: Self.resolveUsers)
        #expect(effects.first == .timeline(TimelineEntry(
            at: Self.now, type: .escalate, actor: "system", details: ["level": "1", "reason": "empty level"])))
        #expect(effects.contains(.assign(users: [5], level: 2, loop: 0)))
        #expect(effects.last == .setEscalationTimer(at: nil))  // last level, no loops: nothing to escalate to
    }

    @Test func lowUrgencyDoesNotEscalate() {
        let policy = EscalationPolicy(levels: [
            EscalationLevel(delaySeconds: 60, targets: [.user(1)]), EscalationLevel(delaySeconds: 60, targets: [.user(2)]),
        ])
        let effects = EscalationCore.start(policy: policy, urgency: .low, now: Self.now, resolve: Self.resolveUsers)
        #expect(effects.contains(.assign(users: [1], level: 1, loop: 0)))
        #expect(effects.last == .setEscalationTimer(at: nil))
    }

    @Test func singleLevelWithLoopsStillSchedulesTheRepeat() {
        let policy = EscalationPolicy(levels: [EscalationLevel(delaySeconds: 30, targets: [.user(1)])], numLoops: 2)
        let effects = EscalationCore.start(policy: policy, urgency: .high, now: Self.now, resolve: Self.resolveUsers)
        #expect(effects.last == .setEscalationTimer(at: Self.now + 30_000))
    }

    @Test func policyWithNobodyAnywhereIsExhausted() {
        let policy = EscalationPolicy(levels: [EscalationLevel(delaySeconds: 30, targets: [.schedule(1)])])
        let effects = EscalationCore.start(policy: policy, urgency: .high, now: Self.now, resolve: Self.resolveUsers)
        #expect(effects.contains { if case let .timeline(entry) = $0 { entry.type == .exhaustEscalationPath } else { false } })
        #expect(!effects.contains { if case .notify = $0 { true } else { false } })
    }
}

@Suite struct NotificationCoreTests {
    static let rules = [
        NotificationRule(id: 1, contactMethodID: 10, startDelaySeconds: 0, urgency: .high),
        NotificationRule(id: 2, contactMethodID: 11, startDelaySeconds: 300, urgency: .high),
        NotificationRule(id: 3, contactMethodID: 10, startDelaySeconds: 0, urgency: .low),
    ]

    @Test func oneNotificationPerRuleMatchingUrgencyDueAfterItsDelay() {
        let plan = NotificationCore.expand(rules: Self.rules, urgency: .high, requestedAt: 1_000)
        #expect(plan == [
            ScheduledNotification(ruleID: 1, contactMethodID: 10, dueAt: 1_000, minuteZero: true),
            ScheduledNotification(ruleID: 2, contactMethodID: 11, dueAt: 301_000, minuteZero: false),
        ])
        #expect(NotificationCore.expand(rules: Self.rules, urgency: .low, requestedAt: 0).map(\.ruleID) == [3])
    }

    @Test func minuteZeroIsAlwaysSentWithTheSnapshot() {
        for status in IncidentStatus.allCases {
            for assigned in [true, false] {
                #expect(NotificationCore.decide(minuteZero: true, currentStatus: status, userStillAssigned: assigned) == .sendSnapshot)
            }
        }
    }

    @Test func delayedRuleIsSkippedWhenTheIncidentNoLongerNeedsTheUser() {
        #expect(NotificationCore.decide(minuteZero: false, currentStatus: .triggered, userStillAssigned: true) == .sendCurrent)
        #expect(NotificationCore.decide(minuteZero: false, currentStatus: .acknowledged, userStillAssigned: true) == .skip(reason: "acknowledged"))
        #expect(NotificationCore.decide(minuteZero: false, currentStatus: .resolved, userStillAssigned: true) == .skip(reason: "resolved"))
        #expect(NotificationCore.decide(minuteZero: false, currentStatus: .triggered, userStillAssigned: false) == .skip(reason: "reassigned"))
    }

    @Test func urgencyRuleBySeverity() {
        #expect(UrgencyRule.severity.urgency(for: .critical) == .high)
        #expect(UrgencyRule.severity.urgency(for: .error) == .high)
        #expect(UrgencyRule.severity.urgency(for: .warning) == .low)
        #expect(UrgencyRule.severity.urgency(for: .info) == .low)
        #expect(UrgencyRule.severity.urgency(for: nil) == .high)
        #expect(UrgencyRule.low.urgency(for: .critical) == .low)
        #expect(UrgencyRule.high.urgency(for: .info) == .high)
    }
}

@Suite struct TokenBucketTests {
    func take(_ bucket: inout TokenBucket, _ now: Millis) -> Bool { bucket.take(now: now) }

    @Test func defaultLimitAllowsTheBurstThenTwoPerSecond() {
        var bucket = TokenBucket(perMinute: 120, burst: 60, now: 0)
        for _ in 0..<60 { #expect(take(&bucket, 0)) }
        #expect(!take(&bucket, 0))
        #expect(bucket.msUntilNextToken() == 500)
        #expect(!take(&bucket, 499))
        #expect(take(&bucket, 500))  // 120/min = one token every 500 ms
        #expect(!take(&bucket, 500))
        #expect(take(&bucket, 1_000))
    }

    @Test func refillNeverExceedsTheBurst() {
        var bucket = TokenBucket(perMinute: 120, burst: 60, now: 0)
        for _ in 0..<60 { _ = bucket.take(now: 0) }
        let later: Millis = 3_600_000
        for _ in 0..<60 { #expect(take(&bucket, later)) }
        #expect(!take(&bucket, later))
    }

    @Test func zeroMeansNoLimit() {
        var bucket = TokenBucket(perMinute: 0, burst: 1, now: 0)
        for _ in 0..<10_000 { #expect(take(&bucket, 0)) }
    }

    @Test func reconfiguringKeepsEarnedTokensWithinTheNewBurst() {
        var bucket = TokenBucket(perMinute: 120, burst: 60, now: 0)
        bucket.reconfigure(perMinute: 60, burst: 5)
        for _ in 0..<5 { #expect(take(&bucket, 0)) }
        #expect(!take(&bucket, 0))
        #expect(take(&bucket, 1_000))  // 60/min = one per second
    }
}
