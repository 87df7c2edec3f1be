import KlaxonDomain
import Testing

@Suite struct EscalationCoreTests {
    static let now: Millis = 1_800_000_000_000

    static func trigger(_ levels: [[EscalationTarget]], loops: Int = 0) throws -> IncidentTransition {
        let core = IncidentCore(
            policy: EscalationPolicy(levels: levels.map { EscalationLevel(delaySeconds: 300, targets: $0) }, numLoops: loops),
            settings: IncidentSettings())
        return try core.apply(.trigger, to: IncidentState(urgency: .high), now: now)
    }

    @Test func assignsEveryTargetOfLevelOneAtOnceAndPagesEach() throws {
        let transition = try Self.trigger([[.user(1), .user(2), .user(3)], [.user(9)]])
        #expect(transition.state.assignees == [1, 2, 3])
        #expect(transition.state.level == 1)
        #expect(transition.effects.filter { if case .notify = $0 { true } else { false } } == [
            .notify(user: 1, reason: .assigned, status: .triggered), .notify(user: 2, reason: .assigned, status: .triggered), .notify(user: 3, reason: .assigned, status: .triggered),
        ])
        #expect(transition.state.escalateAt == Self.now + 300_000)
    }

    @Test func duplicateTargetsArePagedOnce() throws {
        let transition = try Self.trigger([[.user(1), .user(2), .user(1)]])
        #expect(transition.state.assignees == [1, 2])
        #expect(transition.effects.filter { if case .notify = $0 { true } else { false } }.count == 2)
    }

    @Test func policyWithNobodyAnywhereIsExhausted() throws {
        let transition = try Self.trigger([[.schedule(1)], [.schedule(2)]], loops: 3)
        #expect(transition.state.exhausted)
        #expect(transition.state.escalateAt == nil)
        #expect(transition.effects.contains { if case let .timeline(entry) = $0 { entry.type == .exhaustEscalationPath } else { false } })
        #expect(!transition.effects.contains { if case .notify = $0 { true } else { false } })
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
