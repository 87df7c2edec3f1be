import KlaxonDomain
import NIOConcurrencyHelpers
import Shared

/// A clock tests move by hand. Sleepers (work loops waiting for their next due instant, backoffs,
/// leases) wake when the clock is moved to or past their instant, never by themselves. A test
/// waits for the loops it moved to finish their step: `waitForSleepers` returns on the event that
/// makes enough of them asleep again (the pattern of postgres-nio's MockClock), not by polling.
/// A loop counts as asleep exactly while it waits and nobody poked it (`Waker` cancels its alarm
/// on a poke, before the loop runs).
public final class ManualClock: WallClock {
    private struct Sleeper {
        var until: Millis
        var wake: @Sendable () -> Void
    }

    private struct Watcher {
        var count: Int
        var condition: @Sendable () -> Bool
        var continuation: CheckedContinuation<Bool, Never>
    }

    private struct State {
        var now: Millis
        var sleepers: [Int: Sleeper] = [:]
        var nextID = 0
        var watchers: [Int: Watcher] = [:]

        /// Takes out the watchers whose wait is over.
        mutating func satisfied() -> [CheckedContinuation<Bool, Never>] {
            let count = sleepers.count
            let done = watchers.filter { count >= $0.value.count && $0.value.condition() }
            for id in done.keys { watchers.removeValue(forKey: id) }
            return done.values.map(\.continuation)
        }
    }

    private let state: NIOLockedValueBox<State>

    public init(_ start: Millis = 1_800_000_000_000) {
        state = NIOLockedValueBox(State(now: start))
    }

    public func nowMs() -> Millis { state.withLockedValue { $0.now } }

    /// How many are asleep on this clock right now.
    public var sleeperCount: Int { state.withLockedValue { $0.sleepers.count } }

    /// The earliest instant someone sleeps until.
    public var nextWakeUp: Millis? { state.withLockedValue { $0.sleepers.values.map(\.until).min() } }

    public func alarm(atMs instant: Millis, _ action: @escaping @Sendable () -> Void) -> Alarm {
        let (id, ringNow, watchers) = state.withLockedValue { state -> (Int, Bool, [CheckedContinuation<Bool, Never>]) in
            state.nextID += 1
            if instant <= state.now { return (state.nextID, true, []) }
            state.sleepers[state.nextID] = Sleeper(until: instant, wake: action)
            return (state.nextID, false, state.satisfied())
        }
        for watcher in watchers { watcher.resume(returning: true) }
        if ringNow { action() }
        return Alarm { [weak self] in self?.remove(id) }
    }

    private func remove(_ id: Int) {
        _ = state.withLockedValue { $0.sleepers.removeValue(forKey: id) }
    }

    public func sleep(untilMs instant: Millis) async throws {
        let box = NIOLockedValueBox<(alarm: Alarm?, continuation: CheckedContinuation<Void, Error>?, cancelled: Bool)>((nil, nil, false))
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
                let cancelled = box.withLockedValue { box -> Bool in
                    box.continuation = continuation
                    return box.cancelled
                }
                if cancelled {
                    box.withLockedValue { $0.continuation = nil }
                    continuation.resume(throwing: CancellationError())
                    return
                }
                let alarm = self.alarm(atMs: instant) {
                    box.withLockedValue { box in defer { box.continuation = nil }; return box.continuation }?.resume()
                }
                box.withLockedValue { $0.alarm = alarm }
            }
        } onCancel: {
            let (alarm, continuation) = box.withLockedValue { box in
                box.cancelled = true
                defer { box.continuation = nil }
                return (box.alarm, box.continuation)
            }
            alarm?.cancel()
            continuation?.resume(throwing: CancellationError())
        }
    }

    public func advance(byMs delta: Millis) {
        set(nowMs() + delta)
    }

    /// Moves the clock (never backwards for sleepers: an earlier instant wakes nobody).
    public func set(_ instant: Millis) {
        let due = state.withLockedValue { state -> [@Sendable () -> Void] in
            state.now = instant
            let due = state.sleepers.filter { $0.value.until <= instant }.sorted { $0.value.until < $1.value.until }
            for (id, _) in due { state.sleepers.removeValue(forKey: id) }
            return due.map(\.value.wake)
        }
        for wake in due { wake() }
    }

    /// Waits (in real time, up to `timeout`) until at least `count` are asleep and `condition`
    /// holds (work the loops started outside them is done, e.g. no page in flight): the loops
    /// woken by a move have finished their step. Checked now and on every new sleeper, not by
    /// polling; `condition` must only turn true together with a poke of some loop (a finished
    /// page pokes its loop). False on timeout.
    @discardableResult
    public func waitForSleepers(
        _ count: Int, timeout: Duration = .seconds(10), condition: @escaping @Sendable () -> Bool = { true }
    ) async -> Bool {
        let id = state.withLockedValue { state in
            state.nextID += 1
            return state.nextID
        }
        let timer = Task {
            try? await Task.sleep(for: timeout)
            state.withLockedValue { $0.watchers.removeValue(forKey: id) }?.continuation.resume(returning: false)
        }
        defer { timer.cancel() }
        return await withCheckedContinuation { continuation in
            let ready = state.withLockedValue { state -> Bool in
                if state.sleepers.count >= count && condition() { return true }
                state.watchers[id] = Watcher(count: count, condition: condition, continuation: continuation)
                return false
            }
            if ready { continuation.resume(returning: true) }
        }
    }
}
