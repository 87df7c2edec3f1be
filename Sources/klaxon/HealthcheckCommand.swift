import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOSSL

/// `klaxon healthcheck URL`: GET the URL and exit 0 on a 2xx answer, 1 otherwise. Container
/// health checks use it (the runtime image has no curl): `klaxon healthcheck http://127.0.0.1:8401/readyz`.
/// An https URL is verified against `--ca` / `$KLAXON_TLS_CA_FILE` (the container's own CA), else the system's roots.
struct HealthcheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "healthcheck",
        abstract: "GET a health URL; exit 0 on 2xx, 1 otherwise (for container health checks).")

    @Argument(help: "e.g. http://127.0.0.1:8401/readyz")
    var url: String

    @Option(help: "Seconds to wait for the answer.")
    var timeout = 3

    @Option(help: "PEM CA an https URL is verified with. Default: $KLAXON_TLS_CA_FILE, else the system's roots.")
    var ca: String?

    func run() async throws {
        var request = HTTPClientRequest(url: url)
        request.method = .GET
        let outcome: String
        var healthy = false
        let caFile = ca ?? ProcessInfo.processInfo.environment["KLAXON_TLS_CA_FILE"].flatMap { $0.isEmpty ? nil : $0 }
        var client = HTTPClient.shared
        if let caFile {
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.trustRoots = .file(caFile)
            client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(tlsConfiguration: tls))
        }
        do {
            let response = try await client.execute(request, timeout: .seconds(Int64(max(1, timeout))))
            let body = try await response.body.collect(upTo: 64 * 1024)
            let text = String(buffer: body).trimmingCharacters(in: .whitespacesAndNewlines)
            healthy = (200..<300).contains(response.status.code)
            outcome = "\(response.status.code) \(text)"
        } catch {
            outcome = "unreachable: \(error)"
        }
        if caFile != nil { try? await client.shutdown() }
        print("\(url): \(outcome)")
        if !healthy { throw ExitCode(1) }
    }
}
