import KlaxonDomain
import Logging
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
    /// Named prepared statements; false behind pgbouncer in transaction mode before 1.21.
    public var databasePreparedStatements = true
    public var ingestListen = HostPort(host: "127.0.0.1", port: 7401)
    /// PagerDuty Events API v2 and health endpoints.
    public var ingestHTTPListen = HostPort(host: "127.0.0.1", port: 8401)
    public var assignmentListen = HostPort(host: "127.0.0.1", port: 7402)
    /// Schedules' iCal feeds and health endpoints.
    public var assignmentHTTPListen = HostPort(host: "127.0.0.1", port: 8402)
    /// `KLAXON_BOOTSTRAP_TOKEN`: made an admin token at start (idempotent).
    public var bootstrapToken = ""
    public var notifierListen = HostPort(host: "127.0.0.1", port: 7403)
    /// Notifier's health and metrics endpoints.
    public var notifierHTTPListen = HostPort(host: "127.0.0.1", port: 8403)
    /// Where Ingest's outbox reaches Assignment, and Assignment's reaches Notifier.
    public var assignmentAddress = HostPort(host: "127.0.0.1", port: 7402)
    public var notifierAddress = HostPort(host: "127.0.0.1", port: 7403)
    /// Group commit: most triggers per transaction, and transactions running at once.
    public var ingestBatchMax = 512
    public var ingestBatchConcurrency = 2
    public var maxFrameBytes = Framing.defaultMaxFrameBytes
    public var maxInFlightPerConnection = 64
    public var idleTimeoutSeconds = 300
    public var frameDeadlineSeconds = 10
    /// How long the inbox remembers a received message id (redeliveries within it have no effect).
    public var inboxRetentionHours = 168
    public var maxConnectionsPerPeer = 512
    /// A page keeps retrying (backoff from 1 s, doubling, capped at 60 s) this long after its
    /// first attempt before it is failed.
    public var notifyDeliveryWindowSeconds = 900
    /// One delivery attempt (redirects included) ends within this; the claim lease derives from it.
    public var notifyTimeoutSeconds = 10
    /// The per-phone throttle: SMS and calls per 15 minutes, and the least gap between two.
    public var notifySMSPer15Minutes = 5
    public var notifyVoicePer15Minutes = 3
    public var notifyPhoneGapSeconds = 60
    /// Where SMS, phone and push notifications are POSTed; empty: those channels fail with a clear error.
    public var notifyProviderURL = ""
    /// Sent to the provider as `Authorization: Bearer …` when set.
    public var notifyProviderToken = ""
    /// SMS and voice through Twilio's REST API (or a provider speaking it); all four but the base
    /// URL set turn it on for `sms` and `phone` methods (else they go to the provider webhook).
    public var twilioBaseURL = "https://api.twilio.com"
    public var twilioAccountSID = ""
    public var twilioAuthToken = ""
    public var twilioFrom = ""

    /// Twilio when configured (it needs KLAXON_PUBLIC_URL for its callbacks).
    public var twilio: TwilioAccount? {
        guard !twilioAccountSID.isEmpty, !twilioAuthToken.isEmpty, !twilioFrom.isEmpty, !publicURL.isEmpty else { return nil }
        return TwilioAccount(baseURL: twilioBaseURL, accountSID: twilioAccountSID, authToken: twilioAuthToken, from: twilioFrom, publicURL: publicURL)
    }
    /// Bearer token for ntfy topics (push methods whose address is a topic URL).
    public var ntfyToken = ""
    /// SMTP server for email notifications (host:port); empty: email fails with a clear error.
    public var smtpServer = ""
    public var smtpFrom = "klaxon@localhost"
    /// STARTTLS: require, opportunistic (when offered) or off; verified whenever used.
    public var smtpTLS = "opportunistic"
    /// The incident link in pages: `{id}` is replaced by the incident id; empty: no link.
    /// One-tap links (`publicURL` + `linkSigningKey`) take its place when set.
    public var incidentURLTemplate = ""
    /// Where people reach Assignment's HTTP listener (e.g. https://klaxon.example.com:8402): the
    /// base of the one-tap links in pages.
    public var publicURL = ""
    /// Signs one-tap links (HMAC-SHA256); the same value on Assignment and Notifier.
    public var linkSigningKey = ""

    /// The one-tap links' base URL and key, when both are set.
    public var oneTapLinks: (publicURL: String, key: String)? {
        publicURL.isEmpty || linkSigningKey.isEmpty ? nil : (publicURL, linkSigningKey)
    }
    /// The chat app's signing secret (Slack: Basic Information → Signing Secret): chat commands and
    /// buttons on Assignment's HTTP listener (`POST /chat/slack`) are verified with it; empty: off.
    public var chatSigningSecret = ""
    /// TLS on every listener of the process (both set), and what clients trust (README, "TLS").
    public var tlsCertFile = ""
    public var tlsKeyFile = ""
    public var tlsCAFile = ""
    public var tlsServerName = ""
    /// Mutual TLS: binary listeners require client certificates this CA signed; Klaxon's own
    /// clients present `tlsClientCertFile`/`tlsClientKeyFile`.
    public var tlsClientCAFile = ""
    public var tlsClientCertFile = ""
    public var tlsClientKeyFile = ""
    /// A listener's own certificate and key, instead of `tlsCertFile`/`tlsKeyFile` (e.g. a public
    /// certificate on Ingest's HTTP listener, a private one on the binary ones).
    public var listenerTLS: [Listener: CertificateFiles] = [:]
    public var inboundBudgetBytes = InboundBudget.defaultBytes
    /// PEM CA outbound pages (webhooks, Slack-compatible, providers) trust besides the system's.
    public var tlsExtraCAFile = ""
    /// Pages may go to link-local addresses (169.254.0.0/16, fe80::/10); refused otherwise.
    public var allowLinkLocalDestinations = false
    /// Outbound POSTs (pages, channel posts, provider calls): `lean` through Klaxon's own HTTP/1.1
    /// client on kept-alive connections where it can (issue 29), `general` through AsyncHTTPClient alone.
    public var pagesHTTPClient = "lean"
    /// The canary (issue 26): every Ingest sends a synthetic event through the whole pipeline this
    /// often; 0 turns it off.
    public var canaryIntervalSeconds = 60
    /// GET after each completed canary round trip (a dead man's switch); empty: no ping.
    public var watchdogURL = ""
    /// A service's change events this long before an incident are its "recent changes".
    public var changeWindowHours = 4

    /// The listeners of a process, for their TLS settings.
    public enum Listener: String, Sendable, CaseIterable {
        case ingest, ingestHTTP = "ingest.http", assignment, assignmentHTTP = "assignment.http", notifier, notifierHTTP = "notifier.http"

        /// Binary-protocol listeners (mutual TLS applies to them; HTTP ones serve monitors and browsers).
        public var isBinary: Bool { !rawValue.hasSuffix(".http") }
        var settingPrefix: String { isBinary ? rawValue + "." : rawValue + "_" }
    }

    public struct CertificateFiles: Sendable, Equatable {
        public var cert = ""
        public var key = ""
        public init(cert: String = "", key: String = "") {
            self.cert = cert
            self.key = key
        }
    }

    /// The certificate and key `listener` serves (its own pair, else the process's), and the
    /// variables that name them (for errors).
    func certificateFiles(_ listener: Listener) -> (files: CertificateFiles, variables: String) {
        if let own = listenerTLS[listener], !own.cert.isEmpty || !own.key.isEmpty {
            let prefix = Setting.variable(listener.settingPrefix)
            return (own, "\(prefix)TLS_CERT_FILE / \(prefix)TLS_KEY_FILE")
        }
        return (CertificateFiles(cert: tlsCertFile, key: tlsKeyFile), "KLAXON_TLS_CERT_FILE / KLAXON_TLS_KEY_FILE")
    }

    /// A listener's TLS, or nil (plain); binary listeners require client certificates when
    /// `tlsClientCAFile` is set. `fromEnvironment` has checked the files load.
    public func serverTLS(_ listener: Listener) -> ServerTLS? {
        try? loadServerTLS(listener)
    }

    func loadServerTLS(_ listener: Listener) throws -> ServerTLS? {
        let (files, variables) = certificateFiles(listener)
        guard !files.cert.isEmpty, !files.key.isEmpty else { return nil }
        do {
            return try ServerTLS.forFiles(
                certFile: files.cert, keyFile: files.key, clientCAFile: listener.isBinary ? tlsClientCAFile : nil,
                logger: Logger(label: "klaxon.tls"))
        } catch {
            throw ConfigError(description: "\(variables)\(listener.isBinary && !tlsClientCAFile.isEmpty ? " / KLAXON_TLS_CLIENT_CA_FILE" : ""): \(error)")
        }
    }

    /// Whether the process's binary listeners serve TLS (its peers', configured alike, then do too).
    var servesBinaryTLS: Bool { Listener.allCases.contains { $0.isBinary && !certificateFiles($0).files.cert.isEmpty } }

    /// What Klaxon's own clients verify servers with and present: on when a CA file is set or the
    /// process's binary listeners serve TLS (its peers' then do too; verified against the system's
    /// roots). A certificate on an HTTP listener alone does not turn it on.
    public var clientTLS: ClientTLS? {
        guard !tlsCAFile.isEmpty || servesBinaryTLS else { return nil }
        return ClientTLS(
            caFile: tlsCAFile.isEmpty ? nil : tlsCAFile, serverName: tlsServerName.isEmpty ? nil : tlsServerName,
            certFile: tlsClientCertFile, keyFile: tlsClientKeyFile)
    }

    public init(databaseURL: String) {
        self.databaseURL = databaseURL
    }

    /// One setting: its key, what it is for, and how its environment variable's text is read.
    /// The variable is `KLAXON_` + the key in upper snake case; the default shown is the
    /// property's own initial value. This table is the only list of settings (README's config
    /// reference is checked against it by KlaxonConfigTests).
    public struct Setting: Sendable {
        public let key: String
        public let help: String
        let read: @Sendable (inout KlaxonConfig, String) throws -> Void
        let show: @Sendable (KlaxonConfig) -> String

        public var variable: String { Self.variable(key) }
        static func variable(_ key: String) -> String { "KLAXON_" + key.uppercased().replacingOccurrences(of: ".", with: "_") }
        /// The default, as text ("" when there is none).
        public var defaultValue: String { show(KlaxonConfig(databaseURL: "")) }

        static func number(_ key: String, _ path: WritableKeyPath<KlaxonConfig, Int> & Sendable, minimum: Int, _ help: String) -> Setting {
            Setting(key: key, help: help, read: { config, text in
                guard let value = Int(text), value >= minimum else {
                    throw ConfigError(description: "\(variable(key))=\(text) must be an integer ≥ \(minimum)")
                }
                config[keyPath: path] = value
            }, show: { "\($0[keyPath: path])" })
        }

        static func flag(_ key: String, _ path: WritableKeyPath<KlaxonConfig, Bool> & Sendable, _ help: String) -> Setting {
            Setting(key: key, help: help, read: { config, text in
                guard let value = Bool(text) else { throw ConfigError(description: "\(variable(key))=\(text) must be true or false") }
                config[keyPath: path] = value
            }, show: { "\($0[keyPath: path])" })
        }

        static func address(_ key: String, _ path: WritableKeyPath<KlaxonConfig, HostPort> & Sendable, _ help: String) -> Setting {
            Setting(key: key, help: help, read: { config, text in
                guard let value = HostPort(text) else {
                    throw ConfigError(description: "\(variable(key))=\(text) is not host:port")
                }
                config[keyPath: path] = value
            }, show: { "\($0[keyPath: path])" })
        }

        static func listenerFile(
            _ listener: Listener, _ field: WritableKeyPath<CertificateFiles, String> & Sendable, _ suffix: String, _ help: String
        ) -> Setting {
            Setting(key: listener.settingPrefix + "tls_" + suffix, help: help, read: { config, text in
                config.listenerTLS[listener, default: CertificateFiles()][keyPath: field] = text
            }, show: { $0.listenerTLS[listener]?[keyPath: field] ?? "" })
        }

        static func text(
            _ key: String, _ path: WritableKeyPath<KlaxonConfig, String> & Sendable, _ help: String,
            check: @escaping @Sendable (String) -> String? = { _ in nil }
        ) -> Setting {
            Setting(key: key, help: help, read: { config, text in
                if let problem = check(text) {
                    throw ConfigError(description: "\(variable(key))=\(text) \(problem)")
                }
                config[keyPath: path] = text
            }, show: { $0[keyPath: path] })
        }
    }

    public static let settings: [Setting] = [
        .text("database.url", \.databaseURL, "libpq connection string (required)"),
        .number("database.pool_size", \.databasePoolSize, minimum: 1, "connections per process (Ingest beside the others: a quarter more, its own)"),
        .flag("database.prepared_statements", \.databasePreparedStatements,
              "false: send each statement whole, unprepared (pgbouncer in transaction mode before 1.21)"),
        .address("ingest.listen", \.ingestListen, "Ingest binary protocol"),
        .address("ingest.http_listen", \.ingestHTTPListen, "Ingest HTTP: PagerDuty Events v2, /healthz, /readyz"),
        .address("assignment.listen", \.assignmentListen, "Assignment binary protocol"),
        .address("assignment.http_listen", \.assignmentHTTPListen, "Assignment HTTP: chat commands, schedule iCal feeds, /healthz, /readyz"),
        .text("bootstrap_token", \.bootstrapToken, "made an admin token at start (idempotent)",
              check: { $0.count < 32 ? "is too short: use at least 32 random characters" : nil }),
        .address("notifier.listen", \.notifierListen, "Notifier binary protocol"),
        .address("notifier.http_listen", \.notifierHTTPListen, "Notifier HTTP: /healthz, /readyz, /metrics"),
        .address("assignment.address", \.assignmentAddress, "where Ingest reaches Assignment (default: assignment.listen)"),
        .address("notifier.address", \.notifierAddress, "where Assignment reaches Notifier (default: notifier.listen)"),
        .number("ingest.batch_max", \.ingestBatchMax, minimum: 1, "most triggers per group-commit transaction"),
        .number("ingest.batch_concurrency", \.ingestBatchConcurrency, minimum: 1, "group-commit transactions at once"),
        .number("rpc.max_frame_bytes", \.maxFrameBytes, minimum: 1024, "largest accepted frame"),
        .number("rpc.max_in_flight", \.maxInFlightPerConnection, minimum: 1, "concurrent requests per connection"),
        .number("rpc.idle_timeout_seconds", \.idleTimeoutSeconds, minimum: 1, "idle connection close"),
        .number("rpc.frame_deadline_seconds", \.frameDeadlineSeconds, minimum: 1, "a frame begun must complete within this"),
        .number("rpc.max_connections_per_peer", \.maxConnectionsPerPeer, minimum: 1, "connections one peer address may hold"),
        .number("inbox.retention_hours", \.inboxRetentionHours, minimum: 1, "how long received message ids are remembered"),
        .number("notify.delivery_window_seconds", \.notifyDeliveryWindowSeconds, minimum: 1, "how long a page keeps retrying"),
        .number("notify.timeout_seconds", \.notifyTimeoutSeconds, minimum: 1, "timeout of one delivery"),
        .number("notify.sms_per_15_minutes", \.notifySMSPer15Minutes, minimum: 1, "SMS to one number per 15 minutes (more are bundled)"),
        .number("notify.voice_per_15_minutes", \.notifyVoicePer15Minutes, minimum: 1, "calls to one number per 15 minutes (more are bundled)"),
        .number("notify.phone_gap_seconds", \.notifyPhoneGapSeconds, minimum: 0, "least time between two SMS or calls to one number"),
        .text("notify.provider_url", \.notifyProviderURL, "provider webhook for sms, phone and push"),
        .text("notify.provider_token", \.notifyProviderToken, "bearer token for the provider webhook"),
        .text("twilio.base_url", \.twilioBaseURL, "Twilio's REST API, or a provider speaking it",
              check: { $0.hasPrefix("https://") || $0.hasPrefix("http://") ? nil : "must start with https://" }),
        .text("twilio.account_sid", \.twilioAccountSID, "Twilio account SID: sms and phone methods through Twilio"),
        .text("twilio.auth_token", \.twilioAuthToken, "Twilio auth token (Basic auth out, X-Twilio-Signature in)"),
        .text("twilio.from", \.twilioFrom, "the number pages come from, international form", check: { Address.phoneProblem($0) }),
        .text("ntfy.token", \.ntfyToken, "bearer token for ntfy topics (push methods that are topic URLs)"),
        .text("smtp.server", \.smtpServer, "SMTP server for email, host:port", check: { HostPort($0) == nil ? "is not host:port" : nil }),
        .text("smtp.from", \.smtpFrom, "sender address of email pages"),
        .text("smtp.tls", \.smtpTLS, "STARTTLS: require, opportunistic (when the server offers it) or off; the certificate is verified whenever used",
              check: { ["require", "opportunistic", "off"].contains($0) ? nil : "must be require, opportunistic or off" }),
        .text("incident_url_template", \.incidentURLTemplate, "incident link in pages, {id} replaced"),
        .text("public_url", \.publicURL, "where people reach Assignment's HTTP listener: the base of one-tap links",
              check: { $0.hasPrefix("https://") || $0.hasPrefix("http://") ? nil : "must start with https:// (or http://)" }),
        .text("link_signing_key", \.linkSigningKey, "signs one-tap links (at least 32 random characters; the same on Assignment and Notifier)",
              check: { $0.count < 32 ? "is too short: use at least 32 random characters" : nil }),
        .text("chat.signing_secret", \.chatSigningSecret, "Slack-compatible signing secret for chat commands and page buttons (empty: off)"),
        .text("tls.cert_file", \.tlsCertFile, "PEM certificate (a chain allowed): TLS on every listener, with tls.key_file"),
        .text("tls.key_file", \.tlsKeyFile, "PEM private key of tls.cert_file"),
        .text("tls.ca_file", \.tlsCAFile, "PEM CA the services' and the CLI's clients verify servers with (else the system's)"),
        .text("tls.server_name", \.tlsServerName, "the name checked in servers' certificates when addresses are IPs"),
        .text("tls.extra_ca_file", \.tlsExtraCAFile, "PEM CA outbound pages trust besides the system's roots"),
        .text("tls.client_ca_file", \.tlsClientCAFile, "PEM CA whose client certificates binary listeners require (mutual TLS)"),
        .text("tls.client_cert_file", \.tlsClientCertFile, "PEM certificate Klaxon's own clients present (mutual TLS)"),
        .text("tls.client_key_file", \.tlsClientKeyFile, "PEM private key of tls.client_cert_file"),
    ] + Listener.allCases.flatMap { listener in
        [Setting.listenerFile(listener, \.cert, "cert_file", "PEM certificate for \(listener.rawValue.replacingOccurrences(of: ".", with: " ")) only, instead of tls.cert_file"),
         Setting.listenerFile(listener, \.key, "key_file", "PEM private key of \(listener.settingPrefix)tls_cert_file")]
    } + [
        .number("rpc.inbound_budget_bytes", \.inboundBudgetBytes, minimum: 1 << 20, "bytes of large frames (over 64 KiB) being received at once, per process"),
        .flag("allow_link_local_destinations", \.allowLinkLocalDestinations, "true: pages may go to link-local addresses (cloud metadata)"),
        .text("pages_http_client", \.pagesHTTPClient, "lean: outbound POSTs on Klaxon's own kept-alive HTTP/1.1 connections; general: AsyncHTTPClient alone",
              check: { ["lean", "general"].contains($0) ? nil : "must be lean or general" }),
        .number("canary.interval_seconds", \.canaryIntervalSeconds, minimum: 0,
                "seconds between canary round trips through Ingest → Assignment → Notifier (0: off)"),
        .number("change_window_hours", \.changeWindowHours, minimum: 0,
                "a service's change events this long before an incident show as its recent changes (pages, incident show, postmortem)"),
        .text("watchdog.url", \.watchdogURL, "GET after each completed canary round trip: a dead man's switch outside Klaxon",
              check: { $0.hasPrefix("https://") || $0.hasPrefix("http://") ? nil : "must start with https:// (or http://)" }),
    ]

    /// Reads the environment; malformed values are errors, not silently ignored. Empty means unset.
    public static func fromEnvironment(_ environment: [String: String], databaseURL fallback: String? = nil) throws -> KlaxonConfig {
        guard let url = environment["KLAXON_DATABASE_URL"].flatMap({ $0.isEmpty ? nil : $0 }) ?? fallback else {
            throw ConfigError(description: "KLAXON_DATABASE_URL is not set (a libpq connection string, e.g. postgresql://klaxon@127.0.0.1:5432/klaxon)")
        }
        var config = KlaxonConfig(databaseURL: url)
        for setting in settings where setting.key != "database.url" {
            guard let text = environment[setting.variable], !text.isEmpty else { continue }
            try setting.read(&config, text)
        }
        for listener in Listener.allCases {
            let (files, variables) = config.certificateFiles(listener)
            if files.cert.isEmpty != files.key.isEmpty {
                throw ConfigError(description: "\(variables.replacingOccurrences(of: " / ", with: " and ")) go together: set both (TLS) or neither")
            }
            _ = try config.loadServerTLS(listener)
        }
        if config.tlsClientCertFile.isEmpty != config.tlsClientKeyFile.isEmpty {
            throw ConfigError(description: "KLAXON_TLS_CLIENT_CERT_FILE and KLAXON_TLS_CLIENT_KEY_FILE go together: set both or neither")
        }
        if !config.tlsClientCAFile.isEmpty, !Listener.allCases.contains(where: { $0.isBinary && config.serverTLS($0) != nil }) {
            throw ConfigError(description: "KLAXON_TLS_CLIENT_CA_FILE needs TLS on the binary listeners: set KLAXON_TLS_CERT_FILE and KLAXON_TLS_KEY_FILE too")
        }
        if config.publicURL.isEmpty != config.linkSigningKey.isEmpty {
            throw ConfigError(description: "KLAXON_PUBLIC_URL and KLAXON_LINK_SIGNING_KEY go together: set both (one-tap links in pages) or neither")
        }
        let twilioSet = [config.twilioAccountSID, config.twilioAuthToken, config.twilioFrom].filter { !$0.isEmpty }.count
        if twilioSet > 0, twilioSet < 3 || config.publicURL.isEmpty {
            throw ConfigError(description: "Twilio needs KLAXON_TWILIO_ACCOUNT_SID, KLAXON_TWILIO_AUTH_TOKEN, KLAXON_TWILIO_FROM and KLAXON_PUBLIC_URL (its callbacks) together")
        }
        if let clientTLS = config.clientTLS {
            do { _ = try clientTLS.context() } catch { throw ConfigError(description: "KLAXON_TLS_CA_FILE / KLAXON_TLS_CLIENT_CERT_FILE: \(error)") }
        }
        if (environment["KLAXON_ASSIGNMENT_ADDRESS"] ?? "").isEmpty { config.assignmentAddress = config.assignmentListen }
        if (environment["KLAXON_NOTIFIER_ADDRESS"] ?? "").isEmpty { config.notifierAddress = config.notifierListen }
        return config
    }

    /// The environment that configures another process exactly like this one (every setting,
    /// empty ones left out): what a test or benchmark passes to the `klaxon` binary it starts.
    public var environment: [String: String] {
        var variables: [String: String] = [:]
        for setting in Self.settings {
            let value = setting.show(self)
            if !value.isEmpty { variables[setting.variable] = value }
        }
        return variables
    }

    public func rpcServerConfiguration(_ listener: Listener) -> RPCServerConfiguration {
        let listen = switch listener {
        case .ingest, .ingestHTTP: ingestListen
        case .assignment, .assignmentHTTP: assignmentListen
        case .notifier, .notifierHTTP: notifierListen
        }
        var configuration = RPCServerConfiguration(host: listen.host, port: listen.port)
        configuration.inboundBudget = .process(limit: inboundBudgetBytes)
        configuration.maxFrameBytes = maxFrameBytes
        configuration.maxInFlightPerConnection = maxInFlightPerConnection
        configuration.idleTimeout = .seconds(Int64(idleTimeoutSeconds))
        configuration.frameDeadline = .seconds(Int64(frameDeadlineSeconds))
        configuration.maxConnectionsPerPeer = maxConnectionsPerPeer
        configuration.tls = serverTLS(listener)
        return configuration
    }

    /// A client for another Klaxon service; with `credentials`, its calls carry the service token.
    public func rpcClient(_ address: HostPort, credentials: ServiceCredentials? = nil) -> RPCClient {
        var configuration = RPCClientConfiguration(host: address.host, port: address.port)
        configuration.maxFrameBytes = maxFrameBytes
        configuration.tls = clientTLS
        if let credentials { configuration.interceptors.append(credentials.interceptor) }
        return RPCClient(configuration: configuration)
    }
}
