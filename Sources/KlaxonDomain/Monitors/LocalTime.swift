import Foundation

/// Wall-clock arithmetic in a time zone, for cron schedules and recurring maintenance windows:
/// civil dates as day numbers (days since 1970-01-01), and local ↔ UTC through the zone's
/// offsets, so a 09:00 job stays at 09:00 local across a DST change.
public enum LocalTime {
    public struct DateTime: Sendable, Equatable {
        public var day: Int64       // days since 1970-01-01 (local)
        public var secondOfDay: Int64
        public var year: Int { LocalTime.civil(day).year }
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (RFC3339's civil arithmetic).
    public static func days(year: Int, month: Int, day: Int) -> Int64 {
        RFC3339.daysFromCivil(Int64(year), Int64(month), Int64(day))
    }

    public static func civil(_ days: Int64) -> (year: Int, month: Int, day: Int) {
        let (year, month, day) = RFC3339.civil(fromDays: days)
        return (Int(year), Int(month), Int(day))
    }

    /// 0 = Sunday … 6 = Saturday (cron's numbering).
    public static func weekday(_ days: Int64) -> Int {
        Int(((days % 7) + 11) % 7)  // 1970-01-01 was a Thursday (4)
    }

    public static func daysInMonth(year: Int, month: Int) -> Int {
        let next = month == 12 ? days(year: year + 1, month: 1, day: 1) : days(year: year, month: month + 1, day: 1)
        return Int(next - days(year: year, month: month, day: 1))
    }

    /// The local date and time of an instant.
    public static func local(_ instant: Millis, _ zone: TimeZone) -> DateTime {
        let offset = Int64(zone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(instant) / 1000)))
        let seconds = floorDiv(instant, 1000) + offset
        return DateTime(day: floorDiv(seconds, 86_400), secondOfDay: seconds - floorDiv(seconds, 86_400) * 86_400)
    }

    /// The instant of a local date and time. A time skipped by a DST change (02:30 on the
    /// spring-forward night) is the same wall-clock distance past the change (03:30); a time that
    /// happens twice (the fall-back night) is its first occurrence.
    public static func instant(day: Int64, secondOfDay: Int64, _ zone: TimeZone) -> Millis {
        let wall = day * 86_400 + secondOfDay
        // The offsets in force just before and after: try the earlier one first.
        let before = Int64(zone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(wall - 86_400))))
        let after = Int64(zone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(wall + 86_400))))
        for offset in [max(before, after), min(before, after)] {
            let candidate = wall - offset
            if Int64(zone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(candidate)))) == offset { return candidate * 1000 }
        }
        // In a gap: the offset before the change, which lands past it.
        return (wall - before) * 1000
    }

    static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 { a >= 0 ? a / b : -((-a + b - 1) / b) }
}
