import AsyncHTTPClient
import Foundation
import KlaxonTestSupport
import NIOCore
import Shared
import Testing

/// The PagerDuty Events API v2 endpoint, as a monitor (or a person with curl) would use it.
@Suite struct PagerDutyHTTPTests {
    struct Reply: @unchecked Sendable {
        var status: Int
        var json: [String: Any]
        var headers: [(String, String)]
    }

    static func post(_ port: Int, _ path: String = "/v2/enqueue", body: String) async throws -> Reply {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(string: body))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        let bytes = try await response.body.collect(upTo: 1 << 20)
        let json = (try? JSONSerialization.jsonObject(with: Data(bytes.readableBytesView))) as? [String: Any] ?? [:]
        return Reply(status: Int(response.status.code), json: json, headers: response.headers.map { ($0.name, $0.value) })
    }

    static func trigger(_ key: String, dedup: String? = nil, summary: String = "Disk full on db-1", severity: String = "critical") -> String {
        let dedupField = dedup.map { "\"dedup_key\": \"\($0)\"," } ?? ""
        return """
            {"routing_key": "\(key)", "event_action": "trigger", \(dedupField)
             "payload": {"summary": "\(summary)", "source": "db-1", "severity": "\(severity)",
                         "timestamp": "2015-07-17T08:42:58.315+0000", "component": "postgres",
                         "custom_details": {"disk": {"free": "0%", "mount": "/var"}, "attempts": 3}},
             "links": [{"href": "https://runbooks.example/disk", "text": "runbook"}],
             "client": "curl", "client_url": "https://monitoring.example"}
            """
    }

    @Test func triggerIsAcceptedWithPagerDutysReply() async throws {
        let pipeline = try await Pipeline(start: [.ingest])
        let service = try await pipeline.seed()
        let reply = try await Self.post(pipeline.ingestHTTPPort, body: Self.trigger(service.routingKey, dedup: "disk-db-1"))
        #expect(reply.status == 202)
        #expect(reply.json["status"] as? String == "success")
        #expect(reply.json["message"] as? String == "Event processed")
        #expect(reply.json["dedup_key"] as? String == "disk-db-1")
        // custom_details is stored as JSON, nesting and types kept.
        let free = try await pipeline.db.pool.withConnection { connection in
            try connection.query("SELECT details->'disk'->>'free' AS free, details->'attempts' AS attempts FROM incidents")
        }
        #expect(free.string(0, "free") == "0%")
        #expect(free.string(0, "attempts") == "3")
        // Without a dedup key one is generated and returned.
        let generated = try await Self.post(pipeline.ingestHTTPPort, body: Self.trigger(service.routingKey))
        #expect(generated.status == 202)
        #expect((generated.json["dedup_key"] as? String)?.isEmpty == false)
        await pipeline.shutdown()
    }

    /// A NUL in a summary (or deep in custom_details) is refused before any batch: 400 naming the
    /// field, nothing written, and the events sent alongside it are created as usual.
    @Test func nulCharactersAreRefusedBeforeTheBatch() async throws {
        let pipeline = try await Pipeline(start: [.ingest])
        let service = try await pipeline.seed()
        let badSummary = Self.trigger(service.routingKey, dedup: "nul-1", summary: "disk\\u0000full")
        let badDetails = """
            {"routing_key": "\(service.routingKey)", "event_action": "trigger", "dedup_key": "nul-2",
             "payload": {"summary": "s", "source": "db-1", "severity": "info", "custom_details": {"disk": {"mount": "/v\\u0000ar"}}}}
            """
        let replies = try await withThrowingTaskGroup(of: (String, Reply).self) { group in
            for index in 0..<39 {
                group.addTask { ("ok-\(index)", try await Self.post(pipeline.ingestHTTPPort, body: Self.trigger(service.routingKey, dedup: "ok-\(index)"))) }
            }
            group.addTask { ("nul-1", try await Self.post(pipeline.ingestHTTPPort, body: badSummary)) }
            group.addTask { ("nul-2", try await Self.post(pipeline.ingestHTTPPort, body: badDetails)) }
            var replies: [String: Reply] = [:]
            for try await (key, reply) in group { replies[key] = reply }
            return replies
        }
        #expect(replies["nul-1"]?.status == 400)
        #expect((replies["nul-1"]?.json["errors"] as? [String]) == ["payload.summary: contains a NUL character"])
        #expect(replies["nul-2"]?.status == 400)
        #expect((replies["nul-2"]?.json["errors"] as? [String]) == ["payload.custom_details.disk: contains a NUL character"])
        #expect(replies.filter { $0.key.hasPrefix("ok-") }.allSatisfy { $0.value.status == 202 })
        #expect(try await pipeline.db.scalar("SELECT count(*) FROM incidents") == 39)
        #expect(try await pipeline.db.scalar("SELECT count(*) FROM incidents WHERE dedup_key LIKE 'nul-%'") == 0)
        await pipeline.shutdown()
    }

    @Test func bothPathsShareOneSemantics() async throws {
        let pipeline = try await Pipeline(start: [.ingest])
        let service = try await pipeline.seed()
        let ingest = pipeline.client(.ingest)
        let binary: EventResult = try await ingest.call(
            Ingest.SendEvent, Pipeline.trigger(service.routingKey, dedupKey: "shared"))
        #expect(binary.outcome == .created)
        // The HTTP trigger joins the incident the binary trigger opened; /v2/events is an alias.
        #expect(try await Self.post(pipeline.ingestHTTPPort, "/v2/events", body: Self.trigger(service.routingKey, dedup: "shared")).status == 202)
        #expect(try await pipeline.db.scalar("SELECT count(*) FROM incidents") == 1)
        #expect(try await pipeline.db.scalar("SELECT count FROM alerts") == 2)
        let ack = try await Self.post(pipeline.ingestHTTPPort, body: """
            {"routing_key": "\(service.routingKey)", "event_action": "acknowledge", "dedup_key": "shared"}
            """)
        #expect(ack.status == 202)
        #expect(try await pipeline.db.scalar("SELECT count(*) FROM incidents WHERE status = 'acknowledged'") == 1)
        let resolve = try await Self.post(pipeline.ingestHTTPPort, body: """
            {"routing_key": "\(service.routingKey)", "event_action": "resolve", "dedup_key": "shared"}
            """)
        #expect(resolve.status == 202)
        #expect(resolve.json["dedup_key"] as? String == "shared")
        #expect(try await pipeline.db.scalar("SELECT count(*) FROM incidents WHERE status = 'resolved'") == 1)
        // Nothing open any more: accepted and ignored, as PagerDuty does.
        let ignored = try await Self.post(pipeline.ingestHTTPPort, body: """
            {"routing_key": "\(service.routingKey)", "event_action": "resolve", "dedup_key": "shared"}
            """)
        #expect(ignored.status == 202)
        await ingest.close()
        await pipeline.shutdown()
    }

    @Test func invalidEventsGet400WithErrors() async throws {
        let pipeline = try await Pipeline(start: [.ingest])
        let service = try await pipeline.seed()
        let port = pipeline.ingestHTTPPort
        func errors(_ body: String) async throws -> (Int, [String], String?) {
            let reply = try await Self.post(port, body: body)
            return (reply.status, reply.json["errors"] as? [String] ?? [], reply.json["status"] as? String)
        }
        let notJSON = try await errors("{not json")
        #expect(notJSON.0 == 400)
        #expect(notJSON.2 == "invalid event")
        #expect(notJSON.1 == ["event: body is not valid JSON: expected a member name in double quotes at byte 1"])
        let array = try await errors("[1, 2]")
        #expect(array.0 == 400 && array.1 == ["event: body is not a JSON object"])
        // What PagerDuty refuses, Klaxon refuses: a trailing comma (Foundation alone would take it).
        let trailing = try await errors(Self.trigger(service.routingKey).replacingOccurrences(of: "}}", with: "},}"))
        #expect(trailing.0 == 400 && trailing.2 == "invalid event", "\(trailing)")
        #expect(trailing.1.count == 1 && trailing.1[0].hasPrefix("event: body is not valid JSON: trailing comma in an object at byte "), "\(trailing.1)")
        let badSeverity = try await errors(Self.trigger(service.routingKey, severity: "apocalyptic"))
        #expect(badSeverity.0 == 400)
        #expect(badSeverity.1 == ["payload.severity: must be critical, error, warning or info, got \"apocalyptic\""])
        let shapeAndLimits = try await errors("""
            {"routing_key": "\(service.routingKey)", "event_action": "trigger", "payload": {"summary": "", "source": "db-1", "severity": "fatal"}}
            """)
        #expect(shapeAndLimits.1 == ["payload.severity: must be critical, error, warning or info, got \"fatal\"", "payload.summary: is required"])
        let manyBad = try await errors("""
            {"routing_key": "short", "event_action": "trigger", "payload": {"summary": "", "source": "x", "severity": "info"}}
            """)
        #expect(manyBad.0 == 400)
        #expect(manyBad.1 == ["routing_key: must be 32 characters, got 5", "payload.summary: is required"])
        let unknownKey = try await errors(Self.trigger(String(repeating: "z", count: 32)))
        #expect(unknownKey.0 == 400)
        #expect(unknownKey.1 == ["routing_key: unknown routing key"])
        let badAction = try await errors(#"{"routing_key": "\#(service.routingKey)", "event_action": "explode"}"#)
        #expect(badAction.0 == 400)
        #expect(badAction.1 == ["event_action: must be trigger, acknowledge or resolve, got \"explode\""])
        let huge = try await Self.post(port, body: Self.trigger(service.routingKey, summary: String(repeating: "x", count: 600_000)))
        #expect(huge.status == 400)
        #expect((huge.json["errors"] as? [String])?.first?.hasPrefix("event: is ") == true)
        #expect(try await pipeline.db.scalar("SELECT count(*) FROM incidents") == 0)
        await pipeline.shutdown()
    }

    @Test func rateLimitedEventsGet429() async throws {
        let pipeline = try await Pipeline(start: [.ingest])
        let service = try await pipeline.seed()
        try await pipeline.db.pool.withConnection { connection in
            try connection.query("UPDATE services SET events_per_minute = 1, events_burst = 2 WHERE id = $1", [service.serviceID])
        }
        #expect(try await Self.post(pipeline.ingestHTTPPort, body: Self.trigger(service.routingKey, dedup: "r")).status == 202)
        #expect(try await Self.post(pipeline.ingestHTTPPort, body: Self.trigger(service.routingKey, dedup: "r")).status == 202)
        let limited = try await Self.post(pipeline.ingestHTTPPort, body: Self.trigger(service.routingKey, dedup: "r"))
        #expect(limited.status == 429)
        #expect(limited.json["status"] as? String == "throttle event")
        let retryAfter = limited.headers.first { $0.0.lowercased() == "retry-after" }.flatMap { Int($0.1) }
        #expect((50...60).contains(retryAfter ?? 0))
        #expect(try await pipeline.db.scalar("SELECT count FROM alerts") == 2)
        await pipeline.shutdown()
    }

    @Test func healthEndpoints() async throws {
        let pipeline = try await Pipeline(start: [.ingest])
        for path in ["/healthz", "/readyz"] {
            let response = try await HTTPClient.shared.execute(
                HTTPClientRequest(url: "http://127.0.0.1:\(pipeline.ingestHTTPPort)\(path)"), timeout: .seconds(5))
            #expect(response.status.code == 200)
        }
        await pipeline.shutdown()
    }
}
