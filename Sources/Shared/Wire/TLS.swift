import Foundation
import Logging
import NIOCertificateReloading
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import ServiceLifecycle

/// TLS for every listener of a process (`KLAXON_TLS_CERT_FILE` + `KLAXON_TLS_KEY_FILE`, PEM, a
/// chain allowed; TLS 1.2 at least). The files are re-read when they change (checked every
/// `refresh`) and on `reload()` (SIGHUP): new connections get the new certificate, connections
/// already open keep theirs. A certificate that does not load keeps the previous one (logged).
/// HTTP listeners use `configuration` (Hummingbird's TLS channel), binary listeners `context`.
public final class ServerTLS: Sendable {
    public let certFile: String
    public let keyFile: String
    let reloader: TimedCertificateReloader
    /// The server configuration (TLS 1.2+; the certificate asked of the reloader at each handshake).
    public let configuration: TLSConfiguration
    /// One context for every binary listener.
    public let context: NIOSSLContext
    let logger: Logger

    private static let registry = NIOLockedValueBox<[String: ServerTLS]>([:])

    /// The process's one instance for these files (every listener shares it, SIGHUP reloads it),
    /// watching the files every `refresh` from its first use.
    public static func forFiles(certFile: String, keyFile: String, refresh: Duration = .seconds(5), logger: Logger) throws -> ServerTLS {
        let key = certFile + "\u{0}" + keyFile
        if let existing = registry.withLockedValue({ $0[key] }) { return existing }
        let made = try ServerTLS(certFile: certFile, keyFile: keyFile, logger: logger)
        let kept = registry.withLockedValue { registry -> ServerTLS in
            if let existing = registry[key] { return existing }
            registry[key] = made
            return made
        }
        if kept === made {
            // The registry keeps it for the life of the process, and so does its watch.
            Task.detached {
                while true {
                    try? await Task.sleep(for: refresh)
                    made.reloadIfChanged()
                }
            }
        }
        return kept
    }

    /// SIGHUP: every instance re-reads its files.
    public static func reloadAll() {
        for tls in registry.withLockedValue({ Array($0.values) }) { tls.reload() }
    }

    private let stamps = NIOLockedValueBox<[String: Date]>([:])

    func reloadIfChanged() {
        let now = [certFile, keyFile].reduce(into: [String: Date]()) { stamps, path in
            stamps[path] = (try? FileManager.default.attributesOfItem(atPath: path)[.modificationDate]) as? Date
        }
        let changed = stamps.withLockedValue { old -> Bool in
            defer { old = now }
            return !old.isEmpty && old != now
        }
        if changed { reload() }
    }

    init(certFile: String, keyFile: String, logger: Logger) throws {
        self.certFile = certFile
        self.keyFile = keyFile
        self.logger = logger
        do {
            // Its own timer is not run: `forFiles` reloads when the files' stamps change, and SIGHUP.
            reloader = try TimedCertificateReloader.makeReloaderValidatingSources(
                refreshInterval: .seconds(3600),
                certificateSource: .init(location: .file(path: certFile), format: .pem),
                privateKeySource: .init(location: .file(path: keyFile), format: .pem), logger: logger)
        } catch {
            throw ConfigError(description: "KLAXON_TLS_CERT_FILE=\(certFile) / KLAXON_TLS_KEY_FILE=\(keyFile): cannot load them: \(error)")
        }
        var configuration = try TLSConfiguration.makeServerConfiguration(certificateReloader: reloader)
        configuration.minimumTLSVersion = .tlsv12
        self.configuration = configuration
        context = try NIOSSLContext(configuration: configuration)
        reloadIfChanged()  // the files' first stamps
    }

    /// Re-reads the certificate and key now (SIGHUP).
    public func reload() {
        do {
            try reloader.reload()
            logger.info("TLS certificate reloaded", metadata: ["tls.cert_file": "\(certFile)"])
        } catch {
            logger.error("TLS certificate not reloaded; the previous one stays", metadata: ["tls.cert_file": "\(certFile)", "error": "\(error)"])
        }
    }

    /// The server side of a connection: TLS first, then whatever the listener speaks. A client
    /// that does not speak TLS (or fails its handshake) is counted and its connection closed.
    public func addHandlers(to pipeline: ChannelPipeline.SynchronousOperations) throws {
        try pipeline.addHandler(NIOSSLServerHandler(context: context))
        try pipeline.addHandler(TLSRefusalCounter())
    }
}

/// Counts connections whose TLS handshake failed (a plain-TCP or plain-HTTP client on a TLS
/// port, an unknown CA, …) in `klaxon_rpc_refusals_total{reason="tls"}`, once, and closes them.
final class TLSRefusalCounter: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    typealias InboundIn = ByteBuffer

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is NIOSSLError || error is BoringSSLError {
            KlaxonMetrics.refused("tls")
            context.close(promise: nil)
            return
        }
        context.fireErrorCaught(error)
    }
}

/// What a client trusts and presents: `KLAXON_TLS_CA_FILE` (PEM; else the system's roots) and
/// the name checked in the server's certificate (`KLAXON_TLS_SERVER_NAME` when addresses are IPs).
public struct ClientTLS: Sendable {
    public var caFile: String?
    public var serverName: String?

    public init(caFile: String? = nil, serverName: String? = nil) {
        self.caFile = caFile
        self.serverName = serverName
    }

    public func context() throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        if let caFile, !caFile.isEmpty { configuration.trustRoots = .file(caFile) }
        return try NIOSSLContext(configuration: configuration)
    }
}
