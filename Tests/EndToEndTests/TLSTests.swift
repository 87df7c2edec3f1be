import AsyncHTTPClient
import Foundation
import KlaxonDomain
import KlaxonTestSupport
import NIOCore
import NIOPosix
import NIOSSL
import NotifierService
import Shared
import Testing

/// A throwaway CA and server certificates, made with the `openssl` command.
struct TestPKI {
    let dir: URL
    var caFile: String { dir.appendingPathComponent("ca.pem").path }
    var certFile: String { dir.appendingPathComponent("server.pem").path }
    var keyFile: String { dir.appendingPathComponent("server.key").path }

    static func openssl(_ arguments: [String], in dir: URL) throws {
        let process = ChildProcess()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = arguments
        process.currentDirectoryURL = dir
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw CLIFailure("openssl \(arguments.joined(separator: " ")) failed") }
    }

    struct CLIFailure: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    static func make(serial: Int = 1001) throws -> TestPKI {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("klaxon-pki-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "ca.key",
                     "-out", "ca.pem", "-days", "2", "-subj", "/CN=Klaxon test CA"], in: dir)
        let pki = TestPKI(dir: dir)
        try pki.issue(serial: serial)
        return pki
    }

    /// A server certificate for 127.0.0.1 and localhost, written over the current one.
    func issue(serial: Int) throws {
        try "subjectAltName=IP:127.0.0.1,DNS:localhost\n".write(to: dir.appendingPathComponent("ext.cnf"), atomically: true, encoding: .utf8)
        try Self.openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "next.key",
                          "-out", "next.csr", "-subj", "/CN=localhost"], in: dir)
        try Self.openssl(["x509", "-req", "-in", "next.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial", "\(serial)",
                          "-days", "2", "-out", "next.pem", "-extfile", "ext.cnf"], in: dir)
        // The key first, then the certificate: a reload in between fails its key check and keeps the old pair.
        // rename(2): each file is replaced at once, never seen half-written.
        guard rename(dir.appendingPathComponent("next.key").path, keyFile) == 0,
              rename(dir.appendingPathComponent("next.pem").path, certFile) == 0
        else { throw CLIFailure("cannot move the new certificate into place") }
    }

    /// A client certificate (clientAuth) this CA signs: its PEM certificate and key files.
    func issueClient(_ name: String) throws -> (cert: String, key: String) {
        try "extendedKeyUsage=clientAuth\n".write(to: dir.appendingPathComponent("client.cnf"), atomically: true, encoding: .utf8)
        try Self.openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "\(name).key",
                          "-out", "\(name).csr", "-subj", "/CN=\(name)"], in: dir)
        try Self.openssl(["x509", "-req", "-in", "\(name).csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial", "7",
                          "-days", "2", "-out", "\(name).pem", "-extfile", "client.cnf"], in: dir)
        return (dir.appendingPathComponent("\(name).pem").path, dir.appendingPathComponent("\(name).key").path)
    }

    /// The serial number of the certificate a new TLS connection to `port` is shown.
    static func servedSerial(port: Int, caFile: String) async throws -> String {
        try await offCooperativePool {
            let process = ChildProcess()
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", "openssl s_client -connect 127.0.0.1:\(port) -CAfile '\(caFile)' </dev/null 2>/dev/null | openssl x509 -noout -serial"]
            let out = Pipe()
            process.standardOutput = out
            try process.run()
            let data = out.fileHandleForReading.readAllRetrying()
            process.waitUntilExit()
            return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
    }
}

/// TLS on every listener (issue 24): `KLAXON_TLS_CERT_FILE`/`_KEY_FILE`, clients verifying with
/// `KLAXON_TLS_CA_FILE`, plain clients refused and counted, certificates reloaded.
@Suite(.serialized) struct TLSTests {
    static func tlsPipeline(_ pki: TestPKI) async throws -> Pipeline {
        try await Pipeline { config, _ in
            config.tlsCertFile = pki.certFile
            config.tlsKeyFile = pki.keyFile
            config.tlsCAFile = pki.caFile
        }
    }

