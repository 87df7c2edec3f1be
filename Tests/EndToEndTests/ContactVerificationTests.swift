import Foundation
import KlaxonDomain
import KlaxonTestSupport
import Shared
import Testing

/// Contact methods are verified before they are paged (issue 25, point 3), on the whole
/// pipeline, with the Twilio stand-in (TwilioTests) and the SMTP server (EmailTests): adding an
/// SMS or email method sends a 6-digit code; until it is confirmed the method is not paged, not
/// even at minute zero, and the page's `notify_skipped` says why; 5 tries, 10 minutes, a new code
/// once a minute; a responder verifies only their own; `klaxon user test-page` shows each
/// method's outcome; `klaxon apply` pre-verifies with `verified: true` (admin only); a method
/// whose last 3 pages failed is flagged in `klaxon user show`.
@Suite(.serialized) struct ContactVerificationTests {
    static func code(in text: String) -> String? {
        guard let range = text.range(of: #"verification code is \d{6}"#, options: .regularExpression) else { return nil }
        return String(text[range].suffix(6))
    }

    static func pipeline(twilio: TwilioTests.FakeTwilio, smtp: EmailTests.SMTPServer) async throws -> Pipeline {
        let port = try await freePort()
        return try await Pipeline { config, _ in
            TwilioTests.configure(&config, twilio: twilio, assignmentHTTPPort: port)
            config.smtpServer = "127.0.0.1:\(smtp.port)"
            config.smtpFrom = "pager@klaxon.example"
        }
    }

    /// The notifications of an incident once none is pending: channel → (status, last_error).
    static func settled(_ pipeline: Pipeline, _ incident: UInt64) async throws -> [String: (String, String)] {
        func rows() async throws -> [(String, String, String)] {
            try await pipeline.db.pool.withConnection { connection in
                let rows = try connection.query(
                    """
                    SELECT c.type, n.status, coalesce(n.last_error, '') AS error FROM notifications n
                    JOIN contact_methods c ON c.id = n.contact_method_id WHERE n.incident_id = $1
                    """, [Int64(incident)])
                return (0..<rows.count).map { (rows.string($0, "type")!, rows.string($0, "status")!, rows.string($0, "error")!) }
            }
        }
        _ = try await eventually(timeout: .seconds(15)) { let all = try await rows(); return !all.isEmpty && !all.contains { $0.1 == "pending" } }
        return Dictionary(try await rows().map { ($0.0, ($0.1, $0.2)) }, uniquingKeysWith: { first, _ in first })
    }

    @Test func aCodeVerifiesAMethodAndUnverifiedOnesAreNotPaged() async throws {
        let twilio = try await TwilioTests.FakeTwilio.start(sid: TwilioTests.sid, token: TwilioTests.token)
        defer { twilio.stop() }
        let smtp = try await EmailTests.SMTPServer.start()
        defer { smtp.stop() }
        let pipeline = try await Self.pipeline(twilio: twilio, smtp: smtp)
        let service = try await pipeline.seed(users: ["Alice", "Bob"])
        let (alice, bob) = (UInt64(service.userIDs[0]), UInt64(service.userIDs[1]))
        let people = pipeline.client(.assignment)
        let cli = try KlaxonCLI(address: "127.0.0.1:\(pipeline.config.assignmentListen.port)", token: pipeline.adminToken)

        // Alice adds her mobile: unverified, a code on its way (10 minutes, 5 tries).
        let before = Int64(Date().timeIntervalSince1970 * 1000)
        let sms: ContactMethodMessage = try await people.call(
            People.CreateContactMethod, ContactMethodMessage(userID: alice, type: "sms", address: "+49 170 1111111", label: "mobile"))
        #expect(!sms.verified && sms.codeTriesLeft == 5)
        #expect(sms.codeExpiresAtMs >= before + 600_000 && sms.codeExpiresAtMs <= before + 600_000 + 30_000, "\(sms.codeExpiresAtMs - before)")
        let codeSMS = try #require(await twilio.waitFor(1, "Messages").first)
        #expect(codeSMS.fields["To"] == "+49 170 1111111")
        let code = try #require(Self.code(in: codeSMS.fields["Body"] ?? ""), "\(codeSMS.fields)")
        let _: NotificationRuleMessage = try await people.call(
            People.CreateNotificationRule, NotificationRuleMessage(userID: alice, contactMethodID: sms.id, startDelaySeconds: 0, urgency: .high))

        // An incident now: her webhook is paged, her unverified SMS is not — minute zero or not.
        let ingest = pipeline.client(.ingest, token: nil)
        let first: EventResult = try await ingest.call(Ingest.SendEvent, Pipeline.trigger(service.routingKey, dedupKey: "before"))
        let outcomes = try await Self.settled(pipeline, first.incidentID)
        #expect(outcomes["webhook"]?.0 == "sent")
        #expect(outcomes["sms"]?.0 == "skipped" && outcomes["sms"]?.1 == NotificationCore.unverifiedReason, "\(outcomes)")
        let skipped = try await pipeline.db.pool.withConnection { connection in
            try connection.query(
                "SELECT details->>'reason' AS reason, details->>'contact_method' AS method FROM timeline_entries WHERE incident_id = $1 AND type = 'notify_skipped'",
                [Int64(first.incidentID)])
        }
        #expect(skipped.string(0, "reason") == NotificationCore.unverifiedReason && skipped.string(0, "method") == String(sms.id))
        #expect(twilio.requests.filter { $0.kind == "Messages" }.count == 1, "an unverified number was texted a page")

        // `klaxon user show` says so.
        let shown = try await cli("user", "show", "\(alice)")
        #expect(shown.out.contains("unverified (code expires") && shown.out.contains("5 tries left"), "\(shown.out)")
        #expect(shown.out.contains("contact method \(sms.id) is not verified: it is not paged"), "\(shown.out)")

        // A malformed code costs nothing; a wrong one costs a try; the right one (CLI) verifies.
        let malformed = await people.failure(People.VerifyContactMethod, VerifyContactRequest(contactMethodID: sms.id, code: "12ab"))
        #expect(malformed?.status.violations.map(\.field) == ["code"])
        let wrongCode = code == "000000" ? "000001" : "000000"
        let wrong = await people.failure(People.VerifyContactMethod, VerifyContactRequest(contactMethodID: sms.id, code: wrongCode))
        #expect(wrong?.code == .failedPrecondition && wrong?.status.message.contains("4 tries left") == true, "\(String(describing: wrong))")
        let verified = try await cli("contact", "verify", "\(sms.id)", code)
        #expect(verified.status == 0 && verified.out.contains("verified: it is paged from now on"), "\(verified.err)")
        let fetched: UserMessage = try await people.call(People.GetUser, IDRequest(id: alice))
        #expect(fetched.contactMethods.first { $0.id == sms.id }?.verified == true)

        // Verified: the next incident texts her.
        let second: EventResult = try await ingest.call(Ingest.SendEvent, Pipeline.trigger(service.routingKey, dedupKey: "after"))
        #expect(try await Self.settled(pipeline, second.incidentID)["sms"]?.0 == "sent")
        let page = try #require(await twilio.waitFor(2, "Messages").last)
        #expect(page.fields["Body"]?.hasPrefix("[HIGH] #") == true, "\(page.fields)")

        // Bob's email, added with the CLI: the code comes by mail.
        let added = try await cli("contact", "add", "--user", "\(bob)", "--type", "email", "--to", "bob@example.com")
        #expect(added.status == 0 && added.out.contains("a 6-digit code was sent to it"), "\(added.out) \(added.err)")
        let bobsMail = try #require(UInt64(added.out.split(separator: " ").dropFirst(3).first ?? ""), "\(added.out)")
        _ = await eventually(timeout: .seconds(15)) { Self.code(in: smtp.mail) != nil }
        #expect(smtp.mail.contains("Subject: Klaxon verification code") && smtp.mail.contains("RCPT TO bob@example.com"), "\(smtp.mail)")
        let mailedCode = try #require(Self.code(in: smtp.mail))

        // Alice's responder token may verify her own methods, not Bob's; an observer none.
        let aliceToken = try await Pipeline.issueToken(pipeline.db.pool, name: "alice", role: .responder, userID: Int64(alice))
        let observerToken = try await Pipeline.issueToken(pipeline.db.pool, name: "watcher", role: .observer, userID: nil)
        let asAlice = pipeline.client(.assignment, token: aliceToken), asObserver = pipeline.client(.assignment, token: observerToken)
        #expect(await asAlice.failure(People.VerifyContactMethod, VerifyContactRequest(contactMethodID: bobsMail, code: mailedCode))?.code == .permissionDenied)
        #expect(await asObserver.failure(People.VerifyContactMethod, VerifyContactRequest(contactMethodID: bobsMail, code: mailedCode))?.code == .permissionDenied)
        #expect(await asAlice.failure(People.TestPage, IDRequest(id: bob))?.code == .permissionDenied)

        // Five wrong tries use the code up: then even the right code is refused.
        let other = mailedCode == "000000" ? "000001" : "000000"
        for left in stride(from: 4, through: 0, by: -1) {
            let error = await people.failure(People.VerifyContactMethod, VerifyContactRequest(contactMethodID: bobsMail, code: other))
            let expected = left > 0 ? "\(left) \(left == 1 ? "try" : "tries") left" : "no tries left"
            #expect(error?.status.message.contains(expected) == true, "\(String(describing: error))")
        }
        let usedUp = await people.failure(People.VerifyContactMethod, VerifyContactRequest(contactMethodID: bobsMail, code: mailedCode))
        #expect(usedUp?.status.message.contains("no tries left") == true, "\(String(describing: usedUp))")

        // A new code: not within a minute of the last; a minute later, yes. Ten minutes on, it has expired.
        let tooSoon = await people.failure(People.SendVerificationCode, IDRequest(id: bobsMail))
        #expect(tooSoon?.code == .resourceExhausted, "\(String(describing: tooSoon))")
        try await pipeline.db.pool.withConnection { connection in
            try connection.query("UPDATE contact_verifications SET sent_at_ms = sent_at_ms - 61000 WHERE contact_method_id = $1", [Int64(bobsMail)])
        }
        let resent = try await cli("contact", "send-code", "\(bobsMail)")
        #expect(resent.status == 0, "\(resent.err)")
        _ = await eventually(timeout: .seconds(15)) { smtp.mail.components(separatedBy: "Subject: Klaxon verification code").count == 3 }
        let newCode = try #require(smtp.mail.components(separatedBy: "Subject: Klaxon verification code").last.flatMap(Self.code(in:)))
        try await pipeline.db.pool.withConnection { connection in
            try connection.query(
                "UPDATE contact_verifications SET sent_at_ms = sent_at_ms - 600000, expires_at_ms = expires_at_ms - 600000 WHERE contact_method_id = $1",
                [Int64(bobsMail)])
        }
        let expired = await people.failure(People.VerifyContactMethod, VerifyContactRequest(contactMethodID: bobsMail, code: newCode))
        #expect(expired?.status.message.contains("expired") == true, "\(String(describing: expired))")
        #expect(try await pipeline.db.scalar("SELECT count(*) FROM contact_methods WHERE id = $1 AND verified_at_ms IS NULL", [Int64(bobsMail)]) == 1)
        // The codes' text is gone once sent; only a hash is kept.
        #expect(try await pipeline.db.scalar("SELECT count(*) FROM contact_notices WHERE kind = 'verification' AND status = 'sent' AND body <> ''") == 0)

        for client in [people, ingest, asAlice, asObserver] { await client.close() }
        await pipeline.shutdown()
    }

    @Test func testPagePreVerifiedByApplyAndFailingMethodsFlagged() async throws {
        let twilio = try await TwilioTests.FakeTwilio.start(sid: TwilioTests.sid, token: TwilioTests.token)
        defer { twilio.stop() }
        let smtp = try await EmailTests.SMTPServer.start()
        defer { smtp.stop() }
        let pipeline = try await Self.pipeline(twilio: twilio, smtp: smtp)
        let service = try await pipeline.seed(users: ["Alice"])
        let alice = service.userIDs[0]
        let cli = try KlaxonCLI(address: "127.0.0.1:\(pipeline.config.assignmentListen.port)", token: pipeline.adminToken)

        // Moving in: her mobile and desk phone pre-verified (admin), her email not; a webhook that
        // cannot be reached (link-local: refused for good) paged at minute zero.
        let document = try cli.write("alice.yaml", """
            users:
              - name: Alice
                email: alice@example.com
                contact_methods:
                  - name: mobile
                    type: sms
                    address: "+49 170 1111111"
                    verified: true
                  - name: desk
                    type: phone
                    address: "+49 30 1234567"
                    verified: true
                  - name: mail
                    type: email
                    address: alice@example.com
                  - name: dead
                    type: webhook
                    address: http://169.254.169.254/hook
                notification_rules:
                  - contact_method: dead
                    start_delay_seconds: 0
                    urgency: high
            """)
        let responder = try await Pipeline.issueToken(pipeline.db.pool, name: "alice", role: .responder, userID: alice)
        let refused = try await cli("apply", "-f", document, environment: ["KLAXON_TOKEN": responder])
        #expect(refused.status == 5, "\(refused.out) \(refused.err)")
        #expect(try await pipeline.db.scalar("SELECT count(*) FROM contact_methods WHERE user_id = $1", [alice]) == 1)
        let applied = try await cli("apply", "-f", document)
        #expect(applied.status == 0, "\(applied.err)")
        #expect(applied.lines.contains("+ contact_method alice@example.com/mobile (sms, pre-verified)"), "\(applied.out)")
        #expect(applied.lines.contains("+ contact_method alice@example.com/mail (email, verification code sent)"), "\(applied.out)")
        _ = await eventually(timeout: .seconds(15)) { Self.code(in: smtp.mail) != nil }
        #expect(twilio.requests.isEmpty, "a pre-verified number was sent a code: \(twilio.requests.map(\.fields))")
        let ids = try await pipeline.db.pool.withConnection { connection in
            let rows = try connection.query("SELECT id, label FROM contact_methods WHERE user_id = $1", [alice])
            return Dictionary(uniqueKeysWithValues: (0..<rows.count).map { (rows.string($0, "label")!, rows.int64($0, "id")!) })
        }

        // The test page: every verified method tried once, each outcome printed; the unverified
        // email skipped with how to verify it; the dead webhook failed, so the command fails.
        let test = try await cli("user", "test-page", "\(alice)", "--json")
        #expect(test.status == 1, "\(test.out) \(test.err)")
        let outcomes = try #require(try JSONSerialization.jsonObject(with: Data(test.out.utf8)) as? [[String: Any]], "\(test.out)")
        let status = Dictionary(uniqueKeysWithValues: outcomes.map { (($0["contact_method_id"] as? NSNumber)?.int64Value ?? 0, $0["status"] as? String ?? "") })
        #expect(status[ids["webhook"]!] == "sent" && status[ids["mobile"]!] == "sent" && status[ids["desk"]!] == "sent", "\(outcomes)")
        #expect(status[ids["mail"]!] == "skipped" && status[ids["dead"]!] == "failed", "\(outcomes)")
        let detail = outcomes.first { ($0["contact_method_id"] as? NSNumber)?.int64Value == ids["mail"]! }?["detail"] as? String ?? ""
        #expect(detail.contains("klaxon contact verify \(ids["mail"]!) CODE"), "\(detail)")
        let texts = twilio.requests
        #expect(texts.contains { $0.kind == "Messages" && $0.fields["Body"]?.contains("Klaxon test page for Alice") == true }, "\(texts.map(\.fields))")
        #expect(texts.contains { $0.kind == "Calls" && $0.fields["Twiml"]?.contains("Klaxon test page for Alice") == true }, "\(texts.map(\.fields))")
        #expect(pipeline.sink.requests.contains { String(decoding: $0.body, as: UTF8.self).contains("\"type\":\"contact_method.test\"") })
        let table = try await cli("user", "test-page", "\(alice)")
        #expect(table.out.contains("OUTCOME") && table.out.contains("link-local"), "\(table.out)")

        // Three incidents: the dead webhook fails each page; `klaxon user show` flags it.
        let ingest = pipeline.client(.ingest, token: nil)
        for key in ["a", "b", "c"] {
            let result: EventResult = try await ingest.call(Ingest.SendEvent, Pipeline.trigger(service.routingKey, dedupKey: key))
            _ = try await Self.settled(pipeline, result.incidentID)
        }
        let shown = try await cli("user", "show", "\(alice)")
        #expect(shown.out.contains("contact method \(ids["dead"]!) FAILING: its last 3 pages failed"), "\(shown.out)")
        #expect(shown.out.contains("verified, FAILING"), "\(shown.out)")
        // Export keeps what was verified, so applying it elsewhere does not ask again.
        let exported = try await cli("export")
        #expect(exported.out.contains("verified: true"), "\(exported.out)")
        await ingest.close()
        await pipeline.shutdown()
    }
}
