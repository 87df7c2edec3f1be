import IncidentEngine
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
    public var serviceName = ""
    /// The service's event rules, in order (applied before dedup).
    public var rules: [EventRule] = []
    /// Its maintenance windows that are not over (ongoing, future, recurring).
    public var windows: [MaintenanceWindow] = []
    /// The services its rules route to, by name, each with its own urgency rule and windows.
    public var routes: [String: IngestTarget] = [:]
}

/// Routing key → service (with its event rules and maintenance windows), cached for `ttlMs` so
/// the hot path does not ask PostgreSQL per event. A key removed from the database stops working,
/// and a changed rule or window applies, within the TTL (5 s) on every Ingest replica.
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
                SELECT s.id, s.name, s.urgency_rule, s.events_per_minute, s.events_burst, s.canary, s.event_rules::text AS rules
                FROM routing_keys k JOIN services s ON s.id = k.service_id WHERE k.key = $1
                """, [routingKey])
            guard !rows.isEmpty else { return nil }
            var target = Self.target(rows, 0)
            target.rules = (try? EventRules.parse(json: rows.string(0, "rules") ?? "[]").get()) ?? []
            let routeNames = Set(target.rules.compactMap(\.actions.route))
            if !routeNames.isEmpty {
                let routed = try connection.query(
                    """
                    SELECT s.id, s.name, s.urgency_rule, s.events_per_minute, s.events_burst, s.canary FROM services s
                    WHERE s.name = ANY($1::text[]) AND s.deleted_at_ms IS NULL AND NOT s.canary
                    """, [PGArray(Array(routeNames))])
                for row in 0..<routed.count { target.routes[routed.string(row, "name")!] = Self.target(routed, row) }
            }
            let windows = try MaintenanceStore.current(
                connection, serviceIDs: [target.serviceID] + target.routes.values.map(\.serviceID), now: now)
            target.windows = windows[target.serviceID] ?? []
            for (name, routed) in target.routes { target.routes[name]?.windows = windows[routed.serviceID] ?? [] }
            return target
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

    static func target(_ rows: PGResult, _ row: Int) -> IngestTarget {
        IngestTarget(
            serviceID: rows.int64(row, "id")!, urgencyRule: UrgencyRule(rawValue: rows.string(row, "urgency_rule")!) ?? .high,
            eventsPerMinute: rows.int(row, "events_per_minute")!, eventsBurst: rows.int(row, "events_burst")!,
            canary: rows.bool(row, "canary")!, serviceName: rows.string(row, "name")!)
    }
}
