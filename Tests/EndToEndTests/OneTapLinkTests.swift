import AsyncHTTPClient
import Foundation
import KlaxonDomain
import KlaxonTestSupport
import NIOCore
import NIOHTTP1
import NotifierService
import Shared
import Testing

/// One-tap links (issue 25, point 2): every page carries the person's own link to a small
/// incident page on Assignment's HTTP listener; its buttons act as that person on that incident
/// only, through the same entrance and access checks as the API; tampered and expired links do
/// nothing. Over real HTTP here; in a real browser in `IncidentPageBrowserTests`.
@Suite struct OneTapLinkTests {
    static let key = "one-tap-test-key-0123456789abcdef0123"

    static func pipeline() async throws -> Pipeline {
        let port = try await freePort()
        return try await Pipeline { config, _ in
            config.assignmentHTTPListen = HostPort(host: "127.0.0.1", port: port)
            config.publicURL = "http://127.0.0.1:\(port)"
            config.linkSigningKey = key
        }
    }

    /// The page each user got for `incident`, by user name.
    static func links(_ pipeline: Pipeline, incident: UInt64, users: Int) async -> [String: WebhookMessage] {
        let pages = await pipeline.sink.waitForRequests(users, timeout: .seconds(10))
        var byUser: [String: WebhookMessage] = [:]
        for page in pages { if let message = page.webhook, message.incident.id == incident { byUser[message.user.name] = message } }
        return byUser
    }

    struct Reply {
        var status: Int
        var body: String
        var headers: HTTPHeaders
    }

