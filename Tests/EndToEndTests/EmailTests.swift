import Foundation
import KlaxonDomain
import KlaxonTestSupport
import NotifierService
import Shared
import Testing

/// Email pages through a real SMTP conversation with a local SMTP server (Python's aiosmtpd,
/// which scripts/test installs) that writes every message it accepts to a file.
@Suite struct EmailTests {
    static let server = #"""
    import asyncio, email, ssl, sys
    from email import policy
    from aiosmtpd.controller import Controller

    class Keep:
        async def handle_DATA(self, server, session, envelope):
            with open(sys.argv[2], "ab") as f:
                f.write(b"TLS " + (b"yes" if session.ssl else b"no") + b"\n")
                f.write(b"MAIL FROM " + envelope.mail_from.encode() + b"\n")
                f.write(b"RCPT TO " + ",".join(envelope.rcpt_tos).encode() + b"\n")
                f.write(envelope.original_content + b"\n")
                # The MIME structure as a mail client sees it, each part decoded.
                parsed = email.message_from_bytes(envelope.original_content, policy=policy.default)
                f.write(("TYPE " + parsed.get_content_type() + "\n").encode())
                for part in parsed.walk():
                    if part.get_content_maintype() != "multipart":
                        f.write(("PART " + part.get_content_type() + "\n" + part.get_content() + "\nEND PART\n").encode())
                f.write(b"=====\n")
            return "250 Message accepted for delivery"

