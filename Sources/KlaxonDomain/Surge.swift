/// Surge detection (PRODUCT.md, "Major incident response"): a pure function of counts and time.
/// The caller counts new incidents in PostgreSQL (so every replica sees the same numbers) and
/// keeps the state there; this decides.
///
/// A surge starts when, in the last `windowMs`, the new incidents reach `minIncidents` (N, the
/// floor: always required) and, when `rateFactor` (K) > 0, also K times what the trailing hour's
/// rate predicts for such a window, and they span at least `minServices` services. A quiet
/// install does not declare a P1 because 12 incidents arrived after a quiet hour. It goes on while that holds; it ends once it has not held for
/// `quietPeriodMs` (hysteresis: a rate that hovers at the threshold does not open and close
/// major incidents over and over).
public struct SurgeSettings: Sendable, Equatable {
    public var enabled: Bool
    public var windowMs: Millis
    /// N: the floor, always required: fewer new incidents in the window are never a surge.
    public var minIncidents: Int
    /// K: how many times the trailing hour's rate (scaled to the window) the window must also
    /// reach (0: no rate test; N alone decides).
    public var rateFactor: Double
    /// S: services the window's new incidents must span.
    public var minServices: Int
    public var quietPeriodMs: Millis

    public init(
        enabled: Bool = true, windowMs: Millis = 300_000, minIncidents: Int = 50, rateFactor: Double = 10,
        minServices: Int = 3, quietPeriodMs: Millis = 600_000
    ) {
        self.enabled = enabled
        self.windowMs = windowMs
        self.minIncidents = minIncidents
        self.rateFactor = rateFactor
        self.minServices = minServices
        self.quietPeriodMs = quietPeriodMs
    }

    /// What is wrong with these settings, field by field (empty: valid).
    public var violations: [(field: String, problem: String)] {
        var found: [(String, String)] = []
        if windowMs < 10_000 || windowMs > 3_600_000 { found.append(("window_seconds", "must be 10 to 3600")) }
        if minIncidents < 1 { found.append(("min_incidents", "must be ≥ 1 (the floor every surge needs)")) }
        if !(rateFactor >= 0) || rateFactor > 1_000 { found.append(("rate_factor", "must be 0 to 1000")) }
        if minServices < 1 || minServices > 1_000 { found.append(("min_services", "must be 1 to 1000")) }
        if quietPeriodMs < 0 || quietPeriodMs > 86_400_000 { found.append(("quiet_period_seconds", "must be 0 to 86400")) }
        return found
    }
}

/// What the database says about the recent past, at `now`.
public struct SurgeCounts: Sendable, Equatable {
    /// New incidents created in (now − window, now].
    public var inWindow: Int
    /// Distinct services among them.
    public var servicesInWindow: Int
    /// New incidents created in the hour before the window: (now − window − 1 h, now − window].
    public var trailingHour: Int

    public init(inWindow: Int, servicesInWindow: Int, trailingHour: Int) {
        self.inWindow = inWindow
        self.servicesInWindow = servicesInWindow
        self.trailingHour = trailingHour
    }
}

public enum SurgeState: Sendable, Equatable {
    case quiet
    /// `lastAboveAt`: the last evaluation that found the threshold crossed.
    case surging(since: Millis, lastAboveAt: Millis)
}

public enum SurgeDecision: Sendable, Equatable {
    /// Nothing to do.
    case none
    /// A surge begins: open one major incident titled `summary`, link the window's incidents.
    case open(summary: String)
    /// The surge goes on: link the new incidents to its major incident.
    case continues
    /// The surge is over (quiet for the quiet period).
    case end
}

public enum SurgeDetector {
    /// Whether the counts cross the threshold.
    public static func isAbove(_ counts: SurgeCounts, _ settings: SurgeSettings) -> Bool {
        guard counts.servicesInWindow >= settings.minServices, counts.inWindow > 0 else { return false }
        // N is the floor, always required.
        guard counts.inWindow >= max(settings.minIncidents, 1) else { return false }
        guard settings.rateFactor > 0 else { return true }
        // The rate test on top: K times the trailing hour's rate scaled to one window (never
        // less than one incident a window).
        let expected = max(Double(counts.trailingHour) * Double(settings.windowMs) / 3_600_000, 1)
        return Double(counts.inWindow) >= settings.rateFactor * expected
    }

    public static func evaluate(
        _ counts: SurgeCounts, state: SurgeState, settings: SurgeSettings, now: Millis
    ) -> (decision: SurgeDecision, state: SurgeState) {
        let above = settings.enabled && isAbove(counts, settings)
        switch state {
        case .quiet:
            guard above else { return (.none, .quiet) }
            let minutes = max(1, Int((settings.windowMs + 59_999) / 60_000))
            let summary = "Surge: \(counts.inWindow) incidents across \(counts.servicesInWindow) services in \(minutes) min"
            return (.open(summary: summary), .surging(since: now, lastAboveAt: now))
        case let .surging(since, lastAboveAt):
            if above { return (.continues, .surging(since: since, lastAboveAt: now)) }
            if !settings.enabled || now - lastAboveAt >= settings.quietPeriodMs { return (.end, .quiet) }
            return (.continues, state)
        }
    }
}
