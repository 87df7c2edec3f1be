import Foundation
import KlaxonDomain
import KlaxonTestSupport
import Shared
import Testing

/// Schedules as calendars (issue 12, point 5): the iCal feed read by a real iCal parser, Python's
/// `icalendar`, with the feed token checked and rotated.
@Suite struct ScheduleFeedTests {
    static let script = #"""
    import sys, urllib.request, urllib.error
    from icalendar import Calendar
    for url in sys.argv[1:]:
        try:
            body = urllib.request.urlopen(url, timeout=10).read()
        except urllib.error.HTTPError as error:
            print("status", error.code)
            continue
        calendar = Calendar.from_ical(body)
        print("calendar", calendar.get("X-WR-CALNAME"))
        for event in calendar.walk("VEVENT"):
            start = event.decoded("DTSTART").strftime("%Y-%m-%dT%H:%MZ")
            end = event.decoded("DTEND").strftime("%Y-%m-%dT%H:%MZ")
            print("event", start, end, event.get("SUMMARY"))
    """#

    @Test func aScheduleIsACalendarFeedWithARotatableToken() async throws {
        // 2026-12-01T12:00:00Z; the feed runs from 7 days before to 60 days after.
        let clock = ManualClock(1_796_126_400_000)
        let pipeline = try await Pipeline(start: [.assignment], clock: clock)
        let service = try await pipeline.seed(users: ["Alice", "Bob"])
        let (alice, bob) = (UInt64(service.userIDs[0]), UInt64(service.userIDs[1]))
        let admin = pipeline.client(.assignment)
        // Weekly turns from Monday 2026-11-30 09:00 Berlin (08:00Z), Alice first; Alice overrides
        // Bob on 10 December (UTC day).
        let schedule: ScheduleMessage = try await admin.call(Admin.CreateSchedule, ScheduleMessage(
            name: "Primary, Berlin", timeZone: "Europe/Berlin",
            layers: [LayerMessage(userIDs: [alice, bob], rotationVirtualStartMs: 1_796_025_600_000, rotationTurnLengthSeconds: 604_800)],
            overrides: [OverrideMessage(userID: alice, startMs: 1_796_860_800_000, endMs: 1_796_947_200_000)]))
        let base = "http://127.0.0.1:\(pipeline.assignmentHTTPPort)"
        let other: ScheduleMessage = try await admin.call(Admin.CreateSchedule, ScheduleMessage(
            name: "No feed", timeZone: "UTC", layers: [LayerMessage(userIDs: [bob], rotationVirtualStartMs: 0, rotationTurnLengthSeconds: 86_400)]))
        let feed: ScheduleFeed = try await admin.call(Admin.RotateScheduleFeed, AdminIDRequest(id: schedule.id))
        #expect(feed.path == "/schedules/\(schedule.id).ics?token=\(feed.token)" && feed.token.count == 32)

        let work = FileManager.default.temporaryDirectory.appendingPathComponent("klaxon-ics-\(UUID().uuidString).py")
        try Self.script.write(to: work, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: work) }
        let result = try await ThirdPartyClientTests().run("python3", [
            work.path, base + feed.path, "\(base)/schedules/\(schedule.id).ics?token=wrong", "\(base)/schedules/\(schedule.id).ics",
            "\(base)/schedules/999.ics?token=\(feed.token)", "\(base)/schedules/\(other.id).ics?token=\(feed.token)",
        ])
        try #require(result.status == 0, "python failed (is python3-icalendar installed?): \(result.output)")
        let lines = result.output.split(separator: "\n").map(String.init)
        #expect(lines.first == "calendar Primary\\, Berlin (on call)" || lines.first == "calendar Primary, Berlin (on call)")
        let events = lines.filter { $0.hasPrefix("event ") }
        #expect(Array(events.prefix(5)) == [
            "event 2026-11-24T12:00Z 2026-11-30T08:00Z On call: Bob (Primary, Berlin)",
            "event 2026-11-30T08:00Z 2026-12-07T08:00Z On call: Alice (Primary, Berlin)",
            "event 2026-12-07T08:00Z 2026-12-10T00:00Z On call: Bob (Primary, Berlin)",
            "event 2026-12-10T00:00Z 2026-12-11T00:00Z On call: Alice (Primary, Berlin)",
            "event 2026-12-11T00:00Z 2026-12-14T08:00Z On call: Bob (Primary, Berlin)",
        ])
        #expect(events.last == "event 2027-01-25T08:00Z 2027-01-30T12:00Z On call: Alice (Primary, Berlin)")
        #expect(events.count == 12)
        #expect(Array(lines.suffix(4)) == ["status 401", "status 401", "status 404", "status 404"])

        // Rotating: the old URL stops working, the new one works.
        let rotated: ScheduleFeed = try await admin.call(Admin.RotateScheduleFeed, AdminIDRequest(id: schedule.id))
        let after = try await ThirdPartyClientTests().run("python3", [work.path, base + feed.path, base + rotated.path])
        let afterLines = after.output.split(separator: "\n").map(String.init)
        #expect(afterLines.first == "status 401")
        #expect(afterLines.filter { $0.hasPrefix("event ") }.count == 12)
        await pipeline.shutdown()
    }
}
