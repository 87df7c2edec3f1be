import Foundation
import KlaxonDomain
import KlaxonTestSupport
import Shared
import Testing

/// Outbound webhooks (issue 28, point 5): PagerDuty v3-shaped events, each signature checked by
/// its own side's code — the `standardwebhooks` package (PyPI) for Standard Webhooks, PagerDuty's
/// documented HMAC recomputed for `X-PagerDuty-Signature`.
@Suite struct WebhookTests {
    static let secret = "chat-signing-secret"

    static func events(_ requests: [HTTPSink.Request]) -> [[String: Any]] {
        requests.compactMap { ((try? JSONSerialization.jsonObject(with: Data($0.body))) as? [String: Any])?["event"] as? [String: Any] }
    }

    @Test func signedEventsInOrderAndAnAckByChatNamesItsUser() async throws {
        let pipeline = try await Pipeline { config, _ in config.chatSigningSecret = Self.secret }
        let service = try await pipeline.seed(users: ["Alice"])
        let alice = service.userIDs[0]
        try await pipeline.db.pool.withConnection { connection in
            try connection.query("UPDATE users SET chat_id = 'UALICE' WHERE id = $1", [alice])
        }
        let cli = try KlaxonCLI(address: "127.0.0.1:\(pipeline.config.assignmentListen.port)", token: pipeline.adminToken)
        let created = try await cli("webhook", "create", "--url", "\(pipeline.sink.url)/events", "--header", "X-Team=payments")
        #expect(created.status == 0, "\(created.err)")
        let secret = try #require(created.lines.first { $0.hasPrefix("secret whsec_") }?.split(separator: " ")[1]).description
        let refused = try await cli("webhook", "create", "--url", "http://169.254.169.254/latest", "--event", "incident.exploded")
        #expect(refused.status == 3 && refused.err.contains("url:") && refused.err.contains("event_types[0]"), "\(refused.err)")

        let ingest = pipeline.client(.ingest)
        let incident: EventResult = try await ingest.call(Ingest.SendEvent, Pipeline.trigger(service.routingKey, dedupKey: "hooked"))
        _ = await pipeline.sink.waitForRequests(1, timeout: .seconds(10))  // Alice's page
        let chat = ChatApp(port: pipeline.assignmentHTTPPort, secret: Self.secret)
        #expect(try await chat.command("ack \(incident.incidentID)", user: "UALICE").status == 200)
        let admin = pipeline.client(.assignment)
        let _: IncidentView = try await admin.call(Assignment.AddNote, IncidentActionRequest(incidentID: incident.incidentID, userID: UInt64(alice), text: "rolling back"))
        let _: IncidentInfo = try await admin.call(Assignment.SetPriority, SetPriorityRequest(incidentID: incident.incidentID, priority: "P1"))
        let _: EventResult = try await ingest.call(Ingest.SendEvent, Event(routingKey: service.routingKey, eventAction: .resolve, dedupKey: "hooked"))
        let delivered = await eventually(timeout: .seconds(15)) { pipeline.sink.requests.filter { $0.uri == "/events" }.count >= 5 }
        let state = try await pipeline.db.pool.withConnection { connection in
            let rows = try connection.query("SELECT event_type, status, attempts, last_error FROM webhook_deliveries ORDER BY id")
            return (0..<rows.count).map { "\(rows.string($0, "event_type")!) \(rows.string($0, "status")!) \(rows.string($0, "attempts")!) \(rows.string($0, "last_error")!)" }
        }
        #expect(delivered, "\(state)")
        let requests = pipeline.sink.requests.filter { $0.uri == "/events" }
        let events = Self.events(requests)
        #expect(events.map { $0["event_type"] as? String ?? "" } == ["incident.triggered", "incident.acknowledged", "incident.annotated", "incident.priority_updated", "incident.resolved"])
        #expect(events.allSatisfy { $0["resource_type"] as? String == "incident" && ($0["data"] as? [String: Any])?["id"] as? String == String(incident.incidentID) })
        let ackAgent = events.first { $0["event_type"] as? String == "incident.acknowledged" }?["agent"] as? [String: Any]
        #expect(ackAgent?["type"] as? String == "user_reference" && ackAgent?["id"] as? String == String(alice), "\(String(describing: ackAgent))")
        #expect((events[2]["data"] as? [String: Any])?["note"] as? String == "rolling back")
        #expect(requests.allSatisfy { $0.header("X-Team") == "payments" && $0.header("webhook-id") == (Self.events([$0]).first?["id"] as? String) })

        // Both signatures, each checked by its own side's code.
        let folder = cli.folder.appendingPathComponent("deliveries")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for (index, request) in requests.enumerated() {
            try Data(request.body).write(to: folder.appendingPathComponent("\(index).body"))
            let headers = ["webhook-id", "webhook-timestamp", "webhook-signature", "x-pagerduty-signature"].reduce(into: [String: String]()) {
                $0[$1] = request.header($1) ?? ""
            }
            try JSONSerialization.data(withJSONObject: headers).write(to: folder.appendingPathComponent("\(index).headers"))
        }
        let verify = """
            import glob, hashlib, hmac, json, sys
            from standardwebhooks.webhooks import Webhook
            folder, secret = sys.argv[1], sys.argv[2]
            hook = Webhook(secret)
            for path in sorted(glob.glob(folder + "/*.body")):
                body = open(path, "rb").read()
                headers = json.load(open(path[:-5] + ".headers"))
                hook.verify(body, headers)  # raises on a bad signature
                expected = "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
                assert hmac.compare_digest(headers["x-pagerduty-signature"], expected), path
                print("verified", path.rsplit("/", 1)[1])
            """
        let run = try await offCooperativePool { try ThirdPartyClientTests.runBlocking("python3", ["-c", verify, folder.path, secret]) }
        #expect(run.status == 0 && run.output.components(separatedBy: "verified").count == 6, "\(run.output)")
        let log = try await cli("webhook", "deliveries", "1")
        #expect(log.lines.filter { $0.contains("delivered") }.count == 5, "\(log.out)")
        await ingest.close()
        await admin.close()
        await pipeline.shutdown()
    }

