import NIOConcurrencyHelpers

/// A value set once (e.g. the port a listener bound) that any number of tasks can await.
/// Unlike an EventLoopPromise it may be dropped unset (a service built but never run).
public final class Latch<Value: Sendable>: Sendable {
    private struct State {
        var result: Result<Value, Error>?
        var waiters: [CheckedContinuation<Value, Error>] = []
    }

    private let state = NIOLockedValueBox(State())

    public init() {}

    /// Only the first call has an effect.
    public func resolve(_ result: Result<Value, Error>) {
        let waiters = state.withLockedValue { state -> [CheckedContinuation<Value, Error>] in
            guard state.result == nil else { return [] }
            state.result = result
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(with: result) }
    }

    public func wait() async throws -> Value {
        try await withCheckedThrowingContinuation { continuation in
            let ready = state.withLockedValue { state -> Result<Value, Error>? in
                if let result = state.result { return result }
                state.waiters.append(continuation)
                return nil
            }
            if let ready { continuation.resume(with: ready) }
        }
    }
}
