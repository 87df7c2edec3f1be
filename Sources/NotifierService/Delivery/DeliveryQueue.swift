import KlaxonDomain
import Shared

/// One claimed attempt of the delivery engine: what to send, where, and what its queue needs to
/// record the outcome. Pages (`PageQueue`) and channel posts (`ChannelPostQueue`) both become
/// these, so lease → decide → deliver → retry → record is written once (`DeliveryEngine`).
struct DeliveryItem: Sendable {
    var id: String
    /// Index of the queue it came from in the engine's `queues`.
    var queue = 0
    var incidentID: Int64
    /// What it is in logs: "page", "channel post".
    var what: String
    /// The contact kind (masking) and the label its metrics carry ("": not counted, the canary's).
    var channel: String
    var metricChannel: String
    var address: String
    /// The contact method (pages; nil for channel posts): SMS and calls are throttled per method.
    var contactMethodID: Int64? = nil
    /// The channel delivering it, or nil when the configuration does not enable it (`notConfigured` says which setting).
    var deliverer: (any DeliveryChannel)?
    var notConfigured: String
    var reason: NotifyReason
    var decision: NotificationDecision
    var snapshot: IncidentSnapshot
    var current: IncidentSnapshot
    var user: WebhookMessage.UserRef
    var rule: WebhookMessage.RuleRef
    /// Attempts made before this one; nil until one was made (the delivery window counts from it).
    var attempts: Int
    var firstAttemptAt: Millis?
    /// When this attempt was due (a page's latency counts from it) and when it was claimed.
    var dueAt: Millis
    var claimedAt: Millis
    /// Counted in the page latency histogram (not channel posts, not the canary's pages).
    var countsAsPage: Bool
    /// A page of a service in shadow mode: recorded, never delivered.
    var shadow: ShadowPage? = nil
    /// Its sending slot (set by the engine's claim).
    var slot: SlotTicket? = nil

    struct ShadowPage: Sendable {
        var serviceID: Int64
        var minuteZero: Bool
    }
}

/// How an attempt ended; `at` is the attempt's own instant, `attempts` the count after it.
struct DeliveryResult: Sendable {
    enum Outcome: Sendable, Equatable {
        case sent(snapshot: Bool)
        case skipped(reason: String)
        case failed(error: String)
        case retry(at: Millis, error: String)
        /// Shadow mode: what would have been sent is recorded instead.
        case shadowed
    }

    var outcome: Outcome
    var at: Millis
    var attempts: Int
    /// Set once an attempt was made.
    var firstAttemptAt: Millis?

    var status: String {
        switch outcome {
        case .sent: "sent"
        case .skipped, .shadowed: "skipped"
        case .failed: "failed"
        case .retry: "pending"
        }
    }
}

/// A table of things to deliver. Each call runs inside the engine's transaction: a claim sets the
/// lease (FOR UPDATE SKIP LOCKED, so replicas never take one item at once), a record writes the
/// outcome and its timeline entry in the engine's group commit.
protocol DeliveryQueue: Sendable {
    /// Up to `limit` due items at `now`, leased until `now + leaseMs`, passing over those to
    /// `full` addresses. An item that cannot be attempted at all (an undecodable snapshot) is
    /// failed here, with its timeline entry, and not returned.
    /// `closed` addresses (backing off) hold back only items never attempted (queues that share
    /// the backoff): a page already in its own retry schedule keeps it.
    /// `inFlight` (attempts per address) and `perDestination` let a queue lease no more per
    /// address than fits; the engine puts back any excess.
    /// `more`: items it could have leased beyond `limit` were left (the engine claims again at
    /// once); false when it took every item that fits its address's room, so the next claim can
    /// only find something once a slot frees or new work comes (both poke the engine).
    func claim(
        _ connection: PGConnection, now: Millis, limit: Int, leaseMs: Millis, full: Set<String>, closed: Set<String>,
        inFlight: [String: Int], perDestination: Int
    ) throws -> (items: [DeliveryItem], more: Bool)
    /// Ends the lease of claimed items the engine has no slot for.
    func putBack(_ connection: PGConnection, ids: [String]) throws
    /// The earliest instant an item can be claimed (due, or its lease ended), nil when none waits;
    /// items to `closed` addresses (backing off) are left out: the engine wakes when they open.
    func nextDue(_ connection: PGConnection, now: Millis, closed: Set<String>) throws -> Millis?
    /// The earliest instant after `now` an item comes due whose address is not `full` (a retry, a
    /// delayed rule), leaving out `closed` addresses' items never attempted. Asked when addresses
    /// are full: their due items wait for a freed slot's poke, and a backlog of them is not read.
    func nextDueLater(_ connection: PGConnection, now: Millis, full: Set<String>, closed: Set<String>) throws -> Millis?
    /// Whether its items share their destination's backoff (`DestinationBackoff`): pages do.
    var sharesBackoff: Bool { get }
    /// The outcomes of attempts (a retry puts it back as pending, due at the retry instant), a
    /// group commit's at once: set-based statements, not one per attempt.
    func record(_ connection: PGConnection, _ outcomes: [(DeliveryItem, DeliveryResult)]) throws
}