    /// A trigger over the binary protocol with TLS (the client verifying the server against the
    /// test CA) pages through Assignment and Notifier, whose own calls between them are TLS too.
    @Test func theWholePipelineSpeaksTLS() async throws {
        let pki = try TestPKI.make()
        let pipeline = try await Self.tlsPipeline(pki)
        let service = try await pipeline.seed(users: ["Alice"])
        let ingest = pipeline.client(.ingest, token: nil)
        let created: EventResult = try await ingest.call(Ingest.SendEvent, Pipeline.trigger(service.routingKey))
        #expect(created.outcome == .created)
        let pages = await pipeline.sink.waitForRequests(1, timeout: .seconds(10))
        #expect(pages.first?.webhook?.incident.id == created.incidentID, "the page did not arrive over the TLS pipeline")
        // Every listener serves the test CA's certificate (binary and HTTP alike).
        for port in [pipeline.config.ingestListen.port, pipeline.config.assignmentListen.port, pipeline.config.notifierListen.port,
                     pipeline.ingestHTTPPort, pipeline.assignmentHTTPPort, pipeline.notifierHTTPPort] {
            #expect(try await TestPKI.servedSerial(port: port, caFile: pki.caFile) == "serial=03E9", "port \(port)")
        }
        // A client that does not trust the CA is refused by its own check (nothing is sent in clear).
        var untrusting = RPCClientConfiguration(host: "127.0.0.1", port: pipeline.config.ingestListen.port)
        untrusting.tls = ClientTLS()
        let stranger = RPCClient(configuration: untrusting)
        #expect(await stranger.failure(Ingest.SendEvent, Pipeline.trigger(service.routingKey))?.code == .unavailable)
        await stranger.close()
        // The CLI over TLS: with the CA it works; with none it is refused before sending anything.
        let cli = try KlaxonCLI(address: "127.0.0.1:\(pipeline.config.assignmentListen.port)", token: pipeline.adminToken)
        let listed = try await cli("incident", "list", environment: ["KLAXON_TLS_CA_FILE": pki.caFile])
        #expect(listed.status == 0 && listed.out.contains("Checkout error rate"), "\(listed.out)\(listed.err)")
        let sent = try await cli("send-event", "--address", "127.0.0.1:\(pipeline.config.ingestListen.port)", "--routing-key", service.routingKey,
                                 "--ca", pki.caFile, "--dedup-key", "cli-tls")
        #expect(sent.status == 0 && sent.out.hasPrefix("CREATED incident"), "\(sent.out)\(sent.err)")
        // HTTPS speaks HTTP/2 to a client that asks for it by ALPN, HTTP/1.1 to the others.
        for (flag, version) in [("--http2", "2"), ("--http1.1", "1.1")] {
            let port = pipeline.ingestHTTPPort, ca = pki.caFile
            let (status, spoken) = try await offCooperativePool {
                try ThirdPartyClientTests.runBlocking("curl", ["-sS", flag, "--cacert", ca, "-o", "/dev/null", "-w", "%{http_version}", "https://127.0.0.1:\(port)/healthz"])
            }
            #expect(status == 0 && spoken == version, "curl \(flag): \(spoken)")
        }
        // The containers' health check over https, verifying with the CA from the environment.
        let health = try await cli("healthcheck", "https://127.0.0.1:\(pipeline.ingestHTTPPort)/readyz", environment: ["KLAXON_TLS_CA_FILE": pki.caFile])
        #expect(health.status == 0 && health.out.contains("200"), "\(health.out)\(health.err)")
        let unverified = try await cli("healthcheck", "https://127.0.0.1:\(pipeline.ingestHTTPPort)/readyz")
        #expect(unverified.status == 1, "an unverified certificate passed the health check: \(unverified.out)")
        let systemRoots = try await cli("incident", "list", "--tls")
        #expect(systemRoots.status == 4, "a certificate from an unknown CA was accepted: \(systemRoots.out)\(systemRoots.err)")
        await ingest.close()
        await pipeline.shutdown()
    }

