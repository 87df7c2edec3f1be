import Foundation

/// A recurrence rule (RFC 5545's RRULE, the part maintenance windows need): FREQ=DAILY|WEEKLY|
/// MONTHLY, INTERVAL, BYDAY (weekly), COUNT, UNTIL. Occurrences keep the first one's local time
/// in the window's time zone, across DST changes.
public struct Recurrence: Sendable, Equatable {
    public enum Frequency: String, Sendable { case daily = "DAILY", weekly = "WEEKLY", monthly = "MONTHLY" }
    public var frequency: Frequency
    public var interval: Int
    /// 0 = Sunday … 6 = Saturday; empty: the first occurrence's weekday.
    public var byDay: [Int]
    public var count: Int?
    public var until: Millis?

    public static func parse(_ text: String) -> Result<Recurrence, ConditionProblem> {
        var body = text.trimmingCharacters(in: .whitespaces)
        if body.uppercased().hasPrefix("RRULE:") { body = String(body.dropFirst(6)) }
        var parts: [String: String] = [:]
        for item in body.split(separator: ";") {
            let pair = item.split(separator: "=", maxSplits: 1).map(String.init)
            guard pair.count == 2 else { return .failure(ConditionProblem(field: "rrule", description: "\"\(item)\" is not NAME=VALUE")) }
            parts[pair[0].uppercased()] = pair[1].uppercased()
        }
        for key in parts.keys where !["FREQ", "INTERVAL", "BYDAY", "COUNT", "UNTIL", "WKST"].contains(key) {
            return .failure(ConditionProblem(field: "rrule", description: "\(key) is not supported (FREQ, INTERVAL, BYDAY, COUNT, UNTIL)"))
        }
        guard let freq = parts["FREQ"].flatMap(Frequency.init(rawValue:)) else {
            return .failure(ConditionProblem(field: "rrule", description: "FREQ must be DAILY, WEEKLY or MONTHLY"))
        }
        var rule = Recurrence(frequency: freq, interval: 1, byDay: [], count: nil, until: nil)
        if let interval = parts["INTERVAL"] {
            guard let value = Int(interval), (1...1000).contains(value) else { return .failure(ConditionProblem(field: "rrule", description: "INTERVAL must be 1–1000")) }
            rule.interval = value
        }
        if let days = parts["BYDAY"] {
            guard freq == .weekly else { return .failure(ConditionProblem(field: "rrule", description: "BYDAY is supported with FREQ=WEEKLY only")) }
            let names = ["SU", "MO", "TU", "WE", "TH", "FR", "SA"]
            for day in days.split(separator: ",") {
                guard let index = names.firstIndex(of: String(day)) else { return .failure(ConditionProblem(field: "rrule", description: "BYDAY \"\(day)\" is not SU…SA")) }
                rule.byDay.append(index)
            }
            rule.byDay.sort()
        }
        if let count = parts["COUNT"] {
            guard let value = Int(count), value > 0 else { return .failure(ConditionProblem(field: "rrule", description: "COUNT must be a positive number")) }
            rule.count = value
        }
        if let until = parts["UNTIL"] {
            guard let value = Self.untilInstant(until) else { return .failure(ConditionProblem(field: "rrule", description: "UNTIL must be YYYYMMDD or YYYYMMDDTHHMMSSZ")) }
            rule.until = value
        }
        if rule.count != nil, rule.until != nil { return .failure(ConditionProblem(field: "rrule", description: "COUNT and UNTIL cannot both be given")) }
        return .success(rule)
    }

    static func untilInstant(_ text: String) -> Millis? {
        let digits = text.filter(\.isNumber)
        guard digits.count == 8 || digits.count == 14, let y = Int(digits.prefix(4)), let m = Int(digits.dropFirst(4).prefix(2)),
              let d = Int(digits.dropFirst(6).prefix(2)) else { return nil }
        var seconds: Int64 = 86_399
        if digits.count == 14, let h = Int(digits.dropFirst(8).prefix(2)), let mi = Int(digits.dropFirst(10).prefix(2)), let s = Int(digits.dropFirst(12)) {
            seconds = Int64(h * 3600 + mi * 60 + s)
        }
        return (LocalTime.days(year: y, month: m, day: d) * 86_400 + seconds) * 1000
    }

    /// Occurrence starts from `first` (itself the first), in order, while `body` returns true.
    public func forEachStart(first: Millis, in zone: TimeZone, skipBefore: Millis? = nil, _ body: (Millis) -> Bool) {
        let origin = LocalTime.local(first, zone)
        let startDate = LocalTime.civil(origin.day)
        var produced = 0
        func emit(_ day: Int64) -> Bool {
            let at = LocalTime.instant(day: day, secondOfDay: origin.secondOfDay, zone)
            if let until, at > until { return false }
            produced += 1
            if let count, produced > count { return false }
            return body(at)
        }
        // Without COUNT, whole periods before `skipBefore` (less a margin) are skipped arithmetically.
        var period: Int64 = 0
        if count == nil, let skipBefore, frequency != .monthly {
            let span: Int64 = frequency == .daily ? Int64(interval) : Int64(interval) * 7
            let target = LocalTime.local(skipBefore, zone).day - 2 * span - 2
            if target > origin.day { period = (target - origin.day) / span }
        }
        for _ in 0..<100_000 {
            switch frequency {
            case .daily:
                if !emit(origin.day + period * Int64(interval)) { return }
            case .weekly:
                let weekStart = origin.day - Int64(LocalTime.weekday(origin.day)) + period * Int64(interval) * 7
                for weekday in byDay.isEmpty ? [LocalTime.weekday(origin.day)] : byDay {
                    let day = weekStart + Int64(weekday)
                    if day < origin.day { continue }
                    if !emit(day) { return }
                }
            case .monthly:
                let months = startDate.month - 1 + Int(period) * interval
                let year = startDate.year + months / 12
                let month = months % 12 + 1
                if startDate.day <= LocalTime.daysInMonth(year: year, month: month) {
                    if !emit(LocalTime.days(year: year, month: month, day: startDate.day)) { return }
                }
            }
            period += 1
        }
    }
}

