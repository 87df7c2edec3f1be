/// A schedule as shifts, and shifts as an iCalendar feed (RFC 5545), so people see their on-call
/// time in their calendar app.
public struct Shift: Sendable, Equatable {
    public var user: UInt64
    public var start: Millis
    public var end: Millis

    public init(user: UInt64, start: Millis, end: Millis) {
        self.user = user
        self.start = start
        self.end = end
    }
}

extension Schedule {
    /// Who is on call from `from` to `to`, as consecutive shifts of one user each. Found by
    /// evaluating `onCall` every `stepSeconds` and at every override and layer start and end, and
    /// finding each change to the second by bisection: a change between two samples is exact,
    /// a shift shorter than the step that starts and ends between two samples is not seen.
    public func shifts(from: Millis, to: Millis, stepSeconds: Int64 = 300) -> [Shift] {
        let from = floorDiv(from, 1000) * 1000  // whole seconds: bisection then lands on them
        guard to > from else { return [] }
        var samples = Set<Millis>()
        var t = from
        while t < to {
            samples.insert(t)
            t += stepSeconds * 1000
        }
        for instant in overrides.flatMap({ [$0.start, $0.end] }) + layers.flatMap({ [$0.start, $0.end].compactMap { $0 } }) {
            samples.insert(floorDiv(instant, 1000) * 1000)
        }
        let points = samples.filter { $0 >= from && $0 < to }.sorted()
        let value = { (instant: Millis) in onCall(at: instant).first }
        var changes: [(at: Millis, user: UInt64?)] = [(from, value(from))]
        var a = from, valueA = value(from)
        for b in points.dropFirst() {
            let valueB = value(b)
            while valueA != valueB {
                // The first whole second in (a, b] whose value differs from a's.
                var low = a, high = b
                while high - low > 1000 {
                    let middle = low + (high - low) / 2000 * 1000
                    if value(middle) == valueA { low = middle } else { high = middle }
                }
                let changed = value(high)
                changes.append((high, changed))
                a = high
                valueA = changed
            }
            a = b
            valueA = valueB
        }
        var shifts: [Shift] = []
        for (index, change) in changes.enumerated() {
            guard let user = change.user else { continue }
            shifts.append(Shift(user: user, start: change.at, end: index + 1 < changes.count ? changes[index + 1].at : to))
        }
        return shifts
    }
}

public enum ICalendar {
    /// The feed: one event per shift. `names` gives each user's display name; `now` stamps it.
    public static func feed(
        scheduleID: UInt64, scheduleName: String, shifts: [Shift], names: [UInt64: String], now: Millis
    ) -> String {
        var lines = [
            "BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Klaxon//On-call schedules//EN", "CALSCALE:GREGORIAN", "METHOD:PUBLISH",
            "X-WR-CALNAME:" + text("\(scheduleName) (on call)"),
        ]
        for shift in shifts {
            let name = names[shift.user] ?? "user \(shift.user)"
            lines += [
                "BEGIN:VEVENT",
                "UID:klaxon-schedule-\(scheduleID)-\(shift.start)-\(shift.user)@klaxon",
                "DTSTAMP:" + utc(now),
                "DTSTART:" + utc(shift.start),
                "DTEND:" + utc(shift.end),
                "SUMMARY:" + text("On call: \(name) (\(scheduleName))"),
                "DESCRIPTION:" + text("\(name) is on call for schedule \(scheduleName) (Klaxon user \(shift.user))."),
                "TRANSP:TRANSPARENT",
                "END:VEVENT",
            ]
        }
        lines.append("END:VCALENDAR")
        return lines.map(fold).joined(separator: "\r\n") + "\r\n"
    }

    /// 20261201T090000Z
    static func utc(_ millis: Millis) -> String {
        let text = RFC3339.string(millis: millis)  // 2026-12-01T09:00:00.000Z
        let digits = text.prefix(19).filter { $0 != "-" && $0 != ":" }
        return digits + "Z"
    }

    /// TEXT value escaping (RFC 5545 3.3.11).
    static func text(_ value: String) -> String {
        var out = ""
        for character in value {
            switch character {
            case "\\": out += "\\\\"
            case ";": out += "\\;"
            case ",": out += "\\,"
            case "\n": out += "\\n"
            case "\r": continue
            default: out.append(character)
            }
        }
        return out
    }

    /// Lines longer than 75 octets are folded: CRLF and a space, never inside a UTF-8 sequence.
    static func fold(_ line: String) -> String {
        var out = ""
        var octets = 0
        for scalar in line.unicodeScalars {
            let size = String(scalar).utf8.count
            if octets + size > 75 {
                out += "\r\n "
                octets = 1
            }
            out.unicodeScalars.append(scalar)
            octets += size
        }
        return out
    }
}
