import KlaxonDomain
import NIOConcurrencyHelpers
import Shared

/// What Ingest needs to know about the service behind a routing key.
public struct IngestTarget: Sendable, Equatable {
    public var serviceID: Int64
    public var urgencyRule: UrgencyRule
    public var eventsPerMinute: Int
    public var eventsBurst: Int
    /// Klaxon's own canary service: its events and incidents stay out of real incidents' metrics.
    public var canary = false
}

/// Routing key → service, cached for `ttlMs` so the hot path does not ask PostgreSQL per event.
/// A key removed from the database stops working within the TTL.
public final class ServiceDirectory: Sendable {
    private let pool: PostgresPool
    private let ttlMs: Millis
    private let cache = NIOLockedValueBox<[String: (target: IngestTarget, until: Millis)]>([:])

    public init(pool: PostgresPool, ttlMs: Millis = 5_000) {
        self.pool = pool
        self.ttlMs = ttlMs
    }

    /// The service behind a routing key if the cache knows it, without waiting; nil otherwise.
    public func cachedTarget(for routingKey: String, now: Millis) -> IngestTarget? {
        guard let hit = cache.withLockedValue({ $0[routingKey] }), hit.until > now else { return nil }
        return hit.target
    }

    /// Whether a routing key the cache knows is the canary's (its events are not counted).
    public func isCanary(_ routingKey: String) -> Bool {
        cache.withLockedValue { $0[routingKey]?.target.canary ?? false }
    }

    /// nil for an unknown routing key.
    public func target(for routingKey: String, now: Millis) async throws -> IngestTarget? {
        if let target = cachedTarget(for: routingKey, now: now) { return target }
        let target = try await pool.withConnection { connection -> IngestTarget? in
            let rows = try connection.query(
                """
                SELECT s.id, s.urgency_rule, s.events_per_minute, s.events_burst, s.canary
                FROM routing_keys k JOIN services s ON s.id = k.service_id WHERE k.key = $1
                """, [routingKey])
            guard !rows.isEmpty else { return nil }
            return IngestTarget(
                serviceID: rows.int64(0, "id")!, urgencyRule: UrgencyRule(rawValue: rows.string(0, "urgency_rule")!) ?? .high,
                eventsPerMinute: rows.int(0, "events_per_minute")!, eventsBurst: rows.int(0, "events_burst")!,
                canary: rows.bool(0, "canary")!)
        }
        cache.withLockedValue { cache in
            if let target {
                cache[routingKey] = (target, now + ttlMs)
            } else {
                cache[routingKey] = nil
            }
        }
        return target
    }
}
