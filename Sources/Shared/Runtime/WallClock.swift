import KlaxonDomain

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The only place services read the time; domain code receives it as a value.
public protocol WallClock: Sendable {
    func nowMs() -> Millis
}

public struct SystemWallClock: WallClock {
    public init() {}
    public func nowMs() -> Millis {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Millis(spec.tv_sec) * 1000 + Millis(spec.tv_nsec) / 1_000_000
    }
}
