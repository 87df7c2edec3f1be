import AsyncHTTPClient
import Foundation
import KlaxonDomain
import KlaxonTestSupport
import NIOConcurrencyHelpers
import NIOCore
import NotifierService
import Shared
import Testing

/// A chat app calling Klaxon: slash commands and button clicks signed as Slack signs them
/// (v0: HMAC-SHA256 of `v0:<timestamp>:<body>` with the signing secret), built here.
struct ChatApp {
    let port: Int
    let secret: String

    struct Reply {
        var status: UInt
        var body: String
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any]) ?? [:] }
        var text: String { json["text"] as? String ?? "" }
        var inChannel: Bool { json["response_type"] as? String == "in_channel" }
    }

    static func encode(_ fields: [(String, String)]) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return fields.map { "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: allowed)!)" }.joined(separator: "&")
    }

    /// `/klaxon <text>` from chat user `user`.
    func command(
        _ text: String, user: String, email: String? = nil, timestamp: Int64? = nil, secret: String? = nil,
        responseURL: String = "https://hooks.slack.invalid/commands/1"
    ) async throws -> Reply {
        var fields = [("token", "legacy-ignored"), ("team_id", "T0001"), ("channel_id", "C0001"), ("user_id", user),
                      ("user_name", user.lowercased()), ("command", "/klaxon"), ("text", text),
                      ("response_url", responseURL)]
        if let email { fields.append(("user_email", email)) }
        return try await post(Self.encode(fields), timestamp: timestamp, secret: secret)
    }

    /// A click on a page's button.
    func click(_ actionID: String, incident: UInt64, user: String) async throws -> Reply {
        let payload: [String: Any] = [
            "type": "block_actions", "user": ["id": user, "username": user.lowercased()],
            "actions": [["action_id": actionID, "value": String(incident), "type": "button"]],
            "response_url": "https://hooks.slack.invalid/actions/1",
        ]
        let json = String(decoding: try JSONSerialization.data(withJSONObject: payload), as: UTF8.self)
        return try await post(Self.encode([("payload", json)]))
    }

    func post(_ body: String, timestamp: Int64? = nil, secret: String? = nil, signature: String? = nil) async throws -> Reply {
        let ts = String(timestamp ?? Int64(Date().timeIntervalSince1970))
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/chat/slack")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        request.headers.add(name: "X-Slack-Request-Timestamp", value: ts)
        request.headers.add(name: "X-Slack-Signature", value: signature ?? ChatSignature.sign(secret: secret ?? self.secret, timestamp: ts, body: Array(body.utf8)))
        request.body = .bytes(ByteBuffer(string: body))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        let bytes = try await response.body.collect(upTo: 1 << 20)
        return Reply(status: response.status.code, body: String(buffer: bytes))
    }
}

/// Issue 14, point 8: chat commands and page buttons, Slack-compatible, against the real
/// services, PostgreSQL and TCP.
@Suite struct ChatCommandTests {
    static let secret = "8f742231b10e8888abcd99yyyzzz85a5"

