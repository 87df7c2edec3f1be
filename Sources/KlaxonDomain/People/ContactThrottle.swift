/// How often one phone may be texted or called (PRODUCT.md, "No flood in a surge"; GoAlert's
/// defaults): at most one SMS or call a minute, and 5 SMS / 3 calls in any 15 minutes, per
/// contact method. What is held back is bundled into the next message. Pure: instants are given.
public struct ThrottleRule: Sendable, Equatable {
    public var count: Int
    public var perMs: Millis

    public init(count: Int, perMs: Millis) {
        self.count = count
        self.perMs = perMs
    }
}

public enum ContactThrottle {
    /// The rules for a contact kind (none for webhooks, chat, email and push).
    public static func rules(kind: String, smsPer15Minutes: Int, voicePer15Minutes: Int, gapMs: Millis) -> [ThrottleRule] {
        let window: Millis = 15 * 60 * 1000
        switch kind {
        case ContactKind.sms.name: return [ThrottleRule(count: 1, perMs: gapMs), ThrottleRule(count: smsPer15Minutes, perMs: window)]
        case ContactKind.phone.name: return [ThrottleRule(count: 1, perMs: gapMs), ThrottleRule(count: voicePer15Minutes, perMs: window)]
        default: return []
        }
    }

    /// The earliest instant ≥ `now` at which one more send keeps every rule, given the instants
    /// of the sends already made: a rule (c per p) allows a send at t when fewer than c sends are
    /// in (t − p, t].
    public static func nextAllowed(sends: [Millis], now: Millis, rules: [ThrottleRule]) -> Millis {
        let sorted = sends.sorted()
        var at = now
        var moved = true
        while moved {
            moved = false
            for rule in rules where rule.count > 0 {
                let recent = sorted.filter { $0 > at - rule.perMs && $0 <= at }
                if recent.count >= rule.count {
                    let freedAt = recent[recent.count - rule.count] + rule.perMs
                    if freedAt > at {
                        at = freedAt
                        moved = true
                    }
                }
            }
        }
        return at
    }

    /// The longest window of the rules (how far back sends matter).
    public static func horizon(_ rules: [ThrottleRule]) -> Millis { rules.map(\.perMs).max() ?? 0 }
}