    /// A plain-TCP client on a TLS port is refused cleanly and counted; the listener goes on
    /// serving TLS clients.
    @Test func aPlainClientOnATLSPortIsRefusedAndCounted() async throws {
        let pki = try TestPKI.make()
        let pipeline = try await Self.tlsPipeline(pki)
        let service = try await pipeline.seed(users: ["Alice"])
        var plain = RPCClientConfiguration(host: "127.0.0.1", port: pipeline.config.ingestListen.port)
        plain.defaultTimeout = .seconds(3)
        let plainClient = RPCClient(configuration: plain)
        #expect(await plainClient.failure(Ingest.SendEvent, Pipeline.trigger(service.routingKey)) != nil)
        await plainClient.close()
        // Plain HTTP on the HTTPS port: no answer in clear.
        let request = HTTPClientRequest(url: "http://127.0.0.1:\(pipeline.ingestHTTPPort)/healthz")
        #expect((try? await HTTPClient.shared.execute(request, timeout: .seconds(3))) == nil)
        let ingest = pipeline.client(.ingest, token: nil)
        let created: EventResult = try await ingest.call(Ingest.SendEvent, Pipeline.trigger(service.routingKey))
        #expect(created.outcome == .created, "the listener stopped serving after a plain client")
        // Counted, on the HTTPS /metrics (verified with the CA).
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .file(pki.caFile)
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
        configuration.timeout = .init(connect: .seconds(3), read: .seconds(5))
        let https = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        let metrics = try await https.execute(HTTPClientRequest(url: "https://127.0.0.1:\(pipeline.ingestHTTPPort)/metrics"), timeout: .seconds(5))
        let body = String(buffer: try await metrics.body.collect(upTo: 8 << 20))
        try await https.shutdown()
        #expect(body.split(separator: "\n").contains { $0.hasPrefix("klaxon_rpc_refusals_total{") && $0.contains("reason=\"tls\"") }, "no tls refusal counted")
        await ingest.close()
        await pipeline.shutdown()
    }

