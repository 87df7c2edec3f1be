/// A per-routing-key event budget: `perMinute` tokens refill continuously up to `burst`; each
/// event takes one. `perMinute == 0` means no limit.
public struct TokenBucket: Sendable, Equatable {
    public var perMinute: Int
    public var burst: Int
    public private(set) var tokens: Double
    public private(set) var updatedAt: Millis

    public init(perMinute: Int, burst: Int, now: Millis) {
        self.perMinute = perMinute
        self.burst = max(burst, 1)
        self.tokens = Double(max(burst, 1))
        self.updatedAt = now
    }

    /// Takes a token if one is available at `now`; false means over the limit.
    public mutating func take(now: Millis) -> Bool {
        guard perMinute > 0 else { return true }
        if now > updatedAt {
            tokens = min(Double(burst), tokens + Double(now - updatedAt) * Double(perMinute) / 60_000)
            updatedAt = now
        }
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }

    /// Milliseconds until the next token, for a Retry-After hint.
    public func msUntilNextToken() -> Millis {
        guard perMinute > 0, tokens < 1 else { return 0 }
        return Millis(((1 - tokens) * 60_000 / Double(perMinute)).rounded(.up))
    }

    /// New limits keep the tokens already earned (capped at the new burst).
    public mutating func reconfigure(perMinute: Int, burst: Int) {
        guard perMinute != self.perMinute || burst != self.burst else { return }
        self.perMinute = perMinute
        self.burst = max(burst, 1)
        tokens = min(tokens, Double(self.burst))
    }
}
