import AsyncHTTPClient
import Foundation
import KlaxonDomain
import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import Shared

/// The pager watches itself (issue 26; ARCHITECTURE.md, "Always on"). Every interval this Ingest
/// sends a synthetic trigger to its own binary listener; Assignment assigns it to Klaxon's canary
/// user, whose one contact method (kind `canary`) Notifier delivers by recording the round trip in
/// `canary_rounds`. Only a round trip that completes within the interval sends the outbound
/// watchdog ping (`KLAXON_WATCHDOG_URL`), so a stalled pipeline — not only a dead process — is
/// noticed outside. The round's incident is then resolved through the same front door.
///
/// The canary's user, policy and service are Klaxon's own (`system`: hidden from lists, export and
/// prune; made again if someone deletes them); its incidents are `canary`: numbered apart, listed
/// nowhere, counted in no surge and no real incident's metric, deleted an hour after they resolve.
public final class Canary: Sendable {
    public static let serviceName = "Klaxon canary"
    static let retentionMs: Millis = 3_600_000
    static let roundsRetentionMs: Millis = 86_400_000

    let pool: PostgresPool
    let clock: any WallClock
    let intervalMs: Millis
    let watchdogURL: String
    let http: HTTPClient
    let instance: String
    let logger: Logger
    /// The binary client to this process's own Ingest listener (made once it listens).
    let connect: @Sendable () async throws -> RPCClient
    private let state = NIOLockedValueBox(State())

    struct State {
        var nextRoundAt: Millis?
        var client: RPCClient?
    }

    public init(
        pool: PostgresPool, clock: any WallClock, intervalSeconds: Int, watchdogURL: String, http: HTTPClient, instance: String,
        logger: Logger, connect: @escaping @Sendable () async throws -> RPCClient
    ) {
        self.pool = pool
        self.clock = clock
        self.intervalMs = Millis(intervalSeconds) * 1000
        self.watchdogURL = watchdogURL
        self.http = http
        self.instance = instance
        self.logger = logger
        self.connect = connect
    }

    /// The work loop's step: the first round one interval after start, then one per interval
    /// (counted from each round's start). A round waits at most one interval for its page.
    public func step(now: Millis) async throws -> Millis? {
        let due: Millis? = state.withLockedValue { state in
            guard let next = state.nextRoundAt else {
                state.nextRoundAt = now + intervalMs
                return nil
            }
            guard now >= next else { return nil }
            state.nextRoundAt = now + intervalMs
            return next
        }
        if due != nil { try await round(startedAt: now) }
        return state.withLockedValue { $0.nextRoundAt }
    }

    /// One round trip; its outcome is logged and counted, never thrown (but cancellation).
    func round(startedAt now: Millis) async throws {
        let dedupKey = "canary-\(RandomID.uuid())"
        let client: RPCClient
        let routingKey: String
        do {
            routingKey = try await ensureSetUp(now: now)
            client = try await ownClient()
            try await pool.withConnection { connection in
                try connection.query(
                    "INSERT INTO canary_rounds (dedup_key, instance, started_at_ms) VALUES ($1, $2, $3)", [dedupKey, self.instance, now])
            }
            let _: EventResult = try await client.call(Ingest.SendEvent, Event(
                routingKey: routingKey, eventAction: .trigger, dedupKey: dedupKey,
                payload: Payload(summary: "Klaxon canary round trip", source: instance, severity: .info, customDetails: ["instance": instance]),
                client: "klaxon canary"), timeout: .milliseconds(max(1000, intervalMs)))
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            Counter(label: "klaxon_canary_rounds_total", dimensions: [("outcome", "failed")]).increment()
            logger.error("canary round could not start: the trigger was not accepted", metadata: ["error": "\(error)"])
            return
        }
        // Wait for Notifier's loopback receiver, at most one interval.
        let deadline = now + intervalMs
        var delivered: Millis?
        while delivered == nil, clock.nowMs() < deadline {
            try await Task.sleep(for: .milliseconds(intervalMs >= 10_000 ? 100 : 25))
            delivered = try? await pool.withConnection { connection in
                try connection.query("SELECT delivered_at_ms FROM canary_rounds WHERE dedup_key = $1", [dedupKey]).int64(0, "delivered_at_ms")
            }
        }
        if let delivered {
            let roundTripMs = max(0, delivered - now)
            Counter(label: "klaxon_canary_rounds_total", dimensions: [("outcome", "completed")]).increment()
            Gauge(label: "klaxon_canary_round_trip_seconds", dimensions: []).record(Double(roundTripMs) / 1000)
            Gauge(label: "klaxon_canary_last_completed_timestamp_seconds", dimensions: []).record(Double(delivered) / 1000)
            logger.debug("canary round trip completed", metadata: ["round_trip_ms": "\(roundTripMs)"])
            await pingWatchdog()
        } else {
            Counter(label: "klaxon_canary_rounds_total", dimensions: [("outcome", "timed_out")]).increment()
            logger.error("canary round trip did not complete within the interval: the pipeline (Ingest → Assignment → Notifier) is stalled; no watchdog ping", metadata: [
                "interval_seconds": "\(intervalMs / 1000)", "dedup_key": "\(dedupKey)"])
        }
        // Resolve through the same front door (Assignment auto-resolves it later if this fails).
        do {
            let _: EventResult = try await client.call(
                Ingest.SendEvent, Event(routingKey: routingKey, eventAction: .resolve, dedupKey: dedupKey), timeout: .seconds(10))
        } catch {
            logger.warning("canary incident not resolved; its service auto-resolves it", metadata: ["error": "\(error)"])
        }
        try? await pool.withConnection { connection in
            try connection.query(
                """
                DELETE FROM incidents WHERE id IN (
                    SELECT id FROM incidents WHERE canary AND status = 'resolved' AND resolved_at_ms < $1 LIMIT 100)
                """, [now - Self.retentionMs])
            try connection.query("DELETE FROM canary_rounds WHERE started_at_ms < $1", [now - Self.roundsRetentionMs])
        }
    }

