import AsyncHTTPClient
import Foundation
import KlaxonDomain
import KlaxonTestSupport
import NIOCore
import Shared
import Testing

/// SMS and voice through a Twilio-compatible API (issue 25, point 1), against a local server
/// that plays Twilio: it checks the Basic auth, records the form posts Klaxon makes, answers with
/// Twilio's JSON shapes, and calls Klaxon back — its requests signed with the `twilio` package's
/// own RequestValidator. A reply "1a" acknowledges as the sender, a forged one does nothing, a
/// key press "2" resolves, and an SMS the provider reports undelivered is sent again.
@Suite(.serialized) struct TwilioTests {
    static let fake = #"""
    import base64, json, sys, urllib.error, urllib.parse, urllib.request, uuid
    from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
    from twilio.request_validator import RequestValidator

    port, sid, token, log = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    validator = RequestValidator(token)
    expected_auth = "Basic " + base64.b64encode(f"{sid}:{token}".encode()).decode()

    class Twilio(BaseHTTPRequestHandler):
        def answer(self, status, body):
            out = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def do_POST(self):
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
            if self.path == "/control/callback":
                # Twilio calling Klaxon back: the form signed as Twilio signs it (or forged).
                request = json.loads(raw)
                params = request["params"]
                signature = validator.compute_signature(request["url"], params)
                if request.get("forge"):
                    signature = RequestValidator("not-the-token").compute_signature(request["url"], params)
                data = urllib.parse.urlencode(params).encode()
                call = urllib.request.Request(request["url"], data=data, headers={"X-Twilio-Signature": signature})
                try:
                    with urllib.request.urlopen(call, timeout=10) as response:
                        status, body = response.status, response.read().decode()
                except urllib.error.HTTPError as error:
                    status, body = error.code, error.read().decode()
                return self.answer(200, {"status": status, "body": body})
            prefix = f"/2010-04-01/Accounts/{sid}/"
            kind = "Messages" if self.path == prefix + "Messages.json" else "Calls" if self.path == prefix + "Calls.json" else None
            if kind is None:
                return self.answer(404, {"code": 20404, "message": "The requested resource was not found", "status": 404})
            if self.headers.get("Authorization") != expected_auth:
                return self.answer(401, {"code": 20003, "message": "Authenticate", "status": 401})
            fields = dict(urllib.parse.parse_qsl(raw, keep_blank_values=True))
            item = ("SM" if kind == "Messages" else "CA") + uuid.uuid4().hex
            with open(log, "a") as f:
                f.write(json.dumps({"kind": kind, "sid": item, "fields": fields}) + "\n")
            body = {"sid": item, "account_sid": sid, "to": fields.get("To"), "from": fields.get("From"), "status": "queued",
                    "api_version": "2010-04-01", "uri": f"{prefix}{kind}/{item}.json"}
            if kind == "Messages":
                body.update({"body": fields.get("Body"), "num_segments": "1", "direction": "outbound-api"})
            else:
                body.update({"direction": "outbound-api"})
            self.answer(201, body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Twilio)
    print("ready", flush=True)
    server.serve_forever()
    """#

    final class FakeTwilio: @unchecked Sendable {
        let port: Int
        let log: URL
        let process = ChildProcess()

        init(port: Int, log: URL) {
            self.port = port
            self.log = log
        }

        static func start(sid: String, token: String) async throws -> FakeTwilio {
            let work = FileManager.default.temporaryDirectory.appendingPathComponent("klaxon-twilio-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
            let fake = FakeTwilio(port: try await freePort(), log: work.appendingPathComponent("requests.jsonl"))
            let script = work.appendingPathComponent("fake_twilio.py")
            try TwilioTests.fake.write(to: script, atomically: true, encoding: .utf8)
            fake.process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            fake.process.arguments = ["python3", script.path, String(fake.port), sid, token, fake.log.path]
            let output = Pipe()
            fake.process.standardOutput = output
            fake.process.standardError = output
            try fake.process.run()
            let reader = output.fileHandleForReading
            let ready = try await offCooperativePool { () -> String in
                var text = ""
                while !text.contains("ready") {
                    let chunk = reader.readSomeRetrying() ?? Data()
                    if chunk.isEmpty { break }
                    text += String(decoding: chunk, as: UTF8.self)
                }
                return text
            }
            guard ready.contains("ready") else { throw TestPKI.CLIFailure("the fake Twilio did not start (pip install twilio): \(ready)") }
            return fake
        }

        struct Sent: Sendable {
            var kind: String
            var sid: String
            var fields: [String: String]
        }

        var requests: [Sent] {
            let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            return text.split(separator: "\n").compactMap { line in
                guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return nil }
                return Sent(kind: object["kind"] as? String ?? "", sid: object["sid"] as? String ?? "", fields: object["fields"] as? [String: String] ?? [:])
            }
        }

        func waitFor(_ count: Int, _ kind: String) async -> [Sent] {
            _ = await eventually(timeout: .seconds(15)) { self.requests.filter { $0.kind == kind }.count >= count }
            return requests.filter { $0.kind == kind }
        }

        /// Has the fake call Klaxon back at `url` with `params`, signed (or forged); Klaxon's answer.
        func callBack(_ url: String, _ params: [String: String], forge: Bool = false) async throws -> (status: Int, body: String) {
            var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/control/callback")
            request.method = .POST
            let json = try JSONSerialization.data(withJSONObject: ["url": url, "params": params, "forge": forge])
            request.body = .bytes(ByteBuffer(data: json))
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(20))
            let body = try await response.body.collect(upTo: 1 << 20)
            let object = try JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any] ?? [:]
            return (object["status"] as? Int ?? 0, object["body"] as? String ?? "")
        }

        /// SIGKILL: the test process ignores SIGTERM (service lifecycle's signal handling), and so
        /// do the children it starts.
        func stop() {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    /// Klaxon talking to `twilio`, Twilio calling back Assignment's HTTP listener on `assignmentHTTPPort`.
    static func configure(_ config: inout KlaxonConfig, twilio: FakeTwilio, assignmentHTTPPort port: Int) {
        config.assignmentHTTPListen = HostPort(host: "127.0.0.1", port: port)
        config.publicURL = "http://127.0.0.1:\(port)"
        config.linkSigningKey = OneTapLinkTests.key
        config.twilioBaseURL = "http://127.0.0.1:\(twilio.port)"
        config.twilioAccountSID = sid
        config.twilioAuthToken = token
        config.twilioFrom = "+15005550006"
        config.notifyPhoneGapSeconds = 0  // real time here: the next SMS seconds later is not held (PhoneThrottleTests covers that)
    }

    static let sid = "AC" + String(repeating: "0123456789abcdef", count: 2)
    static let token = "twilio-test-auth-token-0123456789"

    @Test func smsRepliesKeyPressesAndStatusCallbacks() async throws {
        let twilio = try await FakeTwilio.start(sid: Self.sid, token: Self.token)
        defer { twilio.stop() }
        let port = try await freePort()
        let pipeline = try await Pipeline { config, _ in Self.configure(&config, twilio: twilio, assignmentHTTPPort: port) }
        let service = try await pipeline.seed(users: ["Alice", "Bob"])
        let (alice, bob) = (service.userIDs[0], service.userIDs[1])
        try await pipeline.db.pool.withConnection { connection in
            try connection.query("UPDATE contact_methods SET type = 'sms', address = '+49 170 1111111', verified_at_ms = 0 WHERE user_id = $1", [alice])
            try connection.query("UPDATE contact_methods SET type = 'phone', address = '+49 170 2222222', verified_at_ms = 0 WHERE user_id = $1", [bob])
        }
        let ingest = pipeline.client(.ingest, token: nil)
        let first: EventResult = try await ingest.call(Ingest.SendEvent, Pipeline.trigger(service.routingKey, dedupKey: "one"))
        let number = try #require(try await pipeline.db.scalar("SELECT number FROM incidents WHERE id = $1", [Int64(first.incidentID)]))

        // The SMS: to Alice, from the configured number, the page in one segment with the reply code, then her link.
        let sms = try #require(await twilio.waitFor(1, "Messages").first)
        #expect(sms.fields["To"] == "+49 170 1111111" && sms.fields["From"] == "+15005550006")
        let body = try #require(sms.fields["Body"])
        let firstLine = String(body.split(separator: "\n")[0])
        #expect(firstLine.hasPrefix("[HIGH] #\(number) Checkout error rate 37%") && firstLine.hasSuffix("Reply 1a to ack, 1r to resolve"), "\(body)")
        #expect(firstLine.count <= 160, "the page does not fit one SMS segment: \(firstLine.count) characters")
        #expect(body.contains("http://127.0.0.1:\(port)/i/v1.\(alice)."), "no one-tap link: \(body)")
        let statusURL = try #require(sms.fields["StatusCallback"])
        #expect(statusURL.hasPrefix("http://127.0.0.1:\(port)/twilio/status?n="))

        // The call: to Bob, TwiML that reads the page and gathers one key back to Klaxon.
        let call = try #require(await twilio.waitFor(1, "Calls").first)
        #expect(call.fields["To"] == "+49 170 2222222")
        let twiml = try #require(call.fields["Twiml"])
        #expect(twiml.contains("<Gather numDigits=\"1\"") && twiml.contains("Press 1 to acknowledge, 2 to resolve, 3 to repeat"), "\(twiml)")
        #expect(twiml.contains("incident \(number): Checkout error rate 37%"))
        let gatherURL = "http://127.0.0.1:\(port)/twilio/voice?u=\(bob)&i=\(first.incidentID)"
        #expect(twiml.contains(gatherURL.replacingOccurrences(of: "&", with: "&amp;")), "\(twiml)")

        // Status callbacks go into the timeline.
        for status in ["sent", "delivered"] {
            let answer = try await twilio.callBack(statusURL, ["MessageSid": sms.sid, "MessageStatus": status, "AccountSid": Self.sid])
            #expect(answer.status == 200, "\(answer)")
        }
        let reported = try await pipeline.db.scalar(
            "SELECT count(*) FROM timeline_entries WHERE incident_id = $1 AND type = 'notify_provider_status'", [Int64(first.incidentID)])
        #expect(reported == 2)

        // A forged reply: 403, nothing done. Alice's genuine "1a": acknowledged as Alice.
        let smsURL = "http://127.0.0.1:\(port)/twilio/sms"
        let reply = ["From": "+491701111111", "To": "+15005550006", "Body": " 1A ", "MessageSid": "SM" + UUID().uuidString, "AccountSid": Self.sid]
        let forged = try await twilio.callBack(smsURL, reply, forge: true)
        #expect(forged.status == 403)
        #expect(try await OneTapLinkTests.acknowledgers(pipeline, first.incidentID).isEmpty, "a forged reply acted")
        let genuine = try await twilio.callBack(smsURL, reply)
        #expect(genuine.status == 200 && genuine.body.contains("<Message>Acknowledged #\(number) Checkout error rate 37%"), "\(genuine)")
        #expect(try await OneTapLinkTests.acknowledgers(pipeline, first.incidentID) == ["Alice"])
        let unknown = try await twilio.callBack(smsURL, ["From": "+491701111111", "Body": "9a"])
        #expect(unknown.body.contains("Code 9 names no open incident of yours"), "\(unknown)")

        // Bob presses 3 (repeat), then 2: resolved, as Bob.
        let repeated = try await twilio.callBack(gatherURL, ["CallSid": call.sid, "Digits": "3", "From": "+15005550006"])
        #expect(repeated.body.contains("<Gather") && repeated.body.contains("Checkout error rate 37%"))
        let resolved = try await twilio.callBack(gatherURL, ["CallSid": call.sid, "Digits": "2", "From": "+15005550006"])
        #expect(resolved.body.contains("resolved. Goodbye"), "\(resolved)")
        let state = try await pipeline.db.pool.withConnection { connection in
            try connection.query("SELECT status FROM incidents WHERE id = $1", [Int64(first.incidentID)]).string(0, "status")
        }
        #expect(state == "resolved")
        let resolver = try await pipeline.db.pool.withConnection { connection in
            try connection.query("SELECT actor FROM timeline_entries WHERE incident_id = $1 AND type = 'resolve'", [Int64(first.incidentID)]).string(0, "actor")
        }
        #expect(resolver == "user:\(bob)")

        // A second incident: code 1 is free again. Twilio reports the SMS undelivered: it is sent again.
        let second: EventResult = try await ingest.call(Ingest.SendEvent, Pipeline.trigger(service.routingKey, dedupKey: "two"))
        let texts = await twilio.waitFor(2, "Messages")
        let again = try #require(texts.last)
        #expect(again.fields["Body"]?.contains("Reply 1a to ack") == true, "\(again.fields)")
        let undelivered = try await twilio.callBack(
            try #require(again.fields["StatusCallback"]), ["MessageSid": again.sid, "MessageStatus": "undelivered", "ErrorCode": "30003"])
        #expect(undelivered.status == 200 && undelivered.body.hasPrefix("retry at"), "\(undelivered)")
        let retried = await twilio.waitFor(3, "Messages")
        #expect(retried.count == 3 && retried.last?.fields["StatusCallback"] == again.fields["StatusCallback"], "the undelivered SMS was not sent again")
        func timeline() async throws -> [String] {
            try await pipeline.db.pool.withConnection { connection in
                let rows = try connection.query(
                    "SELECT type FROM timeline_entries WHERE incident_id = $1 AND type LIKE 'notify_%' ORDER BY at_ms, id", [Int64(second.incidentID)])
                return (0..<rows.count).compactMap { rows.string($0, "type") }
            }
        }
        // The resend's outcome is recorded once Twilio answered it (just after the fake logged it).
        _ = try await eventually(timeout: .seconds(10)) { try await timeline().filter { $0 == "notify_sent" }.count >= 3 }
        let timeline = try await timeline()
        #expect(timeline.contains("notify_provider_status") && timeline.contains("notify_retry"), "\(timeline)")
        #expect(timeline.filter { $0 == "notify_sent" }.count >= 3, "\(timeline)")
        await ingest.close()
        await pipeline.shutdown()
    }
}
