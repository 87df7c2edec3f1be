import Hummingbird
import Logging
import HummingbirdCore
import HummingbirdHTTP2
import HummingbirdTLS
import KlaxonDomain
import NIOCore
import Shared

/// Whether a service can take traffic: PostgreSQL reachable, its schema at least this binary's
/// migrations, and its binary-protocol listener accepting (false before the bind and from the
/// start of a graceful shutdown, so a load balancer stops sending before the process stops).
public struct Readiness: Sendable {
    public let pool: PostgresPool
    public let listeners: [RPCServer]
    /// The canary's interval (0: off) and when this process started watching it, for `/readyz?deep=1`.
    public let canaryIntervalMs: Millis
    public let clock: any WallClock
    public let watchingSince: Millis

    public init(pool: PostgresPool, listeners: [RPCServer], canaryIntervalSeconds: Int = 0, clock: any WallClock = SystemWallClock()) {
        self.pool = pool
        self.listeners = listeners
        self.canaryIntervalMs = Millis(canaryIntervalSeconds) * 1000
        self.clock = clock
        self.watchingSince = clock.nowMs()
    }

    /// The deep check (`/readyz?deep=1`): has a canary round trip — any replica's — completed in
    /// the last two intervals? nil when the database cannot say.
    public func canaryHealth() async -> CanaryHealth? {
        guard canaryIntervalMs > 0 else { return .off }
        let last = try? await pool.withConnection { connection -> (startedAt: Millis, deliveredAt: Millis)?? in
            let row = try connection.query(
                "SELECT started_at_ms, delivered_at_ms FROM canary_rounds WHERE delivered_at_ms IS NOT NULL ORDER BY delivered_at_ms DESC LIMIT 1")
            guard let started = row.int64(0, "started_at_ms"), let delivered = row.int64(0, "delivered_at_ms") else { return .some(nil) }
            return (started, delivered)
        }
        guard let last else { return nil }
        return CanaryHealth.evaluate(intervalMs: canaryIntervalMs, last: last, watchingSince: watchingSince, now: clock.nowMs())
    }

    /// nil when ready, else what is wrong (one line, for the probe's body and the operator).
    public func problem() async -> String? {
        for server in listeners where !server.isAccepting {
            return "the binary listener \(server.configuration.host):\(server.configuration.port) is not accepting connections"
        }
        do {
            let pending = try await pool.withConnection { try Migrator.pending($0) }
            if !pending.isEmpty {
                return "the database lacks migrations \(pending.joined(separator: ", ")): run `klaxon migrate`"
            }
        } catch {
            return "database unavailable"
        }
        return nil
    }
}

/// What every service's HTTP listener answers for operators: `/healthz` (the process answers),
/// `/readyz` (`Readiness`) and `/metrics` (Prometheus text).
public enum OperationsRoutes {
    /// HTTP/1.1, or over TLS when the process has a certificate (README, "TLS") HTTP/2 or HTTP/1.1
    /// as the client's ALPN asks: every HTTP listener.
    public static func server(_ tls: ServerTLS?, logger: Logger) -> HTTPServerBuilder {
        guard let tls else { return .http1() }
        do {
            return try .http2Upgrade(tlsConfiguration: tls.configuration)
        } catch {
            // The same configuration already made the binary listeners' context: not expected.
            logger.critical("TLS for HTTP could not be set up; refusing to serve it in clear", metadata: ["error": "\(error)"])
            return .init { _ in throw error }
        }
    }

    public static func add(to router: Router<BasicRequestContext>, readiness: Readiness) {
        router.get("/healthz") { _, _ in text(.ok, "ok\n") }
        router.get("/readyz") { request, _ -> Response in
            if let problem = await readiness.problem() { return text(.serviceUnavailable, problem + "\n") }
            // ?deep=1: the whole pipeline, as the canary last saw it (README, "The pager watches itself").
            guard let deep = request.uri.queryParameters.get("deep"), !["", "0", "false"].contains(deep) else { return text(.ok, "ready\n") }
            guard let health = await readiness.canaryHealth() else { return text(.serviceUnavailable, "database unavailable\n") }
            return text(health.isReady ? .ok : .serviceUnavailable, (health.isReady ? "ready; " : "") + "\(health)\n")
        }
        addMetrics(to: router)
    }

    public static func addMetrics(to router: Router<BasicRequestContext>) {
        router.get("/metrics") { _, _ -> Response in
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            await KlaxonMetrics.collect()
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: KlaxonMetrics.exposition())))
        }
    }

    public static func text(_ status: HTTPResponse.Status, _ body: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/plain; charset=utf-8"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}
