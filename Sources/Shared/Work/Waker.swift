import KlaxonDomain
import NIOConcurrencyHelpers

/// Wakes a work loop early: `poke()` after committing new due work, `wait(timeout:)` in the loop.
/// A poke with nobody waiting is remembered, so none is lost between a loop's check and its wait.
public final class Waker: Sendable {
    private struct State {
        var poked = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state = NIOLockedValueBox(State())

    public init() {}

    public func poke() {
        let waiter = state.withLockedValue { state -> CheckedContinuation<Void, Never>? in
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.poked = true
            return nil
        }
        waiter?.resume()
    }

    /// Returns on a poke, once `clock` reads `deadline`, or when the task is cancelled.
    public func wait(until deadline: Millis, on clock: any WallClock) async {
        if state.withLockedValue({ state in defer { state.poked = false }; return state.poked }) { return }
        let timer = Task {
            do { try await clock.sleep(untilMs: deadline) } catch { return }
            self.poke()
        }
        defer { timer.cancel() }
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
                if now { continuation.resume() }
            }
        } onCancel: {
            self.poke()
        }
    }
}
