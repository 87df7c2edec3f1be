import KlaxonDomain
import NIOConcurrencyHelpers

/// Wakes a work loop early: `poke()` after committing new due work, `wait(timeout:)` in the loop.
/// A poke with nobody waiting is remembered, so none is lost between a loop's check and its wait.
public final class Waker: Sendable {
    private struct State {
        var poked = false
        /// Its loop is running a step (set by `DueWorkLoop`).
        var busy = false
        var waiter: CheckedContinuation<Void, Never>?
        /// The clock alarm ending the current wait; a poke cancels it before waking the waiter,
        /// so a loop is asleep on its clock exactly while it waits and nobody poked it.
        var alarm: Alarm?
    }

    private let state = NIOLockedValueBox(State())
    /// A second loop doing the same work: poked too when this one's loop is busy, so new work
    /// starts at once instead of waiting for the step in progress (an outbox relay's second
    /// lane: it claims what came in while the first waits for its peer's reply).
    private let overflow: Waker?

    public init(overflow: Waker? = nil) {
        self.overflow = overflow
    }

    public func poke() {
        let (waiter, alarm, busy) = state.withLockedValue { state -> (CheckedContinuation<Void, Never>?, Alarm?, Bool) in
            defer { state.alarm = nil }
            if let waiter = state.waiter {
                state.waiter = nil
                return (waiter, state.alarm, state.busy)
            }
            state.poked = true
            return (nil, state.alarm, state.busy)
        }
        alarm?.cancel()
        waiter?.resume()
        if busy { overflow?.poke() }
    }

    /// A poke is waiting for the loop's next wait (it will not sleep).
    public var isPoked: Bool { state.withLockedValue { $0.poked } }

    /// Set by the loop around each step.
    public func setBusy(_ busy: Bool) {
        guard overflow != nil else { return }
        state.withLockedValue { $0.busy = busy }
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
