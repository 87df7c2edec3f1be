import KlaxonDomain
import NIOConcurrencyHelpers

/// One backoff per destination, shared by its pages (issue 29, point 4): after a failed attempt
/// (a refused or reset connection, a timeout, 5xx, 429; not a page's own permanent 4xx) the
/// address takes no new page for 1 s, doubling to 60 s (or the 429's Retry-After); then one new
/// page probes it (half-open), and its success opens it to every page again. New pages to it are
/// not even claimed meanwhile, so a refusing endpoint's pages do not pile up attempts: claims, CPU
/// and outcome writes stay with the destinations that answer. A page already attempted keeps its
/// own retry schedule (to the end of its delivery window); a page that waited past the delivery
/// window for an address still failing is failed without an attempt.
/// Kept per Notifier process (replicas each learn it from their own attempts).
final class DestinationBackoff: Sendable {
    struct State: Sendable {
        var failures: Int
        var until: Millis
        var lastError: String
    }

    let firstMs: Millis
    let capMs: Millis
    private let states = NIOLockedValueBox([String: State]())

    init(firstMs: Millis = 1_000, capMs: Millis = 60_000) {
        self.firstMs = firstMs
        self.capMs = capMs
    }

    func failed(_ address: String, at now: Millis, error: String, retryAfterMs: Millis?) {
        states.withLockedValue { states in
            var state = states[address] ?? State(failures: 0, until: 0, lastError: "")
            state.failures += 1
            let wait = retryAfterMs ?? Backoff.delay(afterFailures: state.failures, first: firstMs, cap: capMs)
            state.until = now + max(wait, 0)
            state.lastError = error
            states[address] = state
        }
    }

    func succeeded(_ address: String) {
        _ = states.withLockedValue { $0.removeValue(forKey: address) }
    }

    /// Addresses not to claim for at `now`: backing off, or half-open with their probe in flight.
    func closed(at now: Millis, inFlight: [String: Int]) -> Set<String> {
        states.withLockedValue { states in
            Set(states.compactMap { address, state in state.until > now || inFlight[address, default: 0] > 0 ? address : nil })
        }
    }

    /// How many attempts an address may have in flight: one while it is failing (the probe).
    func limit(_ address: String, normal: Int) -> Int {
        states.withLockedValue { $0[address] == nil ? normal : 1 }
    }

    /// Still failing at `now` (backing off): its last error.
    func failing(_ address: String, at now: Millis) -> String? {
        states.withLockedValue { states in states[address].flatMap { $0.until > now ? $0.lastError : nil } }
    }

    /// When the earliest backoff ends (the loop wakes for the probe).
    func nextOpening(after now: Millis) -> Millis? {
        states.withLockedValue { states in states.values.map(\.until).filter { $0 > now }.min() }
    }
}
