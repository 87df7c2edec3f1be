import AsyncHTTPClient
import Foundation
import NIOConcurrencyHelpers
import NIOSSL

extension HTTPClient {
    /// The client Klaxon's outbound requests go out through (pages, channel posts, chat late
    /// replies): it never follows a redirect by itself (AsyncHTTPClient
    /// would turn a POST answered 301/302/303 into a GET without body and call that delivered).
    /// Up to 256 connections per host: the dispatcher bounds pages in flight per address (128), so
    /// an address that never answers holds at most its own share of its host's connections.
    public static var pages: HTTPClient { pages(trusting: "") }

    private static let clients = NIOLockedValueBox<[String: HTTPClient]>([:])
    private static let leanTwins = NIOLockedValueBox<[ObjectIdentifier: LeanHTTP1]>([:])

    /// The pages' client verifying certificates against the system's roots plus `extraCAFile`'s
    /// (KLAXON_TLS_EXTRA_CA_FILE; empty: the system's alone). One per CA file, kept for the process.
    public static func pages(trusting extraCAFile: String) -> HTTPClient {
        clients.withLockedValue { clients in
            if let client = clients[extraCAFile] { return client }
            var configuration = Configuration(redirectConfiguration: .disallow)
            configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 256)
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.minimumTLSVersion = .tlsv12
            if !extraCAFile.isEmpty { tls.additionalTrustRoots = [.file(extraCAFile)] }
            configuration.tlsConfiguration = tls
            let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
            clients[extraCAFile] = client
            let lean = LeanHTTP1(group: HTTPClient.defaultEventLoopGroup, tlsConfiguration: tls)
            leanTwins.withLockedValue { $0[ObjectIdentifier(client)] = lean }
            return client
        }
    }

    /// The lean HTTP/1.1 client with this client's trust (issue 29): present for the clients
    /// `pages(trusting:)` makes, nil for any other (which then sends everything itself).
    /// None while `leanPages` is false.
    public var lean: LeanHTTP1? {
        guard Self.leanEnabled.withLockedValue({ $0 }) else { return nil }
        return Self.leanTwins.withLockedValue { $0[ObjectIdentifier(self)] }
    }

    /// false (KLAXON_PAGES_HTTP_CLIENT=general) sends every outbound POST through AsyncHTTPClient
    /// alone, the way before issue 29. Set by the services from their configuration.
    public static var leanPages: Bool {
        get { leanEnabled.withLockedValue { $0 } }
        set { leanEnabled.withLockedValue { $0 = newValue } }
    }

    private static let leanEnabled = NIOLockedValueBox(true)
}
