import Foundation

/// A five-field cron expression (minute hour day-of-month month day-of-week) in a time zone:
/// numbers, `*`, lists, ranges, steps (`*/15`, `1-5/2`), month and day names, and the usual
/// rule that when both day fields are restricted a day matching either runs. Times are wall
/// clock: `0 9 * * *` in Europe/Paris runs at 09:00 Paris time on both sides of a DST change.
public struct CronSchedule: Sendable, Equatable {
    public let expression: String
    let minutes: Set<Int>
    let hours: [Int]
    let daysOfMonth: Set<Int>
    let months: Set<Int>
    let weekdays: Set<Int>
    let domRestricted: Bool
    let dowRestricted: Bool

    public static func parse(_ expression: String) -> Result<CronSchedule, ConditionProblem> {
        let aliases = ["@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@weekly": "0 0 * * 0",
                       "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *"]
        let text = aliases[expression.trimmingCharacters(in: .whitespaces).lowercased()] ?? expression
        let fields = text.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard fields.count == 5 else {
            return .failure(ConditionProblem(field: "cron", description: "needs 5 fields (minute hour day-of-month month day-of-week), got \(fields.count)"))
        }
        let monthNames = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
        let dayNames = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
        do {
            let minutes = try field(fields[0], 0...59, name: "minute")
            let hours = try field(fields[1], 0...23, name: "hour")
            let dom = try field(fields[2], 1...31, name: "day of month")
            let months = try field(fields[3], 1...12, name: "month", names: monthNames, nameBase: 1)
            var dow = try field(fields[4], 0...7, name: "day of week", names: dayNames, nameBase: 0)
            if dow.contains(7) { dow.remove(7); dow.insert(0) }
            return .success(CronSchedule(
                expression: expression, minutes: minutes, hours: hours.sorted(), daysOfMonth: dom, months: months, weekdays: dow,
                domRestricted: !fields[2].hasPrefix("*"), dowRestricted: !fields[4].hasPrefix("*")))
        } catch {
            return .failure(error)
        }
    }

    private static func field(_ text: String, _ range: ClosedRange<Int>, name: String, names: [String] = [], nameBase: Int = 0) throws(ConditionProblem) -> Set<Int> {
        func number(_ part: Substring) throws(ConditionProblem) -> Int {
            if let value = Int(part), range.contains(value) { return value }
            if let index = names.firstIndex(of: part.lowercased()) { return index + nameBase }
            throw ConditionProblem(field: "cron", description: "\(name) \"\(part)\" is not in \(range.lowerBound)–\(range.upperBound)")
        }
        var values = Set<Int>()
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            let pieces = item.split(separator: "/", omittingEmptySubsequences: false)
            guard pieces.count <= 2, !pieces[0].isEmpty else { throw ConditionProblem(field: "cron", description: "\(name) \"\(item)\" is not valid") }
            var step = 1
            if pieces.count == 2 {
                guard let value = Int(pieces[1]), value > 0 else { throw ConditionProblem(field: "cron", description: "\(name) step \"\(pieces[1])\" is not valid") }
                step = value
            }
            var low: Int, high: Int
            if pieces[0] == "*" {
                (low, high) = (range.lowerBound, range.upperBound)
            } else if let dash = pieces[0].firstIndex(of: "-") {
                low = try number(pieces[0][..<dash])
                high = try number(pieces[0][pieces[0].index(after: dash)...])
                guard low <= high else { throw ConditionProblem(field: "cron", description: "\(name) range \"\(pieces[0])\" runs backwards") }
            } else {
                low = try number(pieces[0])
                high = pieces.count == 2 ? range.upperBound : low
            }
            values.formUnion(stride(from: low, through: high, by: step))
        }
        return values
    }

    func dayMatches(_ day: Int64) -> Bool {
        let date = LocalTime.civil(day)
        guard months.contains(date.month) else { return false }
        let dom = daysOfMonth.contains(date.day)
        let dow = weekdays.contains(LocalTime.weekday(day))
        if domRestricted && dowRestricted { return dom || dow }
        return dom && dow
    }

    /// The first run strictly after `instant`, within the next 5 years (nil: never, as for 30 February).
    public func next(after instant: Millis, in zone: TimeZone) -> Millis? {
        let start = LocalTime.local(instant, zone)
        let sortedMinutes = minutes.sorted()
        for day in start.day...(start.day + 5 * 366) where dayMatches(day) {
            for hour in hours {
                if day == start.day, Int64(hour) < start.secondOfDay / 3600 - 1 { continue }
                for minute in sortedMinutes {
                    let at = LocalTime.instant(day: day, secondOfDay: Int64(hour * 3600 + minute * 60), zone)
                    // A local time skipped by DST lands just past the change (LocalTime.instant).
                    if at > instant { return at }
                }
            }
        }
        return nil
    }
}
