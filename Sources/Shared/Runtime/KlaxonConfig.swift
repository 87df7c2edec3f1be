/// host:port, as given in flags and environment variables.
public struct HostPort: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
              (0...65535).contains(port)
        else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        self.init(host: host.isEmpty ? "0.0.0.0" : host, port: port)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

public struct ConfigError: Error, CustomStringConvertible {
    public var description: String
    public init(description: String) { self.description = description }
}

/// Everything a Klaxon process needs to know. Each key has an environment variable:
/// `KLAXON_` + the key in upper snake case (`database.url` → `KLAXON_DATABASE_URL`).
public struct KlaxonConfig: Sendable {
    /// libpq connection string or URI.
    public var databaseURL: String
    public var databasePoolSize = 8
    public var ingestListen = HostPort(host: "127.0.0.1", port: 7401)
    /// PagerDuty Events API v2 and health endpoints.
    public var ingestHTTPListen = HostPort(host: "127.0.0.1", port: 8401)
    public var assignmentListen = HostPort(host: "127.0.0.1", port: 7402)
    public var notifierListen = HostPort(host: "127.0.0.1", port: 7403)
    /// Where Ingest's outbox reaches Assignment, and Assignment's reaches Notifier.
    public var assignmentAddress = HostPort(host: "127.0.0.1", port: 7402)
    public var notifierAddress = HostPort(host: "127.0.0.1", port: 7403)
    /// Group commit: most triggers per transaction, and transactions running at once.
    public var ingestBatchMax = 512
    public var ingestBatchConcurrency = 2
    public var maxFrameBytes = Framing.defaultMaxFrameBytes
    public var maxInFlightPerConnection = 64
    public var idleTimeoutSeconds = 300
    /// A page keeps retrying (backoff from 1 s, doubling, capped at 60 s) this long after its
    /// first attempt before it is failed.
    public var notifyDeliveryWindowSeconds = 900
    /// One delivery attempt (redirects included) ends within this; the claim lease derives from it.
    public var notifyTimeoutSeconds = 10
    /// Where SMS, phone and push notifications are POSTed; empty: those channels fail with a clear error.
    public var notifyProviderURL = ""
    /// Sent to the provider as `Authorization: Bearer …` when set.
    public var notifyProviderToken = ""
    /// SMTP server for email notifications (host:port); empty: email fails with a clear error.
    public var smtpServer = ""
    public var smtpFrom = "klaxon@localhost"
    /// The incident link in pages: `{id}` is replaced by the incident id; empty: no link.
    public var incidentURLTemplate = ""

    public init(databaseURL: String) {
        self.databaseURL = databaseURL
    }

    public static let environmentKeys: [(key: String, variable: String, help: String)] = [
        ("database.url", "KLAXON_DATABASE_URL", "libpq connection string (required)"),
        ("database.pool_size", "KLAXON_DATABASE_POOL_SIZE", "connections per process (8)"),
        ("ingest.listen", "KLAXON_INGEST_LISTEN", "Ingest binary protocol (127.0.0.1:7401)"),
        ("ingest.http_listen", "KLAXON_INGEST_HTTP_LISTEN", "Ingest HTTP: PagerDuty Events v2, /healthz, /readyz (127.0.0.1:8401)"),
        ("assignment.listen", "KLAXON_ASSIGNMENT_LISTEN", "Assignment binary protocol (127.0.0.1:7402)"),
        ("notifier.listen", "KLAXON_NOTIFIER_LISTEN", "Notifier binary protocol (127.0.0.1:7403)"),
        ("assignment.address", "KLAXON_ASSIGNMENT_ADDRESS", "where Ingest reaches Assignment (127.0.0.1:7402)"),
        ("notifier.address", "KLAXON_NOTIFIER_ADDRESS", "where Assignment reaches Notifier (127.0.0.1:7403)"),
        ("ingest.batch_max", "KLAXON_INGEST_BATCH_MAX", "most triggers per group-commit transaction (512)"),
        ("ingest.batch_concurrency", "KLAXON_INGEST_BATCH_CONCURRENCY", "group-commit transactions at once (2)"),
        ("rpc.max_frame_bytes", "KLAXON_RPC_MAX_FRAME_BYTES", "largest accepted frame (4194304)"),
        ("rpc.max_in_flight", "KLAXON_RPC_MAX_IN_FLIGHT", "concurrent requests per connection (64)"),
        ("rpc.idle_timeout_seconds", "KLAXON_RPC_IDLE_TIMEOUT_SECONDS", "idle connection close (300)"),
        ("notify.delivery_window_seconds", "KLAXON_NOTIFY_DELIVERY_WINDOW_SECONDS", "how long a page keeps retrying (900)"),
        ("notify.timeout_seconds", "KLAXON_NOTIFY_TIMEOUT_SECONDS", "timeout of one delivery (10)"),
        ("notify.provider_url", "KLAXON_NOTIFY_PROVIDER_URL", "provider webhook for sms, phone and push (none)"),
        ("notify.provider_token", "KLAXON_NOTIFY_PROVIDER_TOKEN", "bearer token for the provider webhook (none)"),
        ("smtp.server", "KLAXON_SMTP_SERVER", "SMTP server for email, host:port (none)"),
        ("smtp.from", "KLAXON_SMTP_FROM", "sender address of email pages (klaxon@localhost)"),
        ("incident_url_template", "KLAXON_INCIDENT_URL_TEMPLATE", "incident link in pages, {id} replaced (none)"),
    ]

