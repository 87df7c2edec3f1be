import KlaxonDomain
import Testing

/// Shifts over a window, and their iCalendar text (the schedule feed's pure part).
@Suite struct ScheduleFeedRuleTests {
    @Test func shiftsFollowLocalRestrictionsAcrossDST() {
        // 09:00–17:00 Berlin time every day; Europe moves to summer time on 28 March 2027.
        let schedule = Schedule(timeZone: "Europe/Berlin", layers: [ScheduleLayer(
            users: [7], rotationVirtualStart: 0, turnLengthSeconds: 86_400,
            restrictions: [.daily(startSecondOfDay: 9 * 3600, durationSeconds: 8 * 3600)])])
        let shifts = schedule.shifts(from: 1_806_019_200_000, to: 1_806_278_400_000)  // 26 → 29 March, UTC midnights
        #expect(shifts == [
            Shift(user: 7, start: 1_806_048_000_000, end: 1_806_076_800_000),  // 26th 08:00Z–16:00Z (CET)
            Shift(user: 7, start: 1_806_134_400_000, end: 1_806_163_200_000),  // 27th 08:00Z–16:00Z
            Shift(user: 7, start: 1_806_217_200_000, end: 1_806_246_000_000),  // 28th 07:00Z–15:00Z (CEST)
        ])
    }

    @Test func anOverrideShorterThanTheStepIsFoundWhenItsBoundsAreSampled() {
        let schedule = Schedule(
            timeZone: "UTC", layers: [ScheduleLayer(users: [1], rotationVirtualStart: 0, turnLengthSeconds: 86_400)],
            overrides: [ScheduleOverride(user: 2, start: 61_000, end: 121_000)])
        #expect(schedule.shifts(from: 0, to: 600_000) == [
            Shift(user: 1, start: 0, end: 61_000), Shift(user: 2, start: 61_000, end: 121_000), Shift(user: 1, start: 121_000, end: 600_000),
        ])
    }

    @Test func theFeedEscapesTextAndFoldsLongLines() {
        let name = "Primary; Berlin, Ünïcödé " + String(repeating: "é", count: 40)
        let feed = ICalendar.feed(
            scheduleID: 3, scheduleName: name, shifts: [Shift(user: 1, start: 1_796_025_600_000, end: 1_796_630_400_000)],
            names: [1: "Alice"], now: 1_796_126_400_000)
        #expect(feed.hasPrefix("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n"))
        #expect(feed.hasSuffix("END:VCALENDAR\r\n"))
        #expect(feed.contains("DTSTART:20261130T080000Z\r\nDTEND:20261207T080000Z\r\n"))
        #expect(feed.contains("UID:klaxon-schedule-3-1796025600000-1@klaxon\r\n"))
        // Every physical line is at most 75 octets and unfolds to the escaped text.
        let lines = feed.components(separatedBy: "\r\n")
        #expect(lines.allSatisfy { $0.utf8.count <= 75 })
        let unfolded = feed.replacingOccurrences(of: "\r\n ", with: "")
        #expect(unfolded.contains("X-WR-CALNAME:Primary\\; Berlin\\, Ünïcödé " + String(repeating: "é", count: 40) + " (on call)\r\n"))
    }
}
