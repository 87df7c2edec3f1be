import KlaxonDomain
import NIOConcurrencyHelpers
import Shared

/// A clock tests move by hand.
public final class ManualClock: WallClock {
    private let current: NIOLockedValueBox<Millis>

    public init(_ start: Millis = 1_800_000_000_000) {
        current = NIOLockedValueBox(start)
    }

    public func nowMs() -> Millis { current.withLockedValue { $0 } }

    public func advance(byMs delta: Millis) {
        current.withLockedValue { $0 += delta }
    }

    public func set(_ instant: Millis) {
        current.withLockedValue { $0 = instant }
    }
}