    /// Reads the environment; unknown or malformed values are errors, not silently ignored.
    public static func fromEnvironment(_ environment: [String: String], databaseURL fallback: String? = nil) throws -> KlaxonConfig {
        guard let url = environment["KLAXON_DATABASE_URL"].flatMap({ $0.isEmpty ? nil : $0 }) ?? fallback else {
            throw ConfigError(description: "KLAXON_DATABASE_URL is not set (a libpq connection string, e.g. postgresql://klaxon@127.0.0.1:5432/klaxon)")
        }
        var config = KlaxonConfig(databaseURL: url)
        func address(_ variable: String, _ target: inout HostPort) throws {
            guard let text = environment[variable], !text.isEmpty else { return }
            guard let value = HostPort(text) else { throw ConfigError(description: "\(variable)=\(text) is not host:port") }
            target = value
        }
        func number(_ variable: String, _ target: inout Int, minimum: Int) throws {
            guard let text = environment[variable], !text.isEmpty else { return }
            guard let value = Int(text), value >= minimum else {
                throw ConfigError(description: "\(variable)=\(text) must be an integer ≥ \(minimum)")
            }
            target = value
        }
        try number("KLAXON_DATABASE_POOL_SIZE", &config.databasePoolSize, minimum: 1)
        try address("KLAXON_INGEST_LISTEN", &config.ingestListen)
        try address("KLAXON_INGEST_HTTP_LISTEN", &config.ingestHTTPListen)
        try address("KLAXON_ASSIGNMENT_LISTEN", &config.assignmentListen)
        try address("KLAXON_NOTIFIER_LISTEN", &config.notifierListen)
        config.assignmentAddress = config.assignmentListen
        config.notifierAddress = config.notifierListen
        try address("KLAXON_ASSIGNMENT_ADDRESS", &config.assignmentAddress)
        try address("KLAXON_NOTIFIER_ADDRESS", &config.notifierAddress)
        try number("KLAXON_INGEST_BATCH_MAX", &config.ingestBatchMax, minimum: 1)
        try number("KLAXON_INGEST_BATCH_CONCURRENCY", &config.ingestBatchConcurrency, minimum: 1)
        try number("KLAXON_RPC_MAX_FRAME_BYTES", &config.maxFrameBytes, minimum: 1024)
        try number("KLAXON_RPC_MAX_IN_FLIGHT", &config.maxInFlightPerConnection, minimum: 1)
        try number("KLAXON_RPC_IDLE_TIMEOUT_SECONDS", &config.idleTimeoutSeconds, minimum: 1)
        try number("KLAXON_NOTIFY_DELIVERY_WINDOW_SECONDS", &config.notifyDeliveryWindowSeconds, minimum: 1)
        try number("KLAXON_NOTIFY_TIMEOUT_SECONDS", &config.notifyTimeoutSeconds, minimum: 1)
        config.notifyProviderURL = environment["KLAXON_NOTIFY_PROVIDER_URL"] ?? ""
        config.notifyProviderToken = environment["KLAXON_NOTIFY_PROVIDER_TOKEN"] ?? ""
        config.incidentURLTemplate = environment["KLAXON_INCIDENT_URL_TEMPLATE"] ?? ""
        if let smtp = environment["KLAXON_SMTP_SERVER"], !smtp.isEmpty {
            guard HostPort(smtp) != nil else { throw ConfigError(description: "KLAXON_SMTP_SERVER=\(smtp) is not host:port") }
            config.smtpServer = smtp
        }
        if let from = environment["KLAXON_SMTP_FROM"], !from.isEmpty { config.smtpFrom = from }
        return config
    }

    public func rpcServerConfiguration(_ listen: HostPort) -> RPCServerConfiguration {
        var configuration = RPCServerConfiguration(host: listen.host, port: listen.port)
        configuration.maxFrameBytes = maxFrameBytes
        configuration.maxInFlightPerConnection = maxInFlightPerConnection
        configuration.idleTimeout = .seconds(Int64(idleTimeoutSeconds))
        return configuration
    }

    public func rpcClient(_ address: HostPort) -> RPCClient {
        var configuration = RPCClientConfiguration(host: address.host, port: address.port)
        configuration.maxFrameBytes = maxFrameBytes
        return RPCClient(configuration: configuration)
    }
}
