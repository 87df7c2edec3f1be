import KlaxonDomain
import NIOConcurrencyHelpers

/// Wakes a work loop early: `poke()` after committing new due work, `wait(timeout:)` in the loop.
/// A poke with nobody waiting is remembered, so none is lost between a loop's check and its wait.
public final class Waker: Sendable {
    private struct State {
        var poked = false
        var waiter: CheckedContinuation<Void, Never>?
        /// The clock alarm ending the current wait; a poke cancels it before waking the waiter,
        /// so a loop is asleep on its clock exactly while it waits and nobody poked it.
        var alarm: Alarm?
    }

    private let state = NIOLockedValueBox(State())

    public init() {}

    public func poke() {
        let (waiter, alarm) = state.withLockedValue { state -> (CheckedContinuation<Void, Never>?, Alarm?) in
            defer { state.alarm = nil }
            if let waiter = state.waiter {
                state.waiter = nil
                return (waiter, state.alarm)
            }
            state.poked = true
            return (nil, state.alarm)
        }
        alarm?.cancel()
        waiter?.resume()
    }

    /// Returns on a poke, once `clock` reads `deadline`, or when the task is cancelled.
    public func wait(until deadline: Millis, on clock: any WallClock) async {
        if state.withLockedValue({ state in defer { state.poked = false }; return state.poked }) { return }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let now = state.withLockedValue { state -> Bool in
                    if state.poked || Task.isCancelled {
                        state.poked = false
                        return true
                    }
                    state.waiter = continuation
                    return false
                }
                if now {
                    continuation.resume()
                    return
                }
                // Set after the waiter, outside the lock: the alarm may ring at once (a poke).
                let alarm = clock.alarm(atMs: deadline) { self.poke() }
                let stale = state.withLockedValue { state -> Bool in
                    guard state.waiter != nil else { return true }  // poked meanwhile
                    state.alarm = alarm
                    return false
                }
                if stale { alarm.cancel() }
            }
        } onCancel: {
            self.poke()
        }
    }
}
