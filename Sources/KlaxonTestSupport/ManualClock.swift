import KlaxonDomain
import NIOConcurrencyHelpers
import Shared

/// A clock tests move by hand. Sleepers (work loops waiting for their next due instant, backoffs,
/// leases) wake when the clock is moved to or past their instant, never by themselves; a test can
/// wait until a given number of them are asleep again, i.e. until the loops it moved have done
/// their step (the pattern of postgres-nio's MockClock).
public final class ManualClock: WallClock {
    private struct Sleeper {
        var until: Millis
        var continuation: CheckedContinuation<Void, Error>
    }

    private struct State {
        var now: Millis
        var sleepers: [Int: Sleeper] = [:]
        var nextID = 0
        /// Work in flight outside the loops (pages being sent).
        var working = 0
    }

    private let state: NIOLockedValueBox<State>

    public init(_ start: Millis = 1_800_000_000_000) {
        state = NIOLockedValueBox(State(now: start))
    }

    public func nowMs() -> Millis { state.withLockedValue { $0.now } }

    /// How many are asleep on this clock right now.
    public var sleeperCount: Int { state.withLockedValue { $0.sleepers.count } }

    public func workBegan(_ count: Int) { state.withLockedValue { $0.working += count } }
    public func workEnded() { state.withLockedValue { $0.working -= 1 } }

    /// The earliest instant someone sleeps until.
    public var nextWakeUp: Millis? { state.withLockedValue { $0.sleepers.values.map(\.until).min() } }

    public func sleep(untilMs instant: Millis) async throws {
        let id = state.withLockedValue { state in
            state.nextID += 1
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
                let ready = state.withLockedValue { state -> Result<Void, Error>? in
                    if Task.isCancelled { return .failure(CancellationError()) }
                    if instant <= state.now { return .success(()) }
                    state.sleepers[id] = Sleeper(until: instant, continuation: continuation)
                    return nil
                }
                if let ready { continuation.resume(with: ready) }
            }
        } onCancel: {
            let sleeper = state.withLockedValue { $0.sleepers.removeValue(forKey: id) }
            sleeper?.continuation.resume(throwing: CancellationError())
        }
    }

    public func advance(byMs delta: Millis) {
        set(nowMs() + delta)
    }

    /// Moves the clock (never backwards for sleepers: an earlier instant wakes nobody).
    public func set(_ instant: Millis) {
        let due = state.withLockedValue { state -> [CheckedContinuation<Void, Error>] in
            state.now = instant
            let due = state.sleepers.filter { $0.value.until <= instant }
            for id in due.keys { state.sleepers.removeValue(forKey: id) }
            return due.values.map(\.continuation)
        }
        for continuation in due { continuation.resume() }
    }

    /// Waits (in real time, up to `timeout`) until at least `count` are asleep and stay so for a
    /// moment, with no work in flight: the loops woken by a move have finished their step and
    /// what they started (pages being sent). False on timeout.
    @discardableResult
    public func waitForSleepers(_ count: Int, timeout: Duration = .seconds(10)) async -> Bool {
        let start = ContinuousClock.now
        var stableSince: ContinuousClock.Instant?
        while ContinuousClock.now - start < timeout {
            if state.withLockedValue({ $0.sleepers.count >= count && $0.working == 0 }) {
                if let since = stableSince {
                    if ContinuousClock.now - since >= .milliseconds(30) { return true }
                } else {
                    stableSince = .now
                }
            } else {
                stableSince = nil
            }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return false
    }
}
