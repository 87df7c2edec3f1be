/// PRODUCT.md, "Reaching people": a contact method is verified before it is paged. SMS, phone
/// and email methods prove their address with a 6-digit code sent to it: valid 10 minutes, 5
/// tries; a new code may be asked for once a minute and replaces the old one. Webhooks, chat and
/// push need no code (they are URLs or tokens the person configured themselves).
public enum ContactVerification {
    public static let codeDigits = 6
    public static let codeLifetimeMs: Millis = 10 * 60_000
    public static let tries = 5
    public static let resendGapMs: Millis = 60_000
    /// A method whose last `failingAfter` pages all failed is flagged in `klaxon user show`.
    public static let failingAfter = 3

    /// Whether a method of this kind needs a code before it is paged.
    public static func needsCode(_ kind: String) -> Bool {
        kind == ContactKind.sms.name || kind == ContactKind.phone.name || kind == ContactKind.email.name
    }

    /// Exactly six ASCII digits (spaces around them ignored by the caller).
    public static func isWellFormed(_ code: String) -> Bool {
        code.utf8.count == codeDigits && code.utf8.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
    }

    /// The code a method is waiting for (its hash is the store's business).
    public struct Pending: Sendable, Equatable {
        public var sentAt: Millis
        public var expiresAt: Millis
        public var triesLeft: Int

        public init(sentAt: Millis, expiresAt: Millis, triesLeft: Int) {
            self.sentAt = sentAt
            self.expiresAt = expiresAt
            self.triesLeft = triesLeft
        }

        /// A code sent at `now`.
        public static func issued(at now: Millis) -> Pending {
            Pending(sentAt: now, expiresAt: now + codeLifetimeMs, triesLeft: tries)
        }
    }

    public enum Verdict: Sendable, Equatable {
        case verified
        /// Wrong code; `triesLeft` after this one (0: the code is used up).
        case wrong(triesLeft: Int)
        case expired
        case exhausted
        case noCode
    }

    /// A try with a code that `matches` (or not) the pending one, at `now`. Expired and used-up
    /// codes refuse even the right code; a wrong try costs one.
    public static func check(matches: Bool, pending: Pending?, now: Millis) -> Verdict {
        guard let pending else { return .noCode }
        if now >= pending.expiresAt { return .expired }
        if pending.triesLeft <= 0 { return .exhausted }
        return matches ? .verified : .wrong(triesLeft: pending.triesLeft - 1)
    }

    /// When a new code may be sent, given the last one (nil: now).
    public static func resendRefusedUntil(last: Pending?, now: Millis) -> Millis? {
        guard let last, now < last.sentAt + resendGapMs else { return nil }
        return last.sentAt + resendGapMs
    }

    /// Pages that failed in a row, most recent first, from the latest finished pages' outcomes
    /// (newest first): the method is failing when the count reaches `failingAfter`.
    public static func failuresInARow(_ outcomes: [String]) -> Int {
        outcomes.prefix { $0 == "failed" }.count
    }
}