    # With a certificate and key (argv 3, 4) the server offers STARTTLS.
    context = None
    if len(sys.argv) > 4:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(sys.argv[3], sys.argv[4])
    controller = Controller(Keep(), hostname="127.0.0.1", port=int(sys.argv[1]), tls_context=context)
    controller.start()
    print("ready", flush=True)
    sys.stdin.read()
    controller.stop()
    """#

    /// A running SMTP server (aiosmtpd) writing what it accepts to `mailbox`.
    final class SMTPServer: @unchecked Sendable {
        let port: Int
        let work: URL
        let process = ChildProcess()
        let input = Pipe()
        var mailbox: URL { work.appendingPathComponent("mailbox") }
        var mail: String { (try? String(contentsOf: mailbox, encoding: .utf8)) ?? "" }

        init(port: Int, work: URL) {
            self.port = port
            self.work = work
        }

        /// With `certificate` (a PEM certificate and key), STARTTLS is offered.
        static func start(certificate: (cert: String, key: String)? = nil) async throws -> SMTPServer {
            let work = FileManager.default.temporaryDirectory.appendingPathComponent("klaxon-smtp-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
            let server = SMTPServer(port: try await freePort(), work: work)
            let script = work.appendingPathComponent("smtp.py")
            try EmailTests.server.write(to: script, atomically: true, encoding: .utf8)
            server.process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            server.process.arguments = ["python3", script.path, String(server.port), server.mailbox.path]
                + (certificate.map { [$0.cert, $0.key] } ?? [])
            let output = Pipe()
            server.process.standardInput = server.input
            server.process.standardOutput = output
            server.process.standardError = output
            try server.process.run()
            let reader = output.fileHandleForReading
            let ready = try await offCooperativePool { () -> String in
                var ready = ""
                while !ready.contains("ready") {
                    let chunk = reader.readSomeRetrying() ?? Data()
                    if chunk.isEmpty { break }  // EOF: the server exited
                    ready += String(decoding: chunk, as: UTF8.self)
                }
                return ready
            }
            guard ready.contains("ready") else { throw TestPKI.CLIFailure("SMTP server did not start (pip install aiosmtpd): \(ready)") }
            return server
        }

        func stop() {
            try? input.fileHandleForWriting.close()
            process.waitUntilExit()
            try? FileManager.default.removeItem(at: work)
        }
    }

    @Test func emailPageArrivesReadable() async throws {
        let smtp = try await SMTPServer.start()
        defer { smtp.stop() }
        let port = smtp.port, mailbox = smtp.mailbox
        let pipeline = try await Pipeline { config, _ in
            config.smtpServer = "127.0.0.1:\(port)"
            config.smtpFrom = "pager@klaxon.example"
            config.incidentURLTemplate = "https://klaxon.example/incidents/{id}"
        }
        let service = try await pipeline.seed(users: ["Alice"])
        try await pipeline.db.pool.transaction { connection in
            try connection.query("DELETE FROM notification_rules WHERE user_id = $1", [service.userIDs[0]])
            let method = try connection.query(
                "INSERT INTO contact_methods (user_id, type, address, verified_at_ms) VALUES ($1, 'email', 'alice@example.com', 0) RETURNING id",
                [service.userIDs[0]]).int64(0, "id")!
            try connection.query(
                "INSERT INTO notification_rules (user_id, contact_method_id, start_delay_seconds, urgency) VALUES ($1, $2, 0, 'high')",
                [service.userIDs[0], method])
        }
        let ingest = pipeline.client(.ingest)
        let created: EventResult = try await ingest.call(
            Ingest.SendEvent, Pipeline.trigger(service.routingKey, summary: "Zahlungen fehlgeschlagen — 37 %"))
        let arrived = await eventually(timeout: .seconds(10)) {
            (try? String(contentsOf: mailbox, encoding: .utf8))?.contains("=====") == true
        }
        try #require(arrived, "no email arrived")
        let mail = try String(contentsOf: mailbox, encoding: .utf8)
        let number = try #require(try await pipeline.db.scalar("SELECT number FROM incidents WHERE id = $1", [Int64(created.incidentID)]))
        #expect(mail.contains("TLS no"), "STARTTLS was used with a server that does not offer it")
        #expect(mail.contains("MAIL FROM pager@klaxon.example"))
        #expect(mail.contains("RCPT TO alice@example.com"))
        let subject = "[HIGH] #\(number) Zahlungen fehlgeschlagen — 37 %"
        #expect(mail.contains("Subject: =?UTF-8?B?\(Data(subject.utf8).base64EncodedString())?="))
        #expect(mail.contains("Incident #\(number): Zahlungen fehlgeschlagen — 37 %"))
        #expect(mail.contains("Service: Checkout"))
        #expect(mail.contains("Urgency: high"))
        #expect(mail.contains("Status: triggered"))
        #expect(mail.contains("Open: https://klaxon.example/incidents/\(created.incidentID)"))
        // Plain text and HTML (issue 25, point 6), as Python's email parser reads them.
        #expect(mail.contains("TYPE multipart/alternative"), "\(mail)")
        let parts = mail.components(separatedBy: "PART ").dropFirst().map { String($0.prefix { _ in true }) }
        let text = try #require(parts.first { $0.hasPrefix("text/plain") }), html = try #require(parts.first { $0.hasPrefix("text/html") })
        #expect(text.contains("Incident #\(number): Zahlungen fehlgeschlagen — 37 %"))
        #expect(html.contains("#\(number) Zahlungen fehlgeschlagen — 37 %</h2>"), "\(html)")
        #expect(html.contains("href=\"https://klaxon.example/incidents/\(created.incidentID)\"") && html.contains("acknowledge or resolve"), "\(html)")
        #expect(mail.contains("Subject: =?UTF-8?B?") && !mail.contains("List-Unsubscribe"))
        // Recorded once the SMTP exchange finished (the server may write the mail first).
        let recorded = try await eventually(timeout: .seconds(5)) {
            try await pipeline.db.scalar(
                "SELECT count(*) FROM timeline_entries WHERE type = 'notify_sent' AND details->>'address' = 'a***@example.com'") == 1
        }
        #expect(recorded)
        await ingest.close()
        await pipeline.shutdown()
    }

    /// STARTTLS (KLAXON_SMTP_TLS): used whenever the server offers it and the certificate is
    /// verified (extra CA trusted); an unverifiable certificate fails the attempt naming it and
    /// nothing is sent; `require` refuses a server without STARTTLS, `opportunistic` sends in
    /// clear only to a server that offers nothing, `off` never asks.
    @Test func startTLSIsUsedWhenOfferedAndVerified() async throws {
        let pki = try TestPKI.make()
        let message = OutboundGuardTests.page(title: "Mail over TLS")
        func channel(_ port: Int, _ mode: SMTPTLSMode, trusting ca: String = "") -> EmailChannel {
            var configuration = SMTPConfiguration(host: "127.0.0.1", port: port, from: "pager@klaxon.example")
            configuration.tls = mode
            configuration.extraCAFile = ca
            return EmailChannel(configuration: configuration, timeout: .seconds(10))
        }
        let secure = try await SMTPServer.start(certificate: (pki.certFile, pki.keyFile))
        defer { secure.stop() }
        try await channel(secure.port, .opportunistic, trusting: pki.caFile).deliver(to: "alice@example.com", idempotencyKey: "m-1", message: message)
        try await channel(secure.port, .require, trusting: pki.caFile).deliver(to: "bob@example.com", idempotencyKey: "m-2", message: message)
        #expect(secure.mail.components(separatedBy: "TLS yes").count == 3, "\(secure.mail)")
        do {
            try await channel(secure.port, .opportunistic).deliver(to: "carol@example.com", idempotencyKey: "m-3", message: message)
            Issue.record("mail sent to a server whose certificate no trusted CA signed")
        } catch {
            #expect("\(error)".contains("TLS") && "\(error)".uppercased().contains("CERTIFICATE"), "\(error)")
        }
        #expect(!secure.mail.contains("carol@example.com"), "mail reached a server with an unverified certificate")
        try await channel(secure.port, .off).deliver(to: "dave@example.com", idempotencyKey: "m-4", message: message)
        #expect(secure.mail.contains("TLS no"), "KLAXON_SMTP_TLS=off still upgraded")

        let plain = try await SMTPServer.start()
        defer { plain.stop() }
        do {
            try await channel(plain.port, .require, trusting: pki.caFile).deliver(to: "erin@example.com", idempotencyKey: "m-5", message: message)
            Issue.record("KLAXON_SMTP_TLS=require sent to a server without STARTTLS")
        } catch {
            #expect("\(error)".contains("does not offer STARTTLS"), "\(error)")
        }
        try await channel(plain.port, .opportunistic).deliver(to: "frank@example.com", idempotencyKey: "m-6", message: message)
        #expect(!plain.mail.contains("erin@example.com") && plain.mail.contains("frank@example.com"))
        #expect(throws: ConfigError.self) {
            try KlaxonConfig.fromEnvironment(["KLAXON_DATABASE_URL": "postgresql://x", "KLAXON_SMTP_TLS": "maybe"])
        }
    }
}
