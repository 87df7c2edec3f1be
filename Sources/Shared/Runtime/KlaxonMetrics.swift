import CoreMetrics
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