    @Test func signedCommandsRunAsTheMappedUserWithTheirRole() async throws {
        let pipeline = try await Pipeline { config, _ in config.chatSigningSecret = Self.secret }
        let sink = pipeline.sink
        let service = try await pipeline.db.pool.transaction { connection in
            try Seed.service(
                connection, name: "Checkout", routingKey: Seed.newRoutingKey(),
                users: ["Alice", "Bob", "Olga"].map { Seed.User(name: $0, email: "\($0.lowercased())@example.com", webhookURL: "\(sink.url)/\($0.lowercased())") })
        }
        let (alice, bob, olga) = (service.userIDs[0], service.userIDs[1], service.userIDs[2])
        try await pipeline.db.pool.withConnection { connection in
            try connection.query("UPDATE users SET chat_id = 'UALICE' WHERE id = $1", [alice])
            try connection.query("UPDATE users SET role = 'observer', chat_id = 'UOLGA' WHERE id = $1", [olga])
        }
        let chat = ChatApp(port: pipeline.assignmentHTTPPort, secret: Self.secret)
        let ingest = pipeline.client(.ingest, token: nil)
        let created: EventResult = try await ingest.call(Ingest.SendEvent, Pipeline.trigger(service.routingKey))
        let id = created.incidentID
        let db = pipeline.db
        let state = { try await db.pool.withConnection { try $0.query("SELECT status FROM incidents WHERE id = $1", [Int64(id)]).string(0, "status") } }
        let timelineCount = { try await db.scalar("SELECT count(*) FROM timeline_entries WHERE incident_id = \(id) AND type NOT LIKE 'notify%'") ?? 0 }

        // Refused before anything is read: a wrong secret, an old timestamp, no signature → 401, nothing done.
        // Once the trigger has been assigned and paged (all three have minute-zero rules).
        #expect(await sink.waitFor(timeout: .seconds(10)) { $0.compactMap(\.webhook).count >= 3 })
        let before = try await timelineCount()
        let forged = try await chat.command("ack \(id)", user: "UALICE", secret: "not-the-secret")
        #expect(forged.status == 401 && forged.body.contains("signature does not match"), "\(forged.body)")
        let old = try await chat.command("ack \(id)", user: "UALICE", timestamp: Int64(Date().timeIntervalSince1970) - 6 * 60)
        #expect(old.status == 401 && old.body.contains("at most 300 s"), "\(old.body)")
        let unsigned = try await chat.post(ChatApp.encode([("user_id", "UALICE"), ("text", "ack \(id)")]), signature: "")
        #expect(unsigned.status == 401 && unsigned.body.contains("X-Slack-Signature"))
        // A body altered after signing.
        let ts = String(Int64(Date().timeIntervalSince1970))
        let signed = ChatSignature.sign(secret: Self.secret, timestamp: ts, body: Array(ChatApp.encode([("user_id", "UALICE"), ("text", "who \(id)")]).utf8))
        let altered = try await chat.post(ChatApp.encode([("user_id", "UALICE"), ("text", "ack \(id)")]), timestamp: Int64(ts)!, signature: signed)
        #expect(altered.status == 401)
        // An unmapped chat user: told how to link, nothing done.
        let stranger = try await chat.command("ack \(id)", user: "USTRANGER")
        #expect(stranger.status == 200 && !stranger.inChannel && stranger.text.contains("not linked to a Klaxon user"), "\(stranger.body)")
        // An observer may look but not act.
        let observer = try await chat.command("ack \(id)", user: "UOLGA")
        #expect(observer.status == 200 && observer.text.contains("Refused (PERMISSION_DENIED)") && observer.text.contains("observer"), "\(observer.body)")
        #expect(try await state() == "triggered")
        #expect(try await timelineCount() == before, "a refused request wrote to the timeline")

        // Alice (mapped by chat id) acknowledges: recorded as her, replied in channel, within 3 s.
        let started = ContinuousClock.now
        let ack = try await chat.command("ack \(id)", user: "UALICE")
        let took = ContinuousClock.now - started
        #expect(ack.status == 200 && ack.inChannel && ack.text == "Alice acknowledged incident \(id).", "\(ack.body)")
        // The 3 s bound itself is the deadline's (aSlowCommandAnswersInTimeAndPostsItsResultLater);
        // here the figure is printed (22 ms alone), not asserted on two shared cores.
        #expect(took < .seconds(10), "the reply took \(took)")
        print("ChatCommandTests: a signed /klaxon ack answered in \(took)")
        #expect(try await state() == "acknowledged")
        let ackedBy = try await db.scalar("SELECT user_id FROM acknowledgements WHERE incident_id = \(id)")
        #expect(ackedBy == alice)
        // Bob has no chat id: mapped by the email the request carries (some Slack-compatible chats send it).
        let who = try await chat.command("who \(id)", user: "UBOB", email: "bob@example.com")
        #expect(who.status == 200 && who.text.contains("acknowledged"), "\(who.body)")

        // Declare it major, give roles, ask a responder, post an update — all from chat.
        let plan: ResponsePlan = try await pipeline.client(.assignment).call(Admin.CreateResponsePlan, ResponsePlan(
            name: "Checkout down", conferenceURL: "https://meet.example.com/checkout", message: "Checkout is down"))
        #expect(plan.id > 0)
        let declare = try await chat.command("declare \(id) Checkout down", user: "UALICE")
        #expect(declare.inChannel && declare.text.contains("declared incident \(id) major (P1) with the plan \"Checkout down\""), "\(declare.body)")
        let role = try await chat.command("role \(id) commander <@UALICE|alice>", user: "UALICE")
        #expect(role.inChannel && role.text.contains("Alice is now commander"), "\(role.body)")
        let badRole = try await chat.command("role \(id) captain @alice", user: "UALICE")
        #expect(!badRole.inChannel && badRole.text.contains("Refused (INVALID_ARGUMENT): role must be one of"), "\(badRole.body)")
        let ask = try await chat.command("responders \(id) add bob@example.com", user: "UALICE")
        #expect(ask.inChannel && ask.text.contains("asked Bob to join"), "\(ask.body)")
        // Bob's page is a responder request (his rule is minute zero).
        #expect(await sink.waitFor(timeout: .seconds(10)) { $0.compactMap(\.webhook).contains { $0.user.name == "Bob" && $0.reason == "responder_request" } })
        let status = try await chat.command("status \(id) Rolled back the deploy", user: "UALICE")
        #expect(status.inChannel && status.text.contains("Rolled back the deploy"))
        let response: IncidentResponse = try await pipeline.client(.assignment).call(Assignment.GetResponse, GetIncidentRequest(incidentID: id))
        #expect(response.roles.map { "\($0.role):\($0.userID)" } == ["commander:\(alice)"])
        #expect(response.updates.map(\.text) == ["Rolled back the deploy"] && response.updates.first?.author.contains("chat UALICE") == true)
        #expect(response.requests.first { $0.userID == UInt64(bob) }?.state == "pending")
        let whoNow = try await chat.command("who \(id)", user: "UOLGA")
        #expect(whoNow.text.contains("commander: Alice") && whoNow.text.contains("pending: Bob") && whoNow.text.contains("Bridge: https://meet.example.com/checkout"),
                "\(whoNow.text)")