    /// A receiver down for 5 minutes on the manual clock gets every event afterwards, in order per
    /// incident; a 4xx drops a delivery, and 3 in a row disable the subscription.
    @Test func aReceiverDownFiveMinutesGetsEverythingInOrderAfterwards() async throws {
        let clock = ManualClock()
        let pipeline = try await Pipeline(clock: clock)
        let service = try await pipeline.seed(users: ["Alice"])
        let receiver = try await HTTPSink.start()
        let admin = pipeline.client(.assignment)
        // Alice owns it: told if it is disabled.
        let _: WebhookSubscription = try await admin.call(
            Admin.CreateWebhook, WebhookSubscription(url: "\(receiver.url)/hooks", ownerUserID: UInt64(service.userIDs[0])))
        receiver.failFor(.seconds(3600), status: 503)
        let ingest = pipeline.client(.ingest)
        let first: EventResult = try await ingest.call(Ingest.SendEvent, Pipeline.trigger(service.routingKey, dedupKey: "one"))
        let second: EventResult = try await ingest.call(Ingest.SendEvent, Pipeline.trigger(service.routingKey, dedupKey: "two"))
        await pipeline.settle()
        let alice = UInt64(service.userIDs[0])
        let _: IncidentView = try await admin.call(Assignment.Acknowledge, IncidentActionRequest(incidentID: first.incidentID, userID: alice))
        let _: IncidentView = try await admin.call(Assignment.AddNote, IncidentActionRequest(incidentID: first.incidentID, userID: alice, text: "looking"))
        let _: EventResult = try await ingest.call(Ingest.SendEvent, Event(routingKey: service.routingKey, eventAction: .resolve, dedupKey: "two"))
        // Five minutes of 503s: retried with backoff, only each incident's oldest event tried.
        let down = clock.nowMs()
        while clock.nowMs() - down < 300_000 { await pipeline.letTimePass(10_000) }
        let tried = Self.events(receiver.requests)
        #expect(!tried.isEmpty && tried.allSatisfy { $0["event_type"] as? String == "incident.triggered" }, "\(tried.map { $0["event_type"] ?? "" })")
        receiver.failFor(.zero)
        let before = receiver.requests.count
        let done = await pipeline.runClock(until: { Self.events(Array(receiver.requests.dropFirst(before))).count >= 5 })
        #expect(done)
        let after = Self.events(Array(receiver.requests.dropFirst(before)))
        func types(_ incident: UInt64) -> [String] {
            after.filter { ($0["data"] as? [String: Any])?["id"] as? String == String(incident) }.map { $0["event_type"] as? String ?? "" }
        }
        #expect(types(first.incidentID) == ["incident.triggered", "incident.acknowledged", "incident.annotated"])
        #expect(types(second.incidentID) == ["incident.triggered", "incident.resolved"])
        #expect(try await pipeline.db.scalar("SELECT count(*) FROM webhook_deliveries WHERE status = 'delivered'") == 5)

        // A receiver answering 410: each delivery is dropped; after 3 in a row the subscription is disabled.
        receiver.respond([410, 410, 410])
        for key in ["a", "b", "c"] {
            let _: EventResult = try await ingest.call(Ingest.SendEvent, Pipeline.trigger(service.routingKey, dedupKey: "gone-\(key)"))
        }
        let disabled = try await pipeline.runClock(until: {
            try await pipeline.db.scalar("SELECT count(*) FROM webhook_subscriptions WHERE NOT enabled") == 1
        })
        #expect(disabled)
        let list: WebhookList = try await admin.call(Admin.ListWebhooks, Empty())
        #expect(list.webhooks.first?.disabledReason.hasPrefix("disabled after 3 deliveries in a row were dropped") == true, "\(list)")
        // Its owner is told, on her contact method (a webhook to the pipeline's sink), through Notifier's notices.
        let told = await pipeline.runClock(until: {
            pipeline.sink.requests.contains { String(decoding: $0.body, as: UTF8.self).contains("Klaxon disabled webhook subscription 1") }
        })
        #expect(told, "\(pipeline.sink.requests.map { String(decoding: $0.body, as: UTF8.self).prefix(200) })")
        #expect(try await pipeline.db.scalar("SELECT count(*) FROM contact_notices WHERE kind = 'notice' AND status = 'sent'") == 1)
        await receiver.shutdown()
        await ingest.close()
        await admin.close()
        await pipeline.shutdown()
    }

