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
    import asyncio, sys
    from aiosmtpd.controller import Controller

    class Keep:
        async def handle_DATA(self, server, session, envelope):
            with open(sys.argv[2], "ab") as f:
                f.write(b"MAIL FROM " + envelope.mail_from.encode() + b"\n")
                f.write(b"RCPT TO " + ",".join(envelope.rcpt_tos).encode() + b"\n")
                f.write(envelope.original_content + b"\n=====\n")
            return "250 Message accepted for delivery"

    controller = Controller(Keep(), hostname="127.0.0.1", port=int(sys.argv[1]))
    controller.start()
    print("ready", flush=True)
    sys.stdin.read()
    controller.stop()
    """#

    @Test func emailPageArrivesReadable() async throws {
        let port = try await freePort()
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("klaxon-smtp-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        let script = work.appendingPathComponent("smtp.py")
        let mailbox = work.appendingPathComponent("mailbox")
        try Self.server.write(to: script, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script.path, String(port), mailbox.path]
        let input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = output
        try process.run()
        defer {
            try? input.fileHandleForWriting.close()
            process.waitUntilExit()
        }
        let reader = output.fileHandleForReading
        let ready = try await offCooperativePool { () -> String in
            var ready = ""
            while !ready.contains("ready") {
                let chunk = reader.availableData
                if chunk.isEmpty { break }  // EOF: the server exited
                ready += String(decoding: chunk, as: UTF8.self)
            }
            return ready
        }
        try #require(ready.contains("ready"), "SMTP server did not start (pip install aiosmtpd): \(ready)")

        let pipeline = try await Pipeline { config, _ in
            config.smtpServer = "127.0.0.1:\(port)"
            config.smtpFrom = "pager@klaxon.example"
            config.incidentURLTemplate = "https://klaxon.example/incidents/{id}"
        }
        let service = try await pipeline.seed(users: ["Alice"])
        try await pipeline.db.pool.transaction { connection in
            try connection.query("DELETE FROM notification_rules WHERE user_id = $1", [service.userIDs[0]])
            let method = try connection.query(
                "INSERT INTO contact_methods (user_id, type, address) VALUES ($1, 'email', 'alice@example.com') RETURNING id",
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
        #expect(mail.contains("MAIL FROM pager@klaxon.example"))
        #expect(mail.contains("RCPT TO alice@example.com"))
        let subject = "[HIGH] #\(number) Zahlungen fehlgeschlagen — 37 %"
        #expect(mail.contains("Subject: =?UTF-8?B?\(Data(subject.utf8).base64EncodedString())?="))
        #expect(mail.contains("Incident #\(number): Zahlungen fehlgeschlagen — 37 %"))
        #expect(mail.contains("Service: Checkout"))
        #expect(mail.contains("Urgency: high"))
        #expect(mail.contains("Status: triggered"))
        #expect(mail.contains("Open: https://klaxon.example/incidents/\(created.incidentID)"))
        // Recorded once the SMTP exchange finished (the server may write the mail first).
        let recorded = try await eventually(timeout: .seconds(5)) {
            try await pipeline.db.scalar(
                "SELECT count(*) FROM timeline_entries WHERE type = 'notify_sent' AND details->>'address' = 'a***@example.com'") == 1
        }
        #expect(recorded)
        await ingest.close()
        await pipeline.shutdown()
    }
}
