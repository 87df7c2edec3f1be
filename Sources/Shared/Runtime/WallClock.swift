import KlaxonDomain

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The only place services read the time and wait for it; domain code receives it as a value.
/// Work loops sleep on it too, so a test's ManualClock drives timers, backoffs and leases:
/// moving it wakes every sleeper whose instant has come.
public protocol WallClock: Sendable {
    func nowMs() -> Millis
    /// Returns once the clock reads `instant` or later; throws CancellationError when cancelled.
    func sleep(untilMs instant: Millis) async throws
    /// Calls `action` once the clock reads `instant` (at once if it already does), unless the
    /// returned alarm is cancelled first. A `Waker` waits on one: a poke cancels it on the spot.
    func alarm(atMs instant: Millis, _ action: @escaping @Sendable () -> Void) -> Alarm
}

/// A pending `WallClock.alarm`; cancelling it after it rang does nothing.
public struct Alarm: Sendable {
    private let cancelAction: @Sendable () -> Void

    public init(cancel: @escaping @Sendable () -> Void) {
        self.cancelAction = cancel
    }

    public func cancel() { cancelAction() }
}

extension WallClock {
    /// A task that sleeps on the clock.
    public func alarm(atMs instant: Millis, _ action: @escaping @Sendable () -> Void) -> Alarm {
        let task = Task {
            do { try await sleep(untilMs: instant) } catch { return }
            action()
        }
        return Alarm { task.cancel() }
    }

    public func sleep(for duration: Duration) async throws {
        try await sleep(untilMs: nowMs() + duration.milliseconds)
    }
}

extension Duration {
    /// Whole milliseconds, rounded up (a sleep never ends early).
    public var milliseconds: Millis {
        let (seconds, attoseconds) = components
        return seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
    }
}

public struct SystemWallClock: WallClock {
    public init() {}

    public func sleep(untilMs instant: Millis) async throws {
        let wait = instant - nowMs()
        if wait > 0 { try await Task.sleep(for: .milliseconds(wait)) }
    }

    public func nowMs() -> Millis {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Millis(spec.tv_sec) * 1000 + Millis(spec.tv_nsec) / 1_000_000
    }
}