    /// Subscriptions from YAML (the secret printed once, kept on re-apply, never exported), and the
    /// response wing's and heartbeats' events: major declared, responder added and replied, a
    /// status update, a heartbeat expired and restored, a maintenance window started and ended.
    @Test func yamlSubscriptionsAndTheResponseAndHeartbeatEvents() async throws {
        let pipeline = try await Pipeline()
        let service = try await pipeline.seed(users: ["Alice", "Bob"])
        let (alice, bob) = (UInt64(service.userIDs[0]), UInt64(service.userIDs[1]))
        let cli = try KlaxonCLI(address: "127.0.0.1:\(pipeline.config.assignmentListen.port)", token: pipeline.adminToken)
        let events = [
            "incident.major_declared", "incident.responder.added", "incident.responder.replied", "incident.status_update_published",
            "heartbeat.expired", "heartbeat.restored", "maintenance_window.started", "maintenance_window.ended",
        ]
        let hookURL = "\(pipeline.sink.url)/events"
        let heartbeatID = "nightly-backup-0123456789"
        let document = """
            heartbeats:
            - name: nightly-backup
              service: Checkout
              id: \(heartbeatID)
              period_seconds: 86400
            webhooks:
            - url: \(hookURL)
              description: the ops bot
              events: [\(events.joined(separator: ", "))]
              services: [Checkout]
              headers: {X-Team: ops}

            """
        let file = try cli.write("hooks.yaml", document)
        // Bad entries are named by path, nothing applied.
        let badFile = try cli.write("bad.yaml", "webhooks:\n- url: http://169.254.169.254/latest\n  events: [incident.exploded]\n")
        let bad = try await cli("apply", "-f", badFile)
        #expect(bad.status == 3 && bad.err.contains("webhooks[0].url") && bad.err.contains("webhooks[0].events[0]"), "\(bad.err)")
        let applied = try await cli("apply", "-f", file)
        #expect(applied.status == 0, "\(applied.err)")
        let line = try #require(applied.lines.first { $0.hasPrefix("+ webhook \(hookURL)") }, "\(applied.out)")
        let secret = try #require(line.split(separator: " ").first { $0.hasPrefix("whsec_") }.map { String($0.trimmingCharacters(in: .punctuationCharacters.subtracting(CharacterSet(charactersIn: "=+/")))) })
        #expect(secret.hasSuffix("=") || secret.count > 30, "\(line)")
        let stored = try await pipeline.db.pool.withConnection { try $0.query("SELECT secret FROM webhook_subscriptions").string(0, "secret") }
        #expect(line.contains("secret \(stored ?? "?"), shown this once"), "\(line)")

        let ingest = pipeline.client(.ingest)
        let admin = pipeline.client(.assignment)
        let incident: EventResult = try await ingest.call(Ingest.SendEvent, Pipeline.trigger(service.routingKey, dedupKey: "all-regions"))
        let _: IncidentInfo = try await admin.call(Assignment.DeclareMajor, DeclareMajorRequest(incidentID: incident.incidentID))
        let _: IncidentResponse = try await admin.call(
            Assignment.RequestResponders, RequestRespondersRequest(incidentID: incident.incidentID, userIDs: [bob], message: "join the bridge"))
        let _: IncidentResponse = try await admin.call(Assignment.AnswerResponderRequest, ResponderAnswer(incidentID: incident.incidentID, userID: bob, join: true))
        let _: IncidentResponse = try await admin.call(
            Assignment.PostStatusUpdate, PostStatusUpdateRequest(incidentID: incident.incidentID, text: "Failing over to us-west"))
        let base = "/heartbeat/\(heartbeatID)"
        #expect(try await HeartbeatTests.ping(pipeline.ingestHTTPPort, base + "/fail", body: "backup failed").status == 200)
        #expect(try await HeartbeatTests.ping(pipeline.ingestHTTPPort, base).status == 200)

        let arrived = await eventually(timeout: .seconds(15)) { Self.events(pipeline.sink.requests.filter { $0.uri == "/events" }).count >= 6 }
        let requests = pipeline.sink.requests.filter { $0.uri == "/events" }
        let received = Self.events(requests)
        #expect(arrived, "\(received.map { $0["event_type"] ?? "" })")
        // In order per incident: the major incident's four, then the heartbeat's two.
        let major = received.filter { ($0["data"] as? [String: Any])?["id"] as? String == String(incident.incidentID) }
        #expect(major.map { $0["event_type"] as? String ?? "" } == Array(events.prefix(4)))
        #expect(received.filter { ($0["event_type"] as? String ?? "").hasPrefix("heartbeat.") }.map { $0["event_type"] as? String ?? "" } == ["heartbeat.expired", "heartbeat.restored"])
        let added = major.first { $0["event_type"] as? String == "incident.responder.added" }?["data"] as? [String: Any]
        #expect((added?["responder"] as? [String: Any])?["id"] as? String == String(bob) && added?["message"] as? String == "join the bridge", "\(String(describing: added))")
        let replied = major.first { $0["event_type"] as? String == "incident.responder.replied" }
        #expect((replied?["data"] as? [String: Any])?["response"] as? String == "joined")
        #expect((replied?["agent"] as? [String: Any])?["id"] as? String == String(bob), "\(String(describing: replied))")
        let update = (major.first { $0["event_type"] as? String == "incident.status_update_published" }?["data"] as? [String: Any])?["status_update"] as? [String: Any]
        #expect(update?["message"] as? String == "Failing over to us-west")
        let expired = received.first { $0["event_type"] as? String == "heartbeat.expired" }?["data"] as? [String: Any]
        #expect((expired?["heartbeat"] as? [String: Any])?["name"] as? String == "nightly-backup" && expired?["incident_key"] as? String == "heartbeat:\(heartbeatID)",
                "\(String(describing: expired))")
        #expect(received.allSatisfy { ($0["data"] as? [String: Any])?["status"] != nil })
        // Signed with the secret apply printed; the custom header sent.
        #expect(requests.allSatisfy { $0.header("X-Team") == "ops" })
        let folder = cli.folder.appendingPathComponent("signed")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for (index, request) in requests.enumerated() {
            try Data(request.body).write(to: folder.appendingPathComponent("\(index).body"))
            try Data((request.header("X-PagerDuty-Signature") ?? "").utf8).write(to: folder.appendingPathComponent("\(index).sig"))
        }
        let check = """
            import glob, hashlib, hmac, sys
            for path in sorted(glob.glob(sys.argv[1] + "/*.body")):
                expected = "v1=" + hmac.new(sys.argv[2].encode(), open(path, "rb").read(), hashlib.sha256).hexdigest()
                assert hmac.compare_digest(open(path[:-5] + ".sig").read(), expected), path
                print("verified")
            """
        let run = try await offCooperativePool { try ThirdPartyClientTests.runBlocking("python3", ["-c", check, folder.path, secret]) }
        #expect(run.status == 0 && run.output.components(separatedBy: "verified").count == requests.count + 1, "\(run.output)")
        _ = alice