    /// A browser-like client that shows redirects instead of following them.
    static let noRedirects = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(redirectConfiguration: .disallow))

    static func request(_ url: String, method: HTTPMethod = .GET, form: String? = nil, cookie: String? = nil) async throws -> Reply {
        var request = HTTPClientRequest(url: url)
        request.method = method
        if let form {
            request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
            request.body = .bytes(ByteBuffer(string: form))
        }
        if let cookie { request.headers.add(name: "Cookie", value: cookie) }
        let response = try await noRedirects.execute(request, timeout: .seconds(10))
        return Reply(status: Int(response.status.code), body: String(buffer: try await response.body.collect(upTo: 1 << 20)), headers: response.headers)
    }

    static func acknowledgers(_ pipeline: Pipeline, _ incident: UInt64) async throws -> [String] {
        try await pipeline.db.pool.withConnection { connection in
            let rows = try connection.query(
                "SELECT u.name FROM acknowledgements a JOIN users u ON u.id = a.user_id WHERE a.incident_id = $1 ORDER BY u.name",
                [Int64(incident)])
            return (0..<rows.count).compactMap { rows.string($0, "name") }
        }
    }

    @Test func aPagesLinkOpensTheIncidentAndActsAsThatPersonOnly() async throws {
        let pipeline = try await Self.pipeline()
        let service = try await pipeline.seed(users: ["Alice", "Bob"])
        let ingest = pipeline.client(.ingest, token: nil)
        let created: EventResult = try await ingest.call(Ingest.SendEvent, Pipeline.trigger(service.routingKey))
        let pages = await Self.links(pipeline, incident: created.incidentID, users: 2)
        let alice = try #require(pages["Alice"]), bob = try #require(pages["Bob"])
        let link = try #require(alice.incident.htmlURL)
        #expect(link.hasPrefix(pipeline.config.publicURL + "/i/v1.\(alice.user.id).\(created.incidentID)."), "\(link)")
        #expect(alice.incident.ackURL == link + "/ack")
        #expect(bob.incident.htmlURL != link, "two people got the same link")

        // The page: the incident, who is assigned, the buttons, and a CSRF cookie.
        let page = try await Self.request(link)
        #expect(page.status == 200)
        #expect(page.body.contains("Checkout error rate 37%") && page.body.contains("Acknowledge") && page.body.contains("Resolve"))
        #expect(page.body.contains("Alice") && page.body.contains("Bob") && page.body.contains("for Alice"))
        #expect(page.body.contains("name=\"viewport\""), "not set up for a phone screen")
        let setCookie = try #require(page.headers.first(name: "Set-Cookie"))
        #expect(setCookie.contains("HttpOnly") && setCookie.contains("SameSite=Strict"))
        let cookie = String(setCookie.split(separator: ";")[0])
        let csrf = String(cookie.split(separator: "=")[1])
        #expect(page.body.contains("value=\"\(csrf)\""))

        // A form without the page's CSRF token does nothing.
        let forged = try await Self.request(link, method: .POST, form: "action=acknowledge&csrf=guess", cookie: cookie)
        #expect(forged.status == 403)
        let noCookie = try await Self.request(link, method: .POST, form: "action=acknowledge&csrf=\(csrf)")
        #expect(noCookie.status == 403)
        #expect(try await Self.acknowledgers(pipeline, created.incidentID).isEmpty, "a form without a valid CSRF token acted")

        // With it: acknowledged as Alice (the link's user), then back to the page saying so.
        let acted = try await Self.request(link, method: .POST, form: "action=acknowledge&csrf=\(csrf)", cookie: cookie)
        #expect(acted.status == 303 && acted.headers.first(name: "Location")?.hasSuffix("?done=acknowledge") == true, "\(acted.status) \(acted.body)")
        #expect(try await Self.acknowledgers(pipeline, created.incidentID) == ["Alice"])
        let after = try await Self.request(link + "?done=acknowledge")
        #expect(after.body.contains("Acknowledged by you.") && after.body.contains("acknowledged "))

        // A tampered link (Bob's user id in Alice's token) and an expired one: a clear page, nothing done.
        let tampered = link.replacingOccurrences(of: "/i/v1.\(alice.user.id).", with: "/i/v1.\(bob.user.id).")
        let refused = try await Self.request(tampered)
        #expect(refused.status == 403 && refused.body.contains("signature does not match") && refused.body.contains("Nothing was changed"))
        let refusedAck = try await Self.request(tampered + "/ack", method: .POST)
        #expect(refusedAck.status == 403)
        let expired = OneTapLink(userID: bob.user.id, incidentID: created.incidentID, expiresAtMs: SystemWallClock().nowMs() - 1000)
            .url(publicURL: pipeline.config.publicURL, key: Self.key)
        let gone = try await Self.request(expired + "/ack", method: .POST)
        #expect(gone.status == 410 && gone.body.contains("expired"), "\(gone.body)")
        #expect(try await Self.acknowledgers(pipeline, created.incidentID) == ["Alice"], "a tampered or expired link acted")

        // Bob's ack_url (what a push action POSTs) acknowledges as Bob.
        let bobAck = try await Self.request(try #require(bob.incident.ackURL), method: .POST)
        #expect(bobAck.status == 200 && bobAck.body.contains("acknowledged by Bob"), "\(bobAck.body)")
        #expect(try await Self.acknowledgers(pipeline, created.incidentID) == ["Alice", "Bob"])
        // Resolve from the page; the page then offers no button.
        let resolved = try await Self.request(link, method: .POST, form: "action=resolve&csrf=\(csrf)", cookie: cookie)
        #expect(resolved.status == 303)
        let final = try await Self.request(link)
        #expect(final.body.contains(">resolved<") && !final.body.contains("<button"))
        // The timeline says who did what, through which door.
        let actors = try await pipeline.db.pool.withConnection { connection in
            let rows = try connection.query(
                "SELECT type, actor FROM timeline_entries WHERE incident_id = $1 AND type IN ('acknowledge', 'resolve') ORDER BY at_ms, id",
                [Int64(created.incidentID)])
            return (0..<rows.count).map { "\(rows.string($0, "type") ?? "") \(rows.string($0, "actor") ?? "")" }
        }
        #expect(actors == ["acknowledge user:\(alice.user.id)", "acknowledge user:\(bob.user.id)", "resolve user:\(alice.user.id)"], "\(actors)")
        await ingest.close()
        await pipeline.shutdown()
    }
}