    /// GET the watchdog URL (any 2xx counts); failures are logged and counted, never retried
    /// (the next round pings again).
    func pingWatchdog() async {
        guard !watchdogURL.isEmpty else { return }
        do {
            let response = try await http.execute(HTTPClientRequest(url: watchdogURL), timeout: .seconds(10))
            guard (200..<300).contains(Int(response.status.code)) else {
                throw DeliveryFailure(description: "HTTP \(response.status.code)")
            }
            Counter(label: "klaxon_watchdog_pings_total", dimensions: [("outcome", "ok")]).increment()
        } catch {
            Counter(label: "klaxon_watchdog_pings_total", dimensions: [("outcome", "failed")]).increment()
            logger.warning("watchdog ping failed", metadata: ["url": "\(Masking.url(watchdogURL))", "error": "\(error)"])
        }
    }

    struct DeliveryFailure: Error, CustomStringConvertible {
        var description: String
    }

    private func ownClient() async throws -> RPCClient {
        if let client = state.withLockedValue({ $0.client }) { return client }
        let client = try await connect()
        state.withLockedValue { $0.client = client }
        return client
    }

    /// The canary's user, contact method, rules, policy, service and routing key: checked every
    /// round (one query) and made again whole if any part is missing.
    func ensureSetUp(now: Millis) async throws -> String {
        try await pool.transaction { connection in
            if let key = try Self.intactKey(connection) { return key }
            try connection.query("SELECT pg_advisory_xact_lock(hashtext('klaxon canary set-up'))")
            if let key = try Self.intactKey(connection) { return key }
            let user = try connection.query(
                "INSERT INTO users (name, email, role, system) VALUES ($1, 'canary@klaxon.invalid', 'observer', true) RETURNING id",
                [Self.serviceName]).int64(0, "id")!
            let method = try connection.query(
                """
                INSERT INTO contact_methods (user_id, type, address, label, verified_at_ms)
                VALUES ($1, 'canary', 'loopback', 'Klaxon canary receiver', $2) RETURNING id
                """, [user, now]).int64(0, "id")!
            try connection.query(
                """
                INSERT INTO notification_rules (user_id, contact_method_id, start_delay_seconds, urgency)
                VALUES ($1, $2, 0, 'high'), ($1, $2, 0, 'low')
                """, [user, method])
            let policy = try connection.query(
                "INSERT INTO escalation_policies (name, num_loops, system) VALUES ($1, 0, true) RETURNING id", [Self.serviceName]).int64(0, "id")!
            try connection.query(
                "INSERT INTO escalation_levels (policy_id, position, escalation_delay_seconds) VALUES ($1, 1, 3600)", [policy])
            try connection.query(
                "INSERT INTO escalation_targets (policy_id, level_position, position, user_id) VALUES ($1, 1, 1, $2)", [policy, user])
            // Older set-ups someone broke stop receiving (their incidents are still cleaned up).
            try connection.query("UPDATE services SET deleted_at_ms = $1 WHERE canary AND deleted_at_ms IS NULL", [now])
            let service = try connection.query(
                """
                INSERT INTO services (name, escalation_policy_id, ack_timeout_seconds, auto_resolve_timeout_seconds, urgency_rule,
                                      events_per_minute, system, canary)
                VALUES ($1, $2, 0, 600, 'high', 0, true, true) RETURNING id
                """, [Self.serviceName, policy]).int64(0, "id")!
            let key = Secrets.routingKey()
            try connection.query("INSERT INTO routing_keys (key, service_id) VALUES ($1, $2)", [key, service])
            try connection.query(
                """
                INSERT INTO canary (service_id, routing_key, created_at_ms) VALUES ($1, $2, $3)
                ON CONFLICT (singleton) DO UPDATE SET service_id = excluded.service_id, routing_key = excluded.routing_key,
                                                      created_at_ms = excluded.created_at_ms
                """, [service, key, now])
            return key
        }
    }

    /// The routing key when every part of the set-up is there: the service (not deleted) with its
    /// key and policy, whose first level targets a user with a rule to a `canary` method.
    static func intactKey(_ connection: PGConnection) throws -> String? {
        try connection.query(
            """
            SELECT c.routing_key FROM canary c
            JOIN services s ON s.id = c.service_id AND s.canary AND s.deleted_at_ms IS NULL
            JOIN routing_keys k ON k.key = c.routing_key AND k.service_id = s.id
            WHERE EXISTS (
                SELECT 1 FROM escalation_targets t
                JOIN notification_rules r ON r.user_id = t.user_id AND r.start_delay_seconds = 0 AND r.urgency = 'high'
                JOIN contact_methods m ON m.id = r.contact_method_id AND m.type = 'canary' AND m.verified_at_ms IS NOT NULL
                WHERE t.policy_id = s.escalation_policy_id AND t.level_position = 1)
            """).string(0, "routing_key")
    }
}
