import CoreMetrics
import Foundation
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import Prometheus

/// Klaxon's metrics: recorded through swift-metrics, kept by swift-prometheus, served as text on
/// each service's HTTP listener at `/metrics`. One registry per process (a process may run all
/// three services); `bootstrap()` is idempotent.
public enum KlaxonMetrics {
    public static let registry = PrometheusCollectorRegistry()
    private static let bootstrapped = NIOLockedValueBox(false)

    public static func bootstrap() {
        bootstrapped.withLockedValue { done in
            guard !done else { return }
            done = true
            var factory = PrometheusMetricsFactory(registry: registry)
            factory.defaultDurationHistogramBuckets = [
                .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
                .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10), .seconds(30), .seconds(60),
            ]
            MetricsSystem.bootstrap(factory)
        }
    }

    /// The Prometheus text exposition of every metric.
    public static func exposition() -> String { registry.emitToString() }

    // MARK: Gauges read at scrape time

    public typealias Collector = @Sendable () async -> Void
    private static let collectors = NIOLockedValueBox<[Int: Collector]>([:])
    private static let nextCollector = NIOLockedValueBox(0)

    /// Runs `body` while `collector` updates gauges before each scrape (outbox depth, pool usage:
    /// what is cheaper to read when asked than to track on every change).
    public static func whileCollecting<T: Sendable>(_ collector: @escaping Collector, _ body: () async throws -> T) async rethrows -> T {
        let key = nextCollector.withLockedValue { next in
            next += 1
            return next
        }
        collectors.withLockedValue { $0[key] = collector }
        defer { _ = collectors.withLockedValue { $0.removeValue(forKey: key) } }
        return try await body()
    }

    /// Brings the scrape-time gauges up to date (each collector bounded to 2 s).
    public static func collect() async {
        let all = collectors.withLockedValue { Array($0.values) }
        await withTaskGroup(of: Void.self) { group in
            for collector in all {
                group.addTask {
                    await withTaskGroup(of: Void.self) { race in
                        race.addTask { await collector() }
                        race.addTask { try? await Task.sleep(for: .seconds(2)) }
                        await race.next()
                        race.cancelAll()
                    }
                }
            }
        }
    }

    /// The collector a service registers: its outbox destinations' depth and oldest row, and its
    /// connection pool's usage.
    public static func databaseCollector(_ pool: PostgresPool, destinations: [String]) -> Collector {
        { @Sendable in
            let usage = pool.usage
            Gauge(label: "klaxon_database_pool_connections", dimensions: [("state", "open")]).record(usage.open)
            Gauge(label: "klaxon_database_pool_connections", dimensions: [("state", "idle")]).record(usage.idle)
            Gauge(label: "klaxon_database_pool_waiting", dimensions: []).record(usage.waiting)
            guard !destinations.isEmpty else { return }
            let rows = try? await pool.withConnection { connection -> [(String, Int, Int64?)] in
                let result = try connection.query(
                    """
                    SELECT d AS destination, count(o.id)::bigint AS depth, min(o.created_at_ms) AS oldest
                    FROM unnest($1::text[]) AS d LEFT JOIN outbox o ON o.destination = d GROUP BY d
                    """, [PGArray(destinations)])
                return (0..<result.count).map { (result.string($0, "destination")!, result.int($0, "depth")!, result.int64($0, "oldest")) }
            }
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            for (destination, depth, oldest) in rows ?? [] {
                Gauge(label: "klaxon_outbox_depth", dimensions: [("destination", destination)]).record(depth)
                Gauge(label: "klaxon_outbox_oldest_age_seconds", dimensions: [("destination", destination)])
                    .record(Double(oldest.map { max(0, now - $0) } ?? 0) / 1000)
            }
        }
    }

    // MARK: Domain

    /// One monitor event's outcome: created, deduplicated, acknowledged, resolved, ignored, or the
    /// refusal's status code (invalid_argument, resource_exhausted, …), by the dialect it came in
    /// (binary, pagerduty, alertmanager, opsgenie).
    public static func event(outcome: String, dialect: String) {
        Counter(label: "klaxon_events_total", dimensions: [("outcome", outcome), ("dialect", dialect)]).increment()
        if outcome == "created" { Counter(label: "klaxon_incidents_created_total", dimensions: []).increment() }
    }

    /// Heartbeat monitors: pings by kind (success, start, fail, log, exit), and deadlines missed.
    public static func heartbeat(event: String) {
        Counter(label: "klaxon_heartbeat_events_total", dimensions: [("event", event)]).increment()
    }

    /// Outbound webhook deliveries: delivered, retried, dropped, subscription_disabled.
    public static func webhook(outcome: String) {
        Counter(label: "klaxon_webhook_deliveries_total", dimensions: [("outcome", outcome)]).increment()
    }

    /// Events a service's rules suppressed or its maintenance windows dropped or held.
    public static func eventFiltered(_ how: String) {
        Counter(label: "klaxon_events_filtered_total", dimensions: [("how", how)]).increment()
    }

    /// A page's end: sent, skipped, failed, or retried (an attempt that failed and will be tried again).
    public static func notification(channel: String, outcome: String) {
        Counter(label: "klaxon_notifications_total", dimensions: [("channel", channel), ("outcome", outcome)]).increment()
    }

    /// Page latency: from the instant the page was due to the instant it was sent.
    public static func pageSent(channel: String, latencyMs: Int64) {
        Metrics.Timer(label: "klaxon_page_latency_seconds", dimensions: [("channel", channel)])
            .recordMilliseconds(max(0, latencyMs))
    }

    /// Timer lag: from the instant an incident timer was due to the instant it fired.
    public static func timerFired(lagMs: Int64) {
        Metrics.Timer(label: "klaxon_timer_lag_seconds", dimensions: []).recordMilliseconds(max(0, lagMs))
    }

    // The metrics themselves (names follow Prometheus conventions).
    public static func rpcCall(method: String, code: StatusCode, nanoseconds: Int64) {
        Counter(label: "klaxon_rpc_calls_total", dimensions: [("method", method), ("code", "\(code)")]).increment()
        Metrics.Timer(label: "klaxon_rpc_duration_seconds", dimensions: [("method", method)]).recordNanoseconds(nanoseconds)
    }

    public static func connectionOpened(listener: String) {
        Gauge(label: "klaxon_rpc_connections_open", dimensions: [("listener", listener)]).record(openConnections.withLockedValue { counts in
            counts[listener, default: 0] += 1
            return counts[listener]!
        })
    }

    public static func connectionClosed(listener: String) {
        Gauge(label: "klaxon_rpc_connections_open", dimensions: [("listener", listener)]).record(openConnections.withLockedValue { counts in
            counts[listener, default: 1] -= 1
            return counts[listener]!
        })
    }

    private static let openConnections = NIOLockedValueBox<[String: Int]>([:])

    public static func refused(_ reason: String) {
        Counter(label: "klaxon_rpc_refusals_total", dimensions: [("reason", reason)]).increment()
    }
}

/// Counts every call by method and status code and times it (`klaxon_rpc_calls_total`,
/// `klaxon_rpc_duration_seconds`).
public struct MetricsMiddleware: RPCMiddleware {
    public init() {}

    public func handle(_ call: RPCCall, next: @escaping @Sendable (RPCCall) -> EventLoopFuture<[UInt8]>) -> EventLoopFuture<[UInt8]> {
        let started = NIODeadline.now()  // monotonic, a duration only
        let method = call.context.method
        let result = next(call)
        result.whenComplete { outcome in
            let code: StatusCode = switch outcome {
            case .success: .ok
            case let .failure(error as RPCError): error.code
            case .failure: .internalError
            }
            KlaxonMetrics.rpcCall(method: method, code: code, nanoseconds: (NIODeadline.now() - started).nanoseconds)
        }
        return result
    }
}
