import Hummingbird
import NIOCore
import Shared

/// What every service's HTTP listener answers for operators: `/healthz` (the process answers),
/// `/readyz` (PostgreSQL reachable) and `/metrics` (Prometheus text).
public enum OperationsRoutes {
    public static func add(to router: Router<BasicRequestContext>, pool: PostgresPool) {
        router.get("/healthz") { _, _ in text(.ok, "ok\n") }
        router.get("/readyz") { _, _ -> Response in
            do {
                try await pool.withConnection { try $0.query("SELECT 1") }
                return text(.ok, "ready\n")
            } catch {
                return text(.serviceUnavailable, "database unavailable\n")
            }
        }
        addMetrics(to: router)
    }

    public static func addMetrics(to router: Router<BasicRequestContext>) {
        router.get("/metrics") { _, _ -> Response in
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: KlaxonMetrics.exposition())))
        }
    }

    public static func text(_ status: HTTPResponse.Status, _ body: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/plain; charset=utf-8"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}