    /// A client that connects to a TLS port and never finishes its handshake (here: sends nothing)
    /// is closed within the frame deadline and counted; it holds no slot past it.
    @Test func aHandshakeThatNeverCompletesIsClosedAtTheFrameDeadline() async throws {
        let pki = try TestPKI.make()
        let pipeline = try await Pipeline { config, _ in
            config.tlsCertFile = pki.certFile
            config.tlsKeyFile = pki.keyFile
            config.tlsCAFile = pki.caFile
            config.frameDeadlineSeconds = 1
        }
        let before = try await Self.tlsRefusals(pipeline, pki)
        let silent = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: pipeline.config.ingestListen.port).get()
        let started = ContinuousClock.now
        #expect(await eventually(timeout: .seconds(5)) { !silent.isActive }, "a silent client still holds its connection")
        let held = ContinuousClock.now - started
        #expect(held >= .milliseconds(900), "closed before the deadline (\(held))")
        #expect(try await Self.tlsRefusals(pipeline, pki) >= before + 1)
        await pipeline.shutdown()
    }

    /// A new certificate on disk: new connections see it (SIGHUP reloads at once; a file change
    /// within seconds), a connection already open keeps working.
    @Test func aRotatedCertificateServesNewConnectionsWithoutDroppingOldOnes() async throws {
        let pki = try TestPKI.make(serial: 1001)
        let pipeline = try await Self.tlsPipeline(pki)
        let service = try await pipeline.seed(users: ["Alice"])
        let port = pipeline.config.ingestListen.port
        let open = pipeline.client(.ingest, token: nil)
        let first: EventResult = try await open.call(Ingest.SendEvent, Pipeline.trigger(service.routingKey, dedupKey: "before"))
        #expect(first.outcome == .created)
        #expect(try await TestPKI.servedSerial(port: port, caFile: pki.caFile) == "serial=03E9")
        try pki.issue(serial: 2002)
        ServerTLS.reloadAll()  // what SIGHUP does
        #expect(try await TestPKI.servedSerial(port: port, caFile: pki.caFile) == "serial=07D2", "a new connection still sees the old certificate")
        let second: EventResult = try await open.call(Ingest.SendEvent, Pipeline.trigger(service.routingKey, dedupKey: "after"))
        #expect(second.outcome == .created, "the connection opened before the rotation was dropped")
        // A file change alone is picked up too (checked every 5 s).
        try pki.issue(serial: 3003)
        #expect(await eventually(timeout: .seconds(15)) {
            (try? await TestPKI.servedSerial(port: port, caFile: pki.caFile)) == "serial=0BBB"
        }, "the changed files were not re-read")
        await open.close()
        await pipeline.shutdown()
    }

    /// PagerDuty's own Python client (`pagerduty` on PyPI, EventsApiV2Client), which accepts only
    /// an https:// base URL, against Ingest's HTTPS listener verified with the test CA: trigger
    /// with custom details, acknowledge, resolve; the trigger pages.
    @Test func pagerDutysOwnClientOverHTTPS() async throws {
        let pki = try TestPKI.make()
        let pipeline = try await Self.tlsPipeline(pki)
        let service = try await pipeline.seed(users: ["Alice"])
        let script = """
            import ssl, sys, pagerduty
            base, key, ca = sys.argv[1], sys.argv[2], sys.argv[3]
            # The library's own HTTP client (httpx), verifying Klaxon's certificate with the test CA.
            client = pagerduty.EventsApiV2Client(key, base_url=base, verify=ssl.create_default_context(cafile=ca))
            dedup = client.trigger("Disk full on db-1", "db-1", dedup_key="pd-https", custom_details={"free": "0%"})
            print("trigger", dedup)
            print("acknowledge", client.acknowledge(dedup))
            print("resolve", client.resolve(dedup))
            """
        let port = pipeline.ingestHTTPPort, key = service.routingKey
        let result = try await offCooperativePool {
            try ThirdPartyClientTests.runBlocking("python3", ["-c", script, "https://127.0.0.1:\(port)", key, pki.caFile])
        }
        #expect(result.0 == 0, "\(result.1)")
        #expect(result.1.contains("trigger pd-https") && result.1.contains("acknowledge pd-https") && result.1.contains("resolve pd-https"), "\(result.1)")
        let pages = await pipeline.sink.waitForRequests(1, timeout: .seconds(10))
        #expect(pages.first?.webhook?.incident.dedupKey == "pd-https")
        let details = try await pipeline.db.pool.withConnection { connection in
            try connection.query("SELECT status FROM incidents WHERE dedup_key = 'pd-https'").string(0, "status")
        }
        #expect(details == "resolved")
        await pipeline.shutdown()
    }

    /// Mutual TLS (KLAXON_TLS_CLIENT_CA_FILE): the binary listeners require a client certificate
    /// the CA signed. Klaxon's own services present theirs (a trigger pages through all three);
    /// a client with none, or with one from another CA, is refused and counted, and the listener
    /// goes on serving; the CLI presents `--cert`/`--key`; HTTP listeners (monitors) ask for none.
    @Test func mutualTLSBetweenServices() async throws {
        let pki = try TestPKI.make()
        let services = try pki.issueClient("klaxon-services")
        let pipeline = try await Pipeline { config, _ in
            config.tlsCertFile = pki.certFile
            config.tlsKeyFile = pki.keyFile
            config.tlsCAFile = pki.caFile
            config.tlsClientCAFile = pki.caFile
            config.tlsClientCertFile = services.cert
            config.tlsClientKeyFile = services.key
        }
        let service = try await pipeline.seed(users: ["Alice"])
        // The test's client is configured like the services' own (their certificate).
        let ingest = pipeline.client(.ingest, token: nil)
        let created: EventResult = try await ingest.call(Ingest.SendEvent, Pipeline.trigger(service.routingKey))
        let pages = await pipeline.sink.waitForRequests(1, timeout: .seconds(10))
        #expect(pages.first?.webhook?.incident.id == created.incidentID, "Ingest → Assignment → Notifier did not connect with their certificates")

        let port = pipeline.config.ingestListen.port
        func refused(_ tls: ClientTLS) async -> RPCError? {
            var configuration = RPCClientConfiguration(host: "127.0.0.1", port: port)
            configuration.tls = tls
            configuration.defaultTimeout = .seconds(5)
            let client = RPCClient(configuration: configuration)
            defer { Task { await client.close() } }
            return await client.failure(Ingest.SendEvent, Pipeline.trigger(service.routingKey, dedupKey: "stranger"))
        }
        let before = try await Self.tlsRefusals(pipeline, pki)
        #expect(await refused(ClientTLS(caFile: pki.caFile)) != nil, "a client without a certificate was served")
        let other = try TestPKI.make()
        let foreign = try other.issueClient("foreign")
        #expect(await refused(ClientTLS(caFile: pki.caFile, certFile: foreign.cert, keyFile: foreign.key)) != nil,
                "a certificate from another CA was accepted")
        #expect(try await Self.tlsRefusals(pipeline, pki) >= before + 2, "the refusals were not counted")
        let again: EventResult = try await ingest.call(Ingest.SendEvent, Pipeline.trigger(service.routingKey, dedupKey: "after-strangers"))
        #expect(again.outcome == .created, "the listener stopped serving after refused clients")
        let count = try await pipeline.db.pool.withConnection { connection in
            try connection.query("SELECT count(*)::int AS n FROM incidents WHERE dedup_key = 'stranger'").int(0, "n")
        }
        #expect(count == 0, "a refused client's event was written")

        // The CLI: with the services' certificate it works; without one it fails, saying so.
        let cli = try KlaxonCLI(address: "127.0.0.1:\(pipeline.config.assignmentListen.port)", token: pipeline.adminToken)
        let withCert = try await cli("incident", "list", "--ca", pki.caFile, "--cert", services.cert, "--key", services.key)
        #expect(withCert.status == 0 && withCert.out.contains("Checkout error rate"), "\(withCert.out)\(withCert.err)")
        let withoutCert = try await cli("incident", "list", "--ca", pki.caFile)
        #expect(withoutCert.status == 4 && withoutCert.err.contains("CERTIFICATE_REQUIRED"), "\(withoutCert.status) \(withoutCert.out)\(withoutCert.err)")
        let halfPair = try await cli("incident", "list", "--ca", pki.caFile, "--cert", services.cert)
        #expect(halfPair.status == 64 && halfPair.err.contains("--key"), "\(halfPair.err)")
        await ingest.close()
        await pipeline.shutdown()
    }

    /// `klaxon_rpc_refusals_total{reason="tls"}` on Ingest's HTTPS /metrics (summed over listeners).
    static func tlsRefusals(_ pipeline: Pipeline, _ pki: TestPKI) async throws -> Double {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .file(pki.caFile)
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
        configuration.timeout = .init(connect: .seconds(3), read: .seconds(5))
        let https = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        defer { _ = https.shutdown() }
        // The HTTP listener asks no client certificate: monitors and browsers have none.
        let metrics = try await https.execute(HTTPClientRequest(url: "https://127.0.0.1:\(pipeline.ingestHTTPPort)/metrics"), timeout: .seconds(5))
        let body = String(buffer: try await metrics.body.collect(upTo: 8 << 20))
        return body.split(separator: "\n").filter { $0.hasPrefix("klaxon_rpc_refusals_total{") && $0.contains("reason=\"tls\"") }
            .compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }.reduce(0, +)
    }

    /// A listener's own certificate (`KLAXON_INGEST_HTTP_TLS_CERT_FILE`/`_KEY_FILE`): Ingest's HTTP
    /// listener serves it, the others the process's; a half-set pair is refused at start, naming it.
    @Test func aListenerCanServeItsOwnCertificate() async throws {
        let pki = try TestPKI.make(serial: 1001)
        let public_ = try TestPKI.make(serial: 4004)
        let pipeline = try await Pipeline { config, _ in
            config.tlsCertFile = pki.certFile
            config.tlsKeyFile = pki.keyFile
            config.tlsCAFile = pki.caFile
            config.listenerTLS[.ingestHTTP] = .init(cert: public_.certFile, key: public_.keyFile)
        }
        #expect(try await TestPKI.servedSerial(port: pipeline.ingestHTTPPort, caFile: public_.caFile) == "serial=0FA4")
        #expect(try await TestPKI.servedSerial(port: pipeline.config.ingestListen.port, caFile: pki.caFile) == "serial=03E9")
        #expect(try await TestPKI.servedSerial(port: pipeline.assignmentHTTPPort, caFile: pki.caFile) == "serial=03E9")
        await pipeline.shutdown()
        // A public certificate on the HTTP listener alone: the binary listeners and the services'
        // own clients stay plain (they must agree).
        let httpOnly = try KlaxonConfig.fromEnvironment([
            "KLAXON_DATABASE_URL": "postgresql://x",
            "KLAXON_INGEST_HTTP_TLS_CERT_FILE": public_.certFile, "KLAXON_INGEST_HTTP_TLS_KEY_FILE": public_.keyFile])
        #expect(httpOnly.serverTLS(.ingestHTTP)?.certFile == public_.certFile)
        #expect(httpOnly.serverTLS(.ingest) == nil && httpOnly.serverTLS(.assignmentHTTP) == nil)
        #expect(httpOnly.clientTLS == nil, "a certificate on an HTTP listener turned TLS on for the services' own clients")
        // Mutual TLS without TLS on the binary listeners, or a client certificate that does not load: refused at start, naming it.
        for (environment, words) in [
            (["KLAXON_TLS_CLIENT_CA_FILE": pki.caFile], "KLAXON_TLS_CLIENT_CA_FILE needs TLS on the binary listeners"),
            (["KLAXON_TLS_CA_FILE": pki.caFile, "KLAXON_TLS_CLIENT_CERT_FILE": "/nonexistent.pem", "KLAXON_TLS_CLIENT_KEY_FILE": pki.keyFile],
             "/nonexistent.pem"),
        ] {
            do {
                _ = try KlaxonConfig.fromEnvironment(environment.merging(["KLAXON_DATABASE_URL": "postgresql://x"]) { a, _ in a })
                Issue.record("accepted \(environment)")
            } catch {
                #expect("\(error)".contains(words), "\(error)")
            }
        }
        #expect(throws: ConfigError.self) {
            try KlaxonConfig.fromEnvironment(["KLAXON_DATABASE_URL": "postgresql://x", "KLAXON_INGEST_HTTP_TLS_CERT_FILE": public_.certFile])
        }
        do {
            _ = try KlaxonConfig.fromEnvironment(["KLAXON_DATABASE_URL": "postgresql://x", "KLAXON_INGEST_HTTP_TLS_CERT_FILE": public_.certFile])
        } catch {
            #expect("\(error)".contains("KLAXON_INGEST_HTTP_TLS_CERT_FILE and KLAXON_INGEST_HTTP_TLS_KEY_FILE go together"), "\(error)")
        }
    }

    /// Pages to an https webhook: delivered when its CA is trusted (KLAXON_TLS_EXTRA_CA_FILE),
    /// a failed attempt naming the verification error when not — never sent in clear.
    @Test func httpsWebhooksAreVerified() async throws {
        let pki = try TestPKI.make()
        var server = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(pki.certFile).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: pki.keyFile, format: .pem)))
        server.minimumTLSVersion = .tlsv12
        let sink = try await HTTPSink.start(tls: try NIOSSLContext(configuration: server))
        #expect(sink.url.hasPrefix("https://"))
        let message = OutboundGuardTests.page(title: "TLS page")
        try await WebhookChannel(http: .pages(trusting: pki.caFile), timeout: .seconds(5))
            .deliver(to: "\(sink.url)/hooks", idempotencyKey: "n-tls", message: message)
        #expect(sink.requests.count == 1 && sink.requests.first?.webhook?.incident.title == "TLS page")
        do {
            try await WebhookChannel(http: .pages, timeout: .seconds(5)).deliver(to: "\(sink.url)/hooks", idempotencyKey: "n-2", message: message)
            Issue.record("delivered to a certificate no trusted CA signed")
        } catch {
            #expect("\(error)".lowercased().contains("certificate"), "the failure does not name the verification: \(error)")
        }
        #expect(sink.requests.count == 1, "something reached the endpoint without a verified certificate")
        await sink.shutdown()
    }
}
