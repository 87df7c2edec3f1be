import Foundation
import KlaxonDomain
import Testing

@Suite struct ScheduleTests {
    static func utc(_ text: String) -> Millis {
        let formatter = ISO8601DateFormatter()
        return Millis(formatter.date(from: text)!.timeIntervalSince1970 * 1000)
    }

    static let week: UInt32 = 7 * 86_400
    static let day: UInt32 = 86_400

    @Test func weeklyRotationInOrderIncludingBeforeTheVirtualStart() {
        let layer = ScheduleLayer(users: [1, 2, 3], rotationVirtualStart: Self.utc("2026-11-02T09:00:00Z"), turnLengthSeconds: Self.week)
        let schedule = Schedule(timeZone: "UTC", layers: [layer])
        #expect(schedule.onCall(at: Self.utc("2026-11-02T09:00:00Z")) == [1])
        #expect(schedule.onCall(at: Self.utc("2026-11-09T08:59:59Z")) == [1])
        #expect(schedule.onCall(at: Self.utc("2026-11-09T09:00:00Z")) == [2])
        #expect(schedule.onCall(at: Self.utc("2026-11-16T09:00:00Z")) == [3])
        #expect(schedule.onCall(at: Self.utc("2026-11-23T09:00:00Z")) == [1])
        #expect(schedule.onCall(at: Self.utc("2026-11-02T08:59:59Z")) == [3], "the turn before the virtual start is the last user's")
    }

    @Test func laterLayerWinsWhereItHasSomeone() {
        // Layer 1: everyone on weekly rotation; layer 2: a weekend specialist, Saturday 00:00 for 48 h.
        let base = ScheduleLayer(users: [1, 2], rotationVirtualStart: Self.utc("2026-11-02T00:00:00Z"), turnLengthSeconds: Self.week)
        let weekend = ScheduleLayer(
            users: [7], rotationVirtualStart: Self.utc("2026-11-02T00:00:00Z"), turnLengthSeconds: Self.week,
            restrictions: [.weekly(weekday: 6, startSecondOfDay: 0, durationSeconds: 2 * 86_400)])
        let schedule = Schedule(timeZone: "UTC", layers: [base, weekend])
        #expect(schedule.onCall(at: Self.utc("2026-11-06T12:00:00Z")) == [1])  // Friday
        #expect(schedule.onCall(at: Self.utc("2026-11-07T12:00:00Z")) == [7])  // Saturday
        #expect(schedule.onCall(at: Self.utc("2026-11-08T23:59:59Z")) == [7])  // Sunday night
        #expect(schedule.onCall(at: Self.utc("2026-11-09T00:00:00Z")) == [2])  // Monday, next turn
    }

    @Test func overridesWinOverEveryLayerForTheirWindow() {
        let layer = ScheduleLayer(users: [1], rotationVirtualStart: 0, turnLengthSeconds: Self.day)
        let schedule = Schedule(
            timeZone: "UTC", layers: [layer],
            overrides: [
                ScheduleOverride(user: 5, start: Self.utc("2026-11-21T10:00:00Z"), end: Self.utc("2026-11-21T12:00:00Z")),
                ScheduleOverride(user: 6, start: Self.utc("2026-11-21T11:00:00Z"), end: Self.utc("2026-11-21T11:30:00Z")),
            ])
        #expect(schedule.onCall(at: Self.utc("2026-11-21T09:59:59Z")) == [1])
        #expect(schedule.onCall(at: Self.utc("2026-11-21T10:00:00Z")) == [5])
        #expect(schedule.onCall(at: Self.utc("2026-11-21T11:15:00Z")) == [6], "the last override listed wins")
        #expect(schedule.onCall(at: Self.utc("2026-11-21T12:00:00Z")) == [1], "end is exclusive")
    }

    @Test func layerStartAndEndBoundIt() {
        let night = ScheduleLayer(
            users: [9], rotationVirtualStart: 0, turnLengthSeconds: Self.day,
            start: Self.utc("2026-12-01T00:00:00Z"), end: Self.utc("2026-12-08T00:00:00Z"))
        let base = ScheduleLayer(users: [1], rotationVirtualStart: 0, turnLengthSeconds: Self.day)
        let schedule = Schedule(timeZone: "UTC", layers: [base, night])
        #expect(schedule.onCall(at: Self.utc("2026-11-30T23:59:59Z")) == [1])
        #expect(schedule.onCall(at: Self.utc("2026-12-03T00:00:00Z")) == [9])
        #expect(schedule.onCall(at: Self.utc("2026-12-08T00:00:00Z")) == [1])
    }

