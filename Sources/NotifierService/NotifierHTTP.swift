import HTTPOperations
import Hummingbird
import Logging
import Shared

/// Notifier's HTTP listener: /healthz, /readyz (PostgreSQL reachable) and /metrics.
public enum NotifierHTTP {
    public static func application(
        pool: PostgresPool, listen: HostPort, logger: Logger, onRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        let router = Router()
        OperationsRoutes.add(to: router, pool: pool)
        return Application(
            router: router, configuration: .init(address: .hostname(listen.host, port: listen.port), serverName: "klaxon-notifier"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? 0) }, logger: logger)
    }
}