        // The page's buttons: Bob joins by a click (mapped by chat id now), then Resolve.
        try await db.pool.withConnection { try $0.query("UPDATE users SET chat_id = 'UBOB' WHERE id = $1", [bob]) }
        let join = try await chat.click("klaxon_join", incident: id, user: "UBOB")
        #expect(join.status == 200 && join.text == "Bob joined incident \(id).", "\(join.body)")
        let resolve = try await chat.click("klaxon_resolve", incident: id, user: "UBOB")
        #expect(resolve.status == 200 && resolve.text == "Bob resolved incident \(id).", "\(resolve.body)")
        #expect(try await state() == "resolved")
        let unknown = try await chat.click("klaxon_reboot", incident: id, user: "UBOB")
        #expect(unknown.text.contains("Unknown button"))
        let help = try await chat.command("", user: "UBOB")
        #expect(help.text.contains("/klaxon ack 42"))
        let garbage = try await chat.post("payload=%7Bnot%20json")
        #expect(garbage.status == 400)
        // Slack's certificate check: 200, nothing done, even unsigned.
        let sslCheck = try await chat.post("ssl_check=1&token=legacy", signature: "")
        #expect(sslCheck.status == 200 && sslCheck.body.isEmpty)

        await ingest.close()
        await pipeline.shutdown()
    }

    /// Slack waits 3 s: a command held up (here by a lock on the incident, held until the reply
    /// has come) is answered "still working" at the 2 s deadline, and its result goes to the
    /// response_url once the lock is gone.
    @Test func aSlowCommandAnswersInTimeAndPostsItsResultLater() async throws {
        let clock = ManualClock()
        let pipeline = try await Pipeline(start: [.assignment, .ingest], clock: clock) { config, _ in config.chatSigningSecret = Self.secret }
        let sink = pipeline.sink
        let service = try await pipeline.seed(users: ["Alice"])
        try await pipeline.db.pool.withConnection { try $0.query("UPDATE users SET chat_id = 'UALICE' WHERE id = $1", [service.userIDs[0]]) }
        let ingest = pipeline.client(.ingest, token: nil)
        let created: EventResult = try await ingest.call(Ingest.SendEvent, Pipeline.trigger(service.routingKey))
        let id = Int64(created.incidentID)
        let db = pipeline.db
        // Every loop asleep before the lock is taken (the clock does not move until the deadline).
        await pipeline.settle()
        let asleep = clock.sleeperCount
        let locked = Latch<Int64>()
        // Holds the incident's row lock until cancelled below (pg_cancel_backend), at most 60 s.
        let holder = Task {
            try await db.pool.transaction { connection in
                try connection.query("SELECT 1 FROM incidents WHERE id = $1 FOR UPDATE", [id])
                locked.resolve(.success(try connection.query("SELECT pg_backend_pid() AS pid").int64(0, "pid")!))
                try connection.query("SELECT pg_sleep(60)")
            }
        }
        let holderPID = try await locked.wait()
        let chat = ChatApp(port: pipeline.assignmentHTTPPort, secret: Self.secret)
        let answered = NIOLockedValueBox(false)
        let pending = Task {
            let reply = try await chat.command(
                "ack \(id)", user: "UALICE", timestamp: clock.nowMs() / 1000, responseURL: "\(sink.url)/slack-response")
            answered.withLockedValue { $0 = true }
            return reply
        }
        // The command waits for its lock, its 2 s deadline sleeps on the clock: no answer yet.
        #expect(await clock.waitForSleepers(asleep + 1), "the reply deadline never started")
        #expect(!answered.withLockedValue { $0 }, "answered before the deadline")
        // Two seconds on the clock (the loops that wake may wait for the held lock: not awaited).
        clock.advance(byMs: 2_000)
        let reply = try await pending.value
        #expect(reply.status == 200 && !reply.inChannel && reply.text.contains("still working"), "\(reply.body)")
        #expect(try await db.pool.withConnection { try $0.query("SELECT status FROM incidents WHERE id = $1", [id]).string(0, "status") } == "triggered",
                "answered while the command still waits for its lock")
        try await db.pool.withConnection { try $0.query("SELECT pg_cancel_backend($1::int)", [holderPID]) }
        _ = try? await holder.value
        #expect(await sink.waitFor(timeout: .seconds(20)) { $0.contains { $0.uri == "/slack-response" } })
        let late = try #require(sink.requests.first { $0.uri == "/slack-response" })
        let json = try #require(try JSONSerialization.jsonObject(with: Data(late.body)) as? [String: Any])
        #expect(json["response_type"] as? String == "in_channel" && json["text"] as? String == "Alice acknowledged incident \(id).")
        #expect(try await db.pool.withConnection { try $0.query("SELECT status FROM incidents WHERE id = $1", [id]).string(0, "status") } == "acknowledged")
        await ingest.close()
        await pipeline.shutdown()
    }

    @Test func endpointIsOffWithoutASecret() async throws {
        let pipeline = try await Pipeline(start: [.assignment])
        let chat = ChatApp(port: pipeline.assignmentHTTPPort, secret: "anything")
        let reply = try await chat.command("ack 1", user: "U1")
        #expect(reply.status == 404 && reply.body.contains("KLAXON_CHAT_SIGNING_SECRET"))
        await pipeline.shutdown()
    }

    @Test func slackPagesCarryButtonsAndChannelPostsDoNot() throws {
        let snapshot = IncidentSnapshot(
            incidentID: 42, number: 7, title: "Checkout down", status: .triggered, urgency: .high, serviceID: 1, serviceName: "Checkout",
            severity: "critical", dedupKey: "k", createdAtMs: 0, atMs: 0,
            details: ["response.conference_url": "https://meet.example.com/x", "response.status_update": "Mitigated"])
        let page = WebhookMessage(
            notificationID: "n", reason: .responderRequest, isSnapshot: true, incident: snapshot, user: .init(id: 3, name: "Bob", email: "b@x.io"),
            rule: .init(id: 1, startDelaySeconds: 0), sentAt: 0)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(SlackChannel.body(page))) as? [String: Any])
        let blocks = try #require(json["blocks"] as? [[String: Any]])
        let buttons = try #require(blocks.last?["elements"] as? [[String: Any]])
        #expect(buttons.map { $0["action_id"] as? String } == ["klaxon_join", "klaxon_decline", "klaxon_ack", "klaxon_resolve"])
        #expect(buttons.allSatisfy { $0["value"] as? String == "42" })
        #expect((json["text"] as? String)?.contains("You are asked to join") == true && (json["text"] as? String)?.contains("Bridge: https://meet.example.com/x") == true)
        let post = WebhookMessage(
            notificationID: "p", reason: .statusUpdate, isSnapshot: true, incident: snapshot, user: .init(id: 0, name: "", email: ""),
            rule: .init(id: 0, startDelaySeconds: 0), sentAt: 0)
        let channel = try #require(try JSONSerialization.jsonObject(with: Data(SlackChannel.body(post))) as? [String: Any])
        #expect(channel["blocks"] == nil)
        #expect(channel["text"] as? String == "[HIGH] #7 Checkout down — service Checkout, status triggered. Status update: Mitigated. Bridge: https://meet.example.com/x")
    }

    @Test func signatureIsSlacksV0() {
        // Slack's documented example (api.slack.com/authentication/verifying-requests-from-slack).
        let body = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
        let signature = ChatSignature.sign(secret: "8f742231b10e8888abcd99yyyzzz85a5", timestamp: "1531420618", body: Array(body.utf8))
        #expect(signature == "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503")
        let now: Int64 = 1_531_420_618_000
        #expect(ChatSignature.check(secret: "8f742231b10e8888abcd99yyyzzz85a5", timestamp: "1531420618", signature: signature, body: Array(body.utf8), nowMs: now) == nil)
        #expect(ChatSignature.check(secret: "8f742231b10e8888abcd99yyyzzz85a5", timestamp: "1531420618", signature: signature, body: Array(body.utf8),
                                    nowMs: now + 301_000) == .stale(ageSeconds: 301))
        #expect(ChatSignature.check(secret: "other", timestamp: "1531420618", signature: signature, body: Array(body.utf8), nowMs: now) == .mismatch)
    }
}