    /// New York springs forward on 2026-03-08: a daily 09:00 handoff stays at 09:00 local
    /// (14:00 UTC before, 13:00 UTC after), and a 09:00–17:00 restriction follows local time.
    @Test func dailyHandoffKeepsLocalTimeAcrossSpringForward() {
        let rotation = ScheduleLayer(
            users: [1, 2], rotationVirtualStart: Self.utc("2026-03-01T14:00:00Z"),  // 09:00 EST
            turnLengthSeconds: Self.day)
        let schedule = Schedule(timeZone: "America/New_York", layers: [rotation])
        // Turns: Mar 1 user 1, Mar 2 user 2, … Mar 7 user 1, Mar 8 user 2, Mar 9 user 1.
        #expect(schedule.onCall(at: Self.utc("2026-03-07T13:59:59Z")) == [2])  // 08:59:59 EST Mar 7: still Mar 6's turn
        #expect(schedule.onCall(at: Self.utc("2026-03-07T14:00:00Z")) == [1])  // 09:00 EST Mar 7
        #expect(schedule.onCall(at: Self.utc("2026-03-08T14:00:00Z")) == [2])  // 10:00 EDT Mar 8: handed off at 09:00 EDT
        #expect(schedule.onCall(at: Self.utc("2026-03-09T12:59:59Z")) == [2])  // 08:59:59 EDT Mar 9
        // 09:00 EDT Mar 9 = 13:00 UTC. Counting in UTC would hand off an hour late, at 14:00 UTC.
        #expect(schedule.onCall(at: Self.utc("2026-03-09T13:00:00Z")) == [1])

        let office = Schedule(timeZone: "America/New_York", layers: [ScheduleLayer(
            users: [3], rotationVirtualStart: 0, turnLengthSeconds: Self.week,
            restrictions: [.daily(startSecondOfDay: 9 * 3600, durationSeconds: 8 * 3600)])])
        #expect(office.onCall(at: Self.utc("2026-03-06T14:30:00Z")) == [3])  // 09:30 EST
        #expect(office.onCall(at: Self.utc("2026-03-09T13:30:00Z")) == [3])  // 09:30 EDT
        #expect(office.onCall(at: Self.utc("2026-03-06T13:30:00Z")).isEmpty)  // 08:30 EST
        #expect(office.onCall(at: Self.utc("2026-03-09T21:00:00Z")).isEmpty)  // 17:00 EDT: window over
    }

    /// Berlin falls back on 2026-10-25: the night restriction 22:00–06:00 follows local time.
    @Test func nightRestrictionAcrossFallBack() {
        let night = Schedule(timeZone: "Europe/Berlin", layers: [ScheduleLayer(
            users: [4], rotationVirtualStart: 0, turnLengthSeconds: Self.week,
            restrictions: [.daily(startSecondOfDay: 22 * 3600, durationSeconds: 8 * 3600)])])
        #expect(night.onCall(at: Self.utc("2026-10-24T20:30:00Z")) == [4])  // 22:30 CEST
        #expect(night.onCall(at: Self.utc("2026-10-24T19:30:00Z")).isEmpty)  // 21:30 CEST
        #expect(night.onCall(at: Self.utc("2026-10-25T04:30:00Z")) == [4])  // 05:30 CET (after the change)
        #expect(night.onCall(at: Self.utc("2026-10-25T05:30:00Z")).isEmpty)  // 06:30 CET
        #expect(night.onCall(at: Self.utc("2026-10-25T21:30:00Z")) == [4])  // 22:30 CET
    }

    @Test func validation() {
        let bad = Schedule(timeZone: "Mars/Olympus", layers: [
            ScheduleLayer(users: [], rotationVirtualStart: 0, turnLengthSeconds: 0, restrictions: [.weekly(weekday: 8, startSecondOfDay: 0, durationSeconds: 60)]),
        ], overrides: [ScheduleOverride(user: 1, start: 10, end: 10)])
        #expect(bad.violations().map(\.field) == [
            "time_zone", "layers[0].users", "layers[0].rotation_turn_length_seconds", "layers[0].restrictions", "overrides[0].end",
        ])
        #expect(Schedule(timeZone: "Europe/Berlin", layers: [ScheduleLayer(users: [1], rotationVirtualStart: 0, turnLengthSeconds: 60)]).violations().isEmpty)
        #expect(Schedule(timeZone: "UTC", layers: []).onCall(at: 0).isEmpty)
    }
}
