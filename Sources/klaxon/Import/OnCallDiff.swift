import Foundation
import KlaxonDomain

/// Who is on call, by Klaxon's own computation of an imported schedule (read back from the
/// document `klaxon apply` will take) against the source pager's rendered final schedule: every
/// interval where they differ, with both names.
enum OnCallDiff {
    struct Difference: Equatable {
        var start: Millis
        var end: Millis
        var source: String
        var klaxon: String
    }

    static func millis(_ text: Any?) -> Millis? {
        PagerDutyMapping.time(text).map { Millis(($0.timeIntervalSince1970 * 1000).rounded()) }
    }

    static func secondOfDay(_ text: String) -> Int {
        let parts = text.split(separator: ":").compactMap { Int($0) }
        return (parts.first ?? 0) * 3600 + (parts.count > 1 ? parts[1] * 60 : 0) + (parts.count > 2 ? parts[2] : 0)
    }

    /// The schedule a document entry describes, its users as indexes into `people`.
    static func schedule(_ entry: [String: Any], people: inout [String]) -> Schedule {
        func person(_ email: String) -> UInt64 {
            if let index = people.firstIndex(of: email) { return UInt64(index) }
            people.append(email)
            return UInt64(people.count - 1)
        }
        let layers = (entry["layers"] as? [[String: Any]] ?? []).map { layer in
            ScheduleLayer(
                users: (layer["users"] as? [String] ?? []).map(person),
                rotationVirtualStart: millis(layer["rotation_virtual_start"]) ?? 0,
                turnLengthSeconds: UInt32((layer["rotation_turn_length_seconds"] as? NSNumber)?.intValue ?? 86_400),
                restrictions: (layer["restrictions"] as? [[String: Any]] ?? []).map { restriction in
                    let start = secondOfDay(restriction["start"] as? String ?? "00:00")
                    let duration = (restriction["duration_seconds"] as? NSNumber)?.intValue ?? 0
                    if restriction["kind"] as? String == "weekly" {
                        let day = PagerDutyMapping.weekdays.firstIndex(of: restriction["weekday"] as? String ?? "") ?? 0
                        return .weekly(weekday: day + 1, startSecondOfDay: start, durationSeconds: duration)
                    }
                    return .daily(startSecondOfDay: start, durationSeconds: duration)
                },
                start: millis(layer["start"]), end: millis(layer["end"]))
        }
        let overrides = (entry["overrides"] as? [[String: Any]] ?? []).compactMap { override -> ScheduleOverride? in
            guard let start = millis(override["start"]), let end = millis(override["end"]) else { return nil }
            return ScheduleOverride(user: person(override["user"] as? String ?? ""), start: start, end: end)
        }
        return Schedule(timeZone: entry["time_zone"] as? String ?? "UTC", layers: layers, overrides: overrides)
    }

    /// Compares minute by minute over [since, until): `rendered` is the source's entries
    /// (start, end, who). Adjacent differing minutes with the same pair are one interval.
    static func compare(
        _ schedule: Schedule, people: [String], rendered: [(start: Millis, end: Millis, who: String)], since: Millis, until: Millis
    ) -> [Difference] {
        let sorted = rendered.sorted { $0.start < $1.start }
        var differences: [Difference] = []
        var index = 0
        var at = since - since % 60_000
        while at < until {
            while index < sorted.count, sorted[index].end <= at { index += 1 }
            var source = "nobody"
            for entry in sorted[index...].prefix(4) where entry.start <= at && at < entry.end {
                source = entry.who
                break
            }
            let klaxon = schedule.onCall(at: at).first.map { people[Int($0)] } ?? "nobody"
            if source != klaxon {
                if var last = differences.last, last.end == at, last.source == source, last.klaxon == klaxon {
                    last.end = at + 60_000
                    differences[differences.count - 1] = last
                } else {
                    differences.append(Difference(start: at, end: at + 60_000, source: source, klaxon: klaxon))
                }
            }
            at += 60_000
        }
        return differences
    }
}
