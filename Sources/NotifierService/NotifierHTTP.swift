import HTTPOperations
import Hummingbird
import Logging
import Shared

/// Notifier's HTTP listener: /healthz, /readyz and /metrics.
public enum NotifierHTTP {
    public static func application(
        readiness: Readiness, listen: HostPort, logger: Logger, onRunning: @escaping @Sendable (Int) async -> Void = { _ in }, tls: ServerTLS? = nil
    ) -> some ApplicationProtocol {
        let router = Router()
        OperationsRoutes.add(to: router, readiness: readiness)
        return Application(
            router: router, server: OperationsRoutes.server(tls, logger: logger), configuration: .init(address: .hostname(listen.host, port: listen.port), serverName: "klaxon-notifier"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? 0) }, logger: logger)
    }
}