        // A maintenance window started now and ended early: told within the timer loop's 5 s poll.
        let started = try await cli("maintenance", "start", "--service", "Checkout", "--for", "2h")
        #expect(started.status == 0, "\(started.err)")
        let windowID = try #require(try await pipeline.db.scalar("SELECT max(id) FROM maintenance_windows"))
        let told = await eventually(timeout: .seconds(15)) {
            Self.events(pipeline.sink.requests.filter { $0.uri == "/events" }).contains { $0["event_type"] as? String == "maintenance_window.started" }
        }
        #expect(told)
        #expect(try await cli("maintenance", "end", "\(windowID)").status == 0)
        let ended = await eventually(timeout: .seconds(15)) {
            Self.events(pipeline.sink.requests.filter { $0.uri == "/events" }).contains { $0["event_type"] as? String == "maintenance_window.ended" }
        }
        #expect(ended)
        let windowEvents = Self.events(pipeline.sink.requests.filter { $0.uri == "/events" }).filter { ($0["event_type"] as? String ?? "").hasPrefix("maintenance_window.") }
        #expect(windowEvents.map { $0["event_type"] as? String ?? "" } == ["maintenance_window.started", "maintenance_window.ended"])
        let window = windowEvents.first?["data"] as? [String: Any]
        #expect(window?["id"] as? String == String(windowID) && (window?["services"] as? [[String: Any]])?.first?["id"] as? String == String(service.serviceID),
                "\(String(describing: window))")
        #expect(windowEvents.first?["resource_type"] as? String == "maintenance_window")

        // Export: the subscription without its secret; applying the export changes nothing, and
        // the secret stays the one first made.
        let exported = try await cli("export")
        #expect(exported.out.contains("webhooks:") && exported.out.contains(hookURL) && exported.out.contains("X-Team: ops") && !exported.out.contains("whsec_"), "\(exported.out)")
        let exportFile = try cli.write("export.yaml", exported.out)
        let again = try await cli("apply", "-f", exportFile)
        #expect(again.out.hasPrefix("no changes"), "\(again.out)\(again.err)")
        #expect(try await pipeline.db.pool.withConnection { try $0.query("SELECT secret FROM webhook_subscriptions").string(0, "secret") } == stored)
        await pipeline.shutdown()
    }


    /// Retried for up to 48 h from the event, then dropped: a delivery 47 h 58 min old that fails
    /// is tried again; once past 48 h, its next failure drops it, saying why (manual clock; the
    /// event's age is set in the database rather than waited for).
    @Test func aDeliveryFailingFor48HoursIsDropped() async throws {
        let clock = ManualClock()
        let pipeline = try await Pipeline(clock: clock)
        let service = try await pipeline.seed(users: ["Alice"])
        let receiver = try await HTTPSink.start()
        let admin = pipeline.client(.assignment)
        let _: WebhookSubscription = try await admin.call(Admin.CreateWebhook, WebhookSubscription(url: "\(receiver.url)/hooks"))
        receiver.failFor(.seconds(3600), status: 503)
        let ingest = pipeline.client(.ingest)
        let _: EventResult = try await ingest.call(Ingest.SendEvent, Pipeline.trigger(service.routingKey, dedupKey: "long-outage"))
        let tried = await pipeline.runClock(until: { receiver.requests.count >= 1 })
        #expect(tried)
        // 47 h 58 min old: still retried (two minutes before the 48 h are up).
        try await pipeline.db.pool.withConnection { connection in
            try connection.query("UPDATE webhook_deliveries SET created_at_ms = $1", [clock.nowMs() - 48 * 3_600_000 + 120_000])
        }
        let attempts = receiver.requests.count
        let again = await pipeline.runClock(until: { receiver.requests.count > attempts })
        #expect(again)
        #expect(try await pipeline.db.scalar("SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'") == 1)
        // Past 48 h: the next failure drops it, saying why.
        let dropped = await pipeline.runClock(until: {
            (try? await pipeline.db.scalar("SELECT count(*) FROM webhook_deliveries WHERE status = 'dropped'")) == 1
        })
        #expect(dropped)
        let why = try await pipeline.db.pool.withConnection { try $0.query("SELECT last_error FROM webhook_deliveries").string(0, "last_error") }
        #expect(why?.hasPrefix("gave up after 48 h") == true, "\(why ?? "")")
        #expect(try await pipeline.db.scalar("SELECT consecutive_drops FROM webhook_subscriptions") == 1)
        await receiver.shutdown()
        await ingest.close()
        await admin.close()
        await pipeline.shutdown()
    }

}
