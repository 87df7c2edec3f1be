import KlaxonDomain
import NIOConcurrencyHelpers
import Shared

/// One token bucket per routing key, in this process (each Ingest replica enforces its share).
public final class RateLimiter: Sendable {
    private let buckets = NIOLockedValueBox<[String: TokenBucket]>([:])

    public init() {}

    /// nil when the event may go ahead; otherwise the milliseconds until a token is free.
    public func admit(routingKey: String, target: IngestTarget, now: Millis) -> Millis? {
        if target.eventsPerMinute == 0 { return nil }  // unlimited
        return buckets.withLockedValue { buckets in
            var bucket = buckets[routingKey]
                ?? TokenBucket(perMinute: target.eventsPerMinute, burst: target.eventsBurst, now: now)
            bucket.reconfigure(perMinute: target.eventsPerMinute, burst: target.eventsBurst)
            let admitted = bucket.take(now: now)
            buckets[routingKey] = bucket
            return admitted ? nil : max(1, bucket.msUntilNextToken())
        }
    }
}