/// A maintenance window (PRODUCT.md, "Maintenance windows"): on its services, from start to end
/// (or every occurrence of a recurrence), for the events its matchers select (all of them when
/// none), `hold` pages nobody and escalates nothing until it ends, `drop` keeps the events in
/// the service's audit trail and opens nothing.
public struct MaintenanceWindow: Sendable, Equatable {
    public enum Mode: String, Sendable, CaseIterable { case hold, drop }

    public var id: Int64
    public var startsAt: Millis
    public var endsAt: Millis
    public var recurrence: Recurrence?
    public var timeZone: String
    public var mode: Mode
    public var matchers: [EventCondition]
    /// Ended by hand at this instant: the occurrence around it ends then.
    public var endedAt: Millis?
    public var cancelled: Bool

    public init(
        id: Int64, startsAt: Millis, endsAt: Millis, recurrence: Recurrence? = nil, timeZone: String = "UTC", mode: Mode = .hold,
        matchers: [EventCondition] = [], endedAt: Millis? = nil, cancelled: Bool = false
    ) {
        self.id = id
        self.startsAt = startsAt
        self.endsAt = endsAt
        self.recurrence = recurrence
        self.timeZone = timeZone
        self.mode = mode
        self.matchers = matchers
        self.endedAt = endedAt
        self.cancelled = cancelled
    }

    public var duration: Millis { endsAt - startsAt }
    var zone: TimeZone { TimeZone(identifier: timeZone) ?? TimeZone(identifier: "UTC")! }

    /// The occurrences that overlap [from, to), in order, each cut short where it was ended by hand.
    public func occurrences(from: Millis, to: Millis) -> [(start: Millis, end: Millis)] {
        guard !cancelled else { return [] }
        var found: [(start: Millis, end: Millis)] = []
        func add(_ start: Millis) -> Bool {
            guard start < to else { return false }
            var end = start + duration
            if let endedAt, endedAt >= start, endedAt < end { end = endedAt }
            if end > from, end > start { found.append((start, end)) }
            return true
        }
        guard let recurrence else {
            _ = add(startsAt)
            return found
        }
        recurrence.forEachStart(first: startsAt, in: zone, skipBefore: from - duration, add)
        return found
    }

    /// The occurrence around `instant`, if any.
    public func active(at instant: Millis) -> (start: Millis, end: Millis)? {
        occurrences(from: instant, to: instant + 1).first { $0.start <= instant && instant < $0.end }
    }

    /// past (no occurrence ends after `now`), ongoing, or future.
    public func phase(at now: Millis) -> String {
        if cancelled { return "cancelled" }
        if active(at: now) != nil { return "ongoing" }
        return next(after: now) == nil ? "past" : "future"
    }

    /// The next occurrence starting after `now` (within 5 years).
    public func next(after now: Millis) -> (start: Millis, end: Millis)? {
        occurrences(from: now, to: now + 5 * 366 * 86_400_000).first { $0.start > now }
    }

    public func selects(_ fields: EventFields) -> Bool { matchers.allSatisfy { $0.holds(for: fields) } }
}

/// What the windows of a service decide for one event at one instant.
public enum MaintenanceDecision: Sendable, Equatable {
    /// Opens nothing; kept in the audit trail.
    case drop(windowID: Int64)
    /// Created and marked, nobody paged, until `until` (the end of the union of the windows that hold it).
    case hold(until: Millis, windowIDs: [Int64])
}

public enum Maintenance {
    public static let maxMatchers = 20

    /// nil when no window selects the event at `now`. A dropping window wins over holding ones;
    /// overlapping holds are a union: the hold lasts until no selecting window covers the time.
    public static func decide(_ windows: [MaintenanceWindow], _ fields: EventFields, at now: Millis) -> MaintenanceDecision? {
        let selecting = windows.filter { $0.selects(fields) }
        var until: Millis?
        var ids: [Int64] = []
        for window in selecting {
            guard let occurrence = window.active(at: now) else { continue }
            if window.mode == .drop { return .drop(windowID: window.id) }
            ids.append(window.id)
            until = max(until ?? occurrence.end, occurrence.end)
        }
        guard var end = until else { return nil }
        // Windows (or occurrences) that start before the hold ends and last longer extend it.
        let holds = selecting.filter { $0.mode == .hold }
        for _ in 0..<100 {
            let extended = holds.flatMap { $0.occurrences(from: end - 1, to: end + 1) }.filter { $0.start <= end && $0.end > end }
            guard let longest = extended.map(\.end).max() else { break }
            end = longest
        }
        return .hold(until: end, windowIDs: ids)
    }
}
