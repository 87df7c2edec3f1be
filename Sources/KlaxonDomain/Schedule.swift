import Foundation

/// When a layer is allowed to have someone on call, in the schedule's time zone.
public enum ScheduleRestriction: Sendable, Equatable {
    /// Every day from `startSecondOfDay` (local) for `durationSeconds` (may run past midnight).
    case daily(startSecondOfDay: Int, durationSeconds: Int)
    /// Every week from `weekday` (1 = Monday … 7 = Sunday) at `startSecondOfDay` for `durationSeconds`.
    case weekly(weekday: Int, startSecondOfDay: Int, durationSeconds: Int)
}

public struct ScheduleLayer: Sendable, Equatable {
    /// Rotation order.
    public var users: [UInt64]
    /// The instant the first user's first turn starts (it may lie in the past or the future).
    public var rotationVirtualStart: Millis
    public var turnLengthSeconds: UInt32
    /// Empty: no restriction.
    public var restrictions: [ScheduleRestriction]
    public var start: Millis?
    public var end: Millis?

    public init(
        users: [UInt64], rotationVirtualStart: Millis, turnLengthSeconds: UInt32, restrictions: [ScheduleRestriction] = [],
        start: Millis? = nil, end: Millis? = nil
    ) {
        self.users = users
        self.rotationVirtualStart = rotationVirtualStart
        self.turnLengthSeconds = turnLengthSeconds
        self.restrictions = restrictions
        self.start = start
        self.end = end
    }
}

public struct ScheduleOverride: Sendable, Equatable {
    public var user: UInt64
    public var start: Millis
    public var end: Millis

    public init(user: UInt64, start: Millis, end: Millis) {
        self.user = user
        self.start = start
        self.end = end
    }
}

/// An on-call schedule. Who is on call at an instant is a pure function of the schedule and
/// the instant: overrides first (the last one listed wins), then the layers from the last to the
/// first — a later layer wins wherever it has someone on call.
public struct Schedule: Sendable, Equatable {
    public var timeZone: String
    public var layers: [ScheduleLayer]
    public var overrides: [ScheduleOverride]

    public init(timeZone: String, layers: [ScheduleLayer], overrides: [ScheduleOverride] = []) {
        self.timeZone = timeZone
        self.layers = layers
        self.overrides = overrides
    }

    public func onCall(at instant: Millis) -> [UInt64] {
        if let override = overrides.last(where: { $0.start <= instant && instant < $0.end }) { return [override.user] }
        let zone = TimeZone(identifier: timeZone) ?? TimeZone(identifier: "UTC")!
        for layer in layers.reversed() {
            if let user = layer.onCall(at: instant, zone: zone) { return [user] }
        }
        return []
    }

    /// Field violations for storing a schedule (1–… layers with users and a turn ≥ 1 s, known time zone).
    public func violations() -> [(field: String, description: String)] {
        var violations: [(field: String, description: String)] = []
        if TimeZone(identifier: timeZone) == nil { violations.append(("time_zone", "unknown time zone \"\(timeZone)\"")) }
        if layers.isEmpty { violations.append(("layers", "at least one layer is required")) }
        for (index, layer) in layers.enumerated() {
            if layer.users.isEmpty { violations.append(("layers[\(index)].users", "at least one user is required")) }
            if layer.turnLengthSeconds < 1 { violations.append(("layers[\(index)].rotation_turn_length_seconds", "must be at least 1")) }
            if let start = layer.start, let end = layer.end, end <= start {
                violations.append(("layers[\(index)].end", "must be after start"))
            }
            for restriction in layer.restrictions {
                switch restriction {
                case let .daily(start, duration):
                    if !(0..<86_400).contains(start) || !(1...86_400).contains(duration) {
                        violations.append(("layers[\(index)].restrictions", "daily: start within the day, duration 1 s – 24 h"))
                    }
                case let .weekly(weekday, start, duration):
                    if !(1...7).contains(weekday) || !(0..<86_400).contains(start) || !(1...604_800).contains(duration) {
                        violations.append(("layers[\(index)].restrictions", "weekly: weekday 1–7, start within the day, duration 1 s – 7 days"))
                    }
                }
            }
        }
        for (index, override) in overrides.enumerated() where override.end <= override.start {
            violations.append(("overrides[\(index)].end", "must be after start"))
        }
        return violations
    }
}

extension ScheduleLayer {
    /// Local wall-clock seconds: UTC seconds plus the zone's offset at that instant. Counting
    /// turns in local time keeps handoffs at the same wall-clock time across DST changes.
    static func localSeconds(_ instant: Millis, _ zone: TimeZone) -> Int64 {
        let seconds = floorDiv(instant, 1000)
        return seconds + Int64(zone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(seconds))))
    }

    func onCall(at instant: Millis, zone: TimeZone) -> UInt64? {
        guard !users.isEmpty, turnLengthSeconds > 0 else { return nil }
        if let start, instant < start { return nil }
        if let end, instant >= end { return nil }
        let local = Self.localSeconds(instant, zone)
        if !restrictions.isEmpty, !restrictions.contains(where: { $0.contains(localSeconds: local) }) { return nil }
        let elapsed = local - Self.localSeconds(rotationVirtualStart, zone)
        let turn = floorDiv(elapsed, Int64(turnLengthSeconds))
        let index = ((turn % Int64(users.count)) + Int64(users.count)) % Int64(users.count)
        return users[Int(index)]
    }
}

extension ScheduleRestriction {
    func contains(localSeconds local: Int64) -> Bool {
        let secondOfDay = ((local % 86_400) + 86_400) % 86_400
        switch self {
        case let .daily(start, duration):
            return ((secondOfDay - Int64(start)) % 86_400 + 86_400) % 86_400 < Int64(duration)
        case let .weekly(weekday, start, duration):
            // 1970-01-01 was a Thursday: day 0 has Monday-based index 3.
            let mondayIndex = ((floorDiv(local, 86_400) + 3) % 7 + 7) % 7
            let secondOfWeek = mondayIndex * 86_400 + secondOfDay
            let windowStart = Int64(weekday - 1) * 86_400 + Int64(start)
            return ((secondOfWeek - windowStart) % 604_800 + 604_800) % 604_800 < Int64(duration)
        }
    }
}

func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
    let quotient = a / b
    return (a % b != 0 && (a < 0) != (b < 0)) ? quotient - 1 : quotient
}
