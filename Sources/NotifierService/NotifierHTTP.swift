import Hummingbird
import Logging
import NIOCore
import Shared

/// Notifier's HTTP listener: /healthz, /readyz (PostgreSQL reachable) and /metrics.
public enum NotifierHTTP {
    public static func application(
        pool: PostgresPool, listen: HostPort, logger: Logger, onRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        let router = Router()
        router.get("/metrics") { _, _ -> Response in
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: KlaxonMetrics.exposition())))
        }
        router.get("/healthz") { _, _ in text(.ok, "ok\n") }
        router.get("/readyz") { _, _ -> Response in
            do {
                try await pool.withConnection { try $0.query("SELECT 1") }
                return text(.ok, "ready\n")
            } catch {
                return text(.serviceUnavailable, "database unavailable\n")
            }
        }
        return Application(
            router: router, configuration: .init(address: .hostname(listen.host, port: listen.port), serverName: "klaxon-notifier"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? 0) }, logger: logger)
    }

    static func text(_ status: HTTPResponse.Status, _ body: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/plain; charset=utf-8"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}
