import Foundation
import Logging
import NIOCertificateReloading
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import NIOTLS
import ServiceLifecycle

/// TLS for a listener (`KLAXON_TLS_CERT_FILE` + `KLAXON_TLS_KEY_FILE`, or the listener's own
/// pair; PEM, a chain allowed; TLS 1.2 at least). The files are re-read when they change (checked
/// every `refresh`) and on `reload()` (SIGHUP): new connections get the new certificate, connections
/// already open keep theirs. A certificate that does not load keeps the previous one (logged).
/// With `clientCAFile` (`KLAXON_TLS_CLIENT_CA_FILE`, binary listeners) a client must present a
/// certificate that CA signed (mutual TLS). HTTP listeners use `configuration` (Hummingbird's TLS
/// channel), binary listeners `context`.
public final class ServerTLS: Sendable {
    public let certFile: String
    public let keyFile: String
    public let clientCAFile: String?
    let reloader: TimedCertificateReloader
    /// The server configuration (TLS 1.2+; the certificate asked of the reloader at each handshake).
    public let configuration: TLSConfiguration
    /// One context for every binary listener.
    public let context: NIOSSLContext
    let logger: Logger

    private static let registry = NIOLockedValueBox<[String: ServerTLS]>([:])

    /// The process's one instance for these files (every listener shares it, SIGHUP reloads it),
    /// watching the files every `refresh` from its first use.
    public static func forFiles(
        certFile: String, keyFile: String, clientCAFile: String? = nil, refresh: Duration = .seconds(5), logger: Logger
    ) throws -> ServerTLS {
        let clientCAFile = clientCAFile.flatMap { $0.isEmpty ? nil : $0 }
        let key = [certFile, keyFile, clientCAFile ?? ""].joined(separator: "\u{0}")
        if let existing = registry.withLockedValue({ $0[key] }) { return existing }
        let made = try ServerTLS(certFile: certFile, keyFile: keyFile, clientCAFile: clientCAFile, logger: logger)
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

    init(certFile: String, keyFile: String, clientCAFile: String?, logger: Logger) throws {
        self.certFile = certFile
        self.keyFile = keyFile
        self.clientCAFile = clientCAFile
        self.logger = logger
        do {
            // Its own timer is not run: `forFiles` reloads when the files' stamps change, and SIGHUP.
            reloader = try TimedCertificateReloader.makeReloaderValidatingSources(
                refreshInterval: .seconds(3600),
                certificateSource: .init(location: .file(path: certFile), format: .pem),
                privateKeySource: .init(location: .file(path: keyFile), format: .pem), logger: logger)
        } catch {
            throw ConfigError(description: "certificate \(certFile) / key \(keyFile): cannot load them: \(error)")
        }
        var configuration = try TLSConfiguration.makeServerConfiguration(certificateReloader: reloader)
        configuration.minimumTLSVersion = .tlsv12
        if let clientCAFile {
            // The chain is checked against this CA alone; a client's certificate names no host.
            do {
                configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(clientCAFile))
            } catch {
                throw ConfigError(description: "client CA \(clientCAFile): cannot load it: \(error)")
            }
            configuration.certificateVerification = .noHostnameVerification
            configuration.sendCANameList = true
        }
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
    /// that does not speak TLS, fails its handshake (an unknown CA, no client certificate where
    /// one is required) or does not finish it within `handshakeDeadline` is counted and closed.
    public func addHandlers(to pipeline: ChannelPipeline.SynchronousOperations, handshakeDeadline: TimeAmount) throws {
        try pipeline.addHandler(NIOSSLServerHandler(context: context))
        try pipeline.addHandler(TLSHandshakeGuard(deadline: handshakeDeadline))
    }
}

/// Counts connections whose TLS handshake failed (a plain-TCP or plain-HTTP client on a TLS
/// port, an unknown CA, …) or did not complete within the deadline (a client that connects and
/// sends nothing, or trickles a handshake) in `klaxon_rpc_refusals_total{reason="tls"}`, once,
/// and closes them.
final class TLSHandshakeGuard: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    private let deadline: TimeAmount
    private var timer: Scheduled<Void>?
    private var refused = false

    init(deadline: TimeAmount) {
        self.deadline = deadline
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { arm(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        arm(context)
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        context.fireChannelInactive()
    }

    private func arm(_ context: ChannelHandlerContext) {
        guard timer == nil else { return }
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: deadline) {
            let (handler, context) = bound.value
            handler.refuse(context)
        }
    }

    private func refuse(_ context: ChannelHandlerContext) {
        guard !refused else { return }
        refused = true
        KlaxonMetrics.refused("tls")
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted = event as? TLSUserEvent {
            timer?.cancel()
            timer = nil
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is NIOSSLError || error is BoringSSLError {
            refuse(context)
            return
        }
        context.fireErrorCaught(error)
    }
}

/// What a client trusts and presents: `KLAXON_TLS_CA_FILE` (PEM; else the system's roots), the
/// name checked in the server's certificate (`KLAXON_TLS_SERVER_NAME` when addresses are IPs), and
/// for mutual TLS its own certificate and key (`KLAXON_TLS_CLIENT_CERT_FILE`/`_KEY_FILE`).
public struct ClientTLS: Sendable {
    public var caFile: String?
    public var serverName: String?
    public var certFile: String?
    public var keyFile: String?

    public init(caFile: String? = nil, serverName: String? = nil, certFile: String? = nil, keyFile: String? = nil) {
        self.caFile = caFile
        self.serverName = serverName
        self.certFile = certFile.flatMap { $0.isEmpty ? nil : $0 }
        self.keyFile = keyFile.flatMap { $0.isEmpty ? nil : $0 }
    }

    public func context() throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        if let caFile, !caFile.isEmpty { configuration.trustRoots = .file(caFile) }
        if let certFile, let keyFile {
            do {
                configuration.certificateChain = try NIOSSLCertificate.fromPEMFile(certFile).map { .certificate($0) }
                configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: keyFile, format: .pem))
            } catch {
                throw ConfigError(description: "client certificate \(certFile) / key \(keyFile): cannot load them: \(error)")
            }
        }
        return try NIOSSLContext(configuration: configuration)
    }
}
