/// RFC 3339 timestamps in UTC with milliseconds ("2026-12-01T02:09:00.000Z"), by arithmetic:
/// Foundation's ISO8601DateFormatter builds an ICU formatter per use, which cost a third of the
/// Notifier's CPU per page at surge rates.
public enum RFC3339 {
    public static func string(millis: Millis) -> String {
        let (days, msOfDay) = floorDivide(millis, 86_400_000)
        let (year, month, day) = civil(fromDays: days)
        let hour = msOfDay / 3_600_000, minute = msOfDay / 60_000 % 60, second = msOfDay / 1000 % 60, ms = msOfDay % 1000
        var text = pad(year, 4)
        text += "-" + pad(month, 2) + "-" + pad(day, 2) + "T" + pad(hour, 2) + ":" + pad(minute, 2) + ":" + pad(second, 2)
        text += "." + pad(ms, 3) + "Z"
        return text
    }

    /// "2026-12-05T10:00:00Z", with or without a fraction (any digits, cut to milliseconds), with
    /// `Z`, `±HH:MM` or `±HHMM` (PagerDuty's own examples omit the colon); a space or a lowercase
    /// `t`/`z` too. nil for anything else (the caller may try a slower, wider parser).
    public static func millis(_ text: String) -> Millis? {
        var bytes = Array(text.utf8)
        guard bytes.count >= 20 else { return nil }
        func number(_ at: Int, _ width: Int) -> Int64? {
            guard at + width <= bytes.count else { return nil }
            var value: Int64 = 0
            for index in at..<at + width {
                let digit = bytes[index] &- 48
                guard digit < 10 else { return nil }
                value = value * 10 + Int64(digit)
            }
            return value
        }
        guard let year = number(0, 4), bytes[4] == 45, let month = number(5, 2), bytes[7] == 45, let day = number(8, 2),
              [84, 116, 32].contains(bytes[10]), let hour = number(11, 2), bytes[13] == 58, let minute = number(14, 2),
              bytes[16] == 58, let second = number(17, 2),
              (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61
        else { return nil }
        var index = 19
        var ms: Int64 = 0
        if index < bytes.count, bytes[index] == 46 {
            index += 1
            var digits = 0
            while index < bytes.count, bytes[index] &- 48 < 10 {
                if digits < 3 { ms = ms * 10 + Int64(bytes[index] - 48) }
                digits += 1
                index += 1
            }
            guard digits > 0 else { return nil }
            for _ in digits..<max(digits, 3) { ms *= 10 }
        }
        guard index < bytes.count else { return nil }
        var offset: Int64 = 0
        switch bytes[index] {
        case 90, 122:  // Z z
            index += 1
        case 43, 45:  // + -
            let sign: Int64 = bytes[index] == 43 ? 1 : -1
            guard let hours = number(index + 1, 2) else { return nil }
            var minutesAt = index + 3
            if minutesAt < bytes.count, bytes[minutesAt] == 58 { minutesAt += 1 }
            guard let minutes = number(minutesAt, 2), hours < 24, minutes < 60 else { return nil }
            offset = sign * (hours * 60 + minutes) * 60_000
            index = minutesAt + 2
        default:
            return nil
        }
        guard index == bytes.count else { return nil }
        bytes.removeAll()
        let days = daysFromCivil(year, month, day)
        // A day past the month's end (February 30) is refused: it would not round-trip.
        guard civil(fromDays: days) == (year, month, day) else { return nil }
        return days * 86_400_000 + ((hour * 60 + minute) * 60 + min(second, 59)) * 1000 + ms - offset
    }

    /// (year, month, day) → days since 1970-01-01 (H. Hinnant's algorithm).
    static func daysFromCivil(_ year: Int64, _ month: Int64, _ day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    private static func floorDivide(_ a: Int64, _ b: Int64) -> (Int64, Int64) {
        let q = a / b, r = a % b
        return r < 0 ? (q - 1, r + b) : (q, r)
    }

    /// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
    static func civil(fromDays days: Int64) -> (Int64, Int64, Int64) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    private static func pad(_ value: Int64, _ width: Int) -> String {
        let digits = String(value)
        return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
    }
}
