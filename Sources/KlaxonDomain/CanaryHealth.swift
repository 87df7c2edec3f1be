/// Whether the pager is watching itself successfully (issue 26, "the pager watches itself"): a
/// canary round trip (Ingest → Assignment → Notifier → Klaxon's loopback receiver) starts every
/// interval, and a completed one pings the outbound watchdog. The pipeline counts as stalled when
/// no round trip completed in the last two intervals: one late round is noise, two are an outage
/// (the watchdog's pings have stopped by then too). A process that has watched for less than two
/// intervals and seen no round trip yet is still waiting, not stalled.
public enum CanaryHealth: Equatable, Sendable, CustomStringConvertible {
    /// KLAXON_CANARY_INTERVAL_SECONDS=0.
    case off
    /// The last completed round trip: how long it took and how long ago it completed.
    case healthy(roundTripMs: Millis, agoMs: Millis)
    /// Nothing completed yet, and the process has watched for less than two intervals.
    case waiting(sinceMs: Millis)
    /// Nothing completed in two intervals (`lastAgoMs` nil: never).
    case stalled(lastAgoMs: Millis?, intervalMs: Millis)

    /// How long without a completed round trip means stalled.
    public static func staleAfterMs(intervalMs: Millis) -> Millis { 2 * intervalMs }

    /// `last`: the latest completed round trip anywhere (any replica's), as its start and
    /// delivery instants; `watchingSince`: when this process started looking.
    public static func evaluate(
        intervalMs: Millis, last: (startedAt: Millis, deliveredAt: Millis)?, watchingSince: Millis, now: Millis
    ) -> CanaryHealth {
        guard intervalMs > 0 else { return .off }
        let limit = staleAfterMs(intervalMs: intervalMs)
        if let last, now - last.deliveredAt <= limit {
            return .healthy(roundTripMs: max(0, last.deliveredAt - last.startedAt), agoMs: max(0, now - last.deliveredAt))
        }
        if last == nil, now - watchingSince <= limit { return .waiting(sinceMs: max(0, now - watchingSince)) }
        return .stalled(lastAgoMs: last.map { max(0, now - $0.deliveredAt) }, intervalMs: intervalMs)
    }

    /// Whether a deep readiness probe passes.
    public var isReady: Bool {
        if case .stalled = self { return false }
        return true
    }

    public var description: String {
        switch self {
        case .off:
            "canary off (KLAXON_CANARY_INTERVAL_SECONDS=0)"
        case let .healthy(roundTripMs, agoMs):
            "canary round trip \(Self.seconds(roundTripMs)) s, completed \(Self.seconds(agoMs)) s ago"
        case let .waiting(sinceMs):
            "canary: no round trip completed yet (watching for \(Self.seconds(sinceMs)) s)"
        case let .stalled(lastAgoMs, intervalMs):
            "the pipeline is stalled: no canary round trip completed in the last \(Self.seconds(Self.staleAfterMs(intervalMs: intervalMs))) s "
                + "(two intervals of \(Self.seconds(intervalMs)) s; "
                + (lastAgoMs.map { "the last one \(Self.seconds($0)) s ago" } ?? "none seen") + ")"
        }
    }

    /// "0.042" under 10 s, whole seconds from there.
    static func seconds(_ ms: Millis) -> String {
        guard ms < 10_000 else { return "\((ms + 500) / 1000)" }
        let fraction = String(ms % 1000)
        return "\(ms / 1000)." + String(repeating: "0", count: 3 - fraction.count) + fraction
    }
}
