import AssignmentService
import KlaxonDomain
import KlaxonTestSupport
import Logging
import Shared
import Testing

/// Tokens with roles on every binary-protocol call (issue 12, point 3): each role against each
/// class of method, no token, a wrong token, a revoked token; a responder acts as its own user.
@Suite struct AccessTests {
    /// The outcome of one call: "OK" or the status code's name.
    static func outcome<Request, Reply>(_ client: RPCClient, _ method: RPCMethod<Request, Reply>, _ request: Request) async -> String {
        guard let error = await client.failure(method, request) else { return "OK" }
        return "\(error.code)"
    }

    @Test func eachRoleAgainstEachClassOfMethod() async throws {
        let pipeline = try await Pipeline()
        let service = try await pipeline.seed(users: ["Alice", "Bob"])
        let (alice, bob) = (Int64(service.userIDs[0]), Int64(service.userIDs[1]))
        let pool = pipeline.db.pool
        let responder = try await Pipeline.issueToken(pool, name: "alice laptop", role: .responder, userID: alice)
        let observer = try await Pipeline.issueToken(pool, name: "wallboard", role: .observer, userID: nil)
        let ingest = pipeline.client(.ingest, token: nil)
        let opened: EventResult = try await ingest.call(Ingest.SendEvent, Pipeline.trigger(service.routingKey, dedupKey: "a"))
        let incident = opened.incidentID

        // One call per class: admin (create a policy), incident action (add a note), read (list
        // incidents), service-to-service (IncidentTriggered, already applied: idempotent).
        let policy = PolicyMessage(name: "P", levels: [PolicyLevelMessage(escalationDelaySeconds: 60, targets: [PolicyTargetMessage(userID: UInt64(bob))])])
        let note = IncidentActionRequest(incidentID: incident, text: "looking")
        let triggered = IncidentTriggeredRequest(messageID: RandomID.uuid(), incidentID: incident, triggeredAtMs: 1)
        func row(_ token: String?) async -> [String] {
            let client = pipeline.client(.assignment, token: .some(token))
            defer { Task { await client.close() } }
            var note = note
            if token == pipeline.adminToken { note.userID = UInt64(alice) }  // an admin names who acts
            return [
                await Self.outcome(client, Admin.CreateEscalationPolicy, policy),
                await Self.outcome(client, Assignment.AddNote, note),
                await Self.outcome(client, Assignment.ListIncidents, ListIncidentsRequest()),
                await Self.outcome(client, Assignment.IncidentTriggered, triggered),
            ]
        }
        #expect(await row(pipeline.adminToken) == ["OK", "OK", "OK", "PERMISSION_DENIED"])
        #expect(await row(responder) == ["PERMISSION_DENIED", "OK", "OK", "PERMISSION_DENIED"])
        #expect(await row(observer) == ["PERMISSION_DENIED", "PERMISSION_DENIED", "OK", "PERMISSION_DENIED"])
        #expect(await row(pipeline.serviceToken) == ["PERMISSION_DENIED", "PERMISSION_DENIED", "PERMISSION_DENIED", "OK"])
        #expect(await row(nil) == ["UNAUTHENTICATED", "UNAUTHENTICATED", "UNAUTHENTICATED", "UNAUTHENTICATED"])
        #expect(await row("klx_" + String(repeating: "x", count: 43)) == ["UNAUTHENTICATED", "UNAUTHENTICATED", "UNAUTHENTICATED", "UNAUTHENTICATED"])

        // The refusal names the role and the method.
        let observerClient = pipeline.client(.assignment, token: .some(observer))
        let denied = await observerClient.failure(Assignment.AddNote, note)
        #expect(denied?.message == "role observer may not call klaxon.assignment.v1.Assignment/AddNote (incident action method)")
        let noToken = await pipeline.client(.assignment, token: .some(nil)).failure(Assignment.ListIncidents, ListIncidentsRequest())
        #expect(noToken?.message.contains("authorization: Bearer") == true)

        // Monitors need no token: SendEvent worked above without one; People on Notifier is guarded too.
        #expect(await Self.outcome(pipeline.client(.notifier, token: .some(nil)), People.ListUsers, Empty()) == "UNAUTHENTICATED")
        #expect(await Self.outcome(pipeline.client(.notifier, token: .some(observer)), People.ListUsers, Empty()) == "OK")
        #expect(await Self.outcome(pipeline.client(.notifier, token: .some(observer)), People.CreateUser, UserMessage(name: "X", email: "x@example.com")) == "PERMISSION_DENIED")

        // Revoked: refused at once by the process that revoked it.
        let admin = pipeline.client(.assignment)
        let tokens: ApiTokenList = try await admin.call(Admin.ListTokens, Empty())
        let observerID = try #require(tokens.tokens.first { $0.name == "wallboard" }).id
        #expect(tokens.tokens.allSatisfy { $0.token.isEmpty && !$0.prefix.isEmpty })  // never the secret
        let revoked: ApiToken = try await admin.call(Admin.RevokeToken, AdminIDRequest(id: observerID))
        #expect(revoked.revokedAtMs > 0)
        #expect(await Self.outcome(observerClient, Assignment.ListIncidents, ListIncidentsRequest()) == "UNAUTHENTICATED")
        await pipeline.shutdown()
    }

    @Test func aRespondersAcknowledgementIsRecordedAsThatRespondersUser() async throws {
        let pipeline = try await Pipeline()
        let service = try await pipeline.seed(users: ["Alice", "Bob"])
        let (alice, bob) = (service.userIDs[0], service.userIDs[1])
        let bobToken = try await Pipeline.issueToken(pipeline.db.pool, name: "bob phone", role: .responder, userID: bob)
        let opened: EventResult = try await pipeline.client(.ingest).call(Ingest.SendEvent, Pipeline.trigger(service.routingKey))
        let bobClient = pipeline.client(.assignment, token: .some(bobToken))
        // No user named: the token's own. Another user named: refused, nothing written.
        let impersonation = await bobClient.failure(Assignment.Acknowledge, IncidentActionRequest(incidentID: opened.incidentID, userID: UInt64(alice)))
        #expect(impersonation?.code == .permissionDenied)
        #expect(impersonation?.message == "a responder token acts as its own user \(bob), not user \(alice)")
        let view: IncidentView = try await bobClient.call(Assignment.Acknowledge, IncidentActionRequest(incidentID: opened.incidentID))
        #expect(view.acknowledgements.map(\.userID) == [UInt64(bob)])
        #expect(view.acknowledgements.map(\.actor) == ["user:\(bob)"])
        let who: ApiToken = try await bobClient.call(Admin.WhoAmI, Empty())
        #expect(who.role == "responder" && who.userID == UInt64(bob) && who.name == "bob phone")
        // An admin token without a user must name who acts.
        let adminNoUser = await pipeline.client(.assignment).failure(Assignment.AddNote, IncidentActionRequest(incidentID: opened.incidentID, text: "x"))
        #expect(adminNoUser?.status.violations.map(\.field) == ["user_id"])
        await pipeline.shutdown()
    }

    @Test func tokensAreRandomHashedAndBootstrapIsIdempotent() async throws {
        let db = try await TestDatabase.create()
        let first = Secrets.token(), second = Secrets.token()
        #expect(first.count == 47 && first.hasPrefix("klx_") && first != second)
        #expect(Secrets.routingKey().count == 32)
        let bootstrap = "bootstrap-" + Secrets.text(count: 40)
        try await db.pool.transaction { connection in
            #expect(try TokenStore.bootstrap(connection, token: bootstrap, now: 1))
            #expect(try !TokenStore.bootstrap(connection, token: bootstrap, now: 2))
            let stored = try connection.query("SELECT token_hash, prefix, role FROM api_tokens")
            #expect(stored.count == 1)
            #expect(stored.bytes(0, "token_hash") == Secrets.sha256(bootstrap))  // the hash, never the token
            #expect(stored.string(0, "role") == "admin")
            #expect(try TokenStore.principal(connection, token: bootstrap)?.role == .admin)
            #expect(try TokenStore.principal(connection, token: bootstrap + "x") == nil)
        }
        #expect(Secrets.constantTimeEquals([1, 2, 3], [1, 2, 3]) && !Secrets.constantTimeEquals([1, 2, 3], [1, 2, 4]))
        // With a bootstrap token configured, starting again prints nothing new.
        #expect(try await Configuration.bootstrapAdmin(db.pool, token: bootstrap, now: 3) == nil)
        await db.drop()

        // Without one: the first start makes an admin token and returns it (to print once); the next does not.
        let fresh = try await TestDatabase.create()
        let printed = try #require(try await Configuration.bootstrapAdmin(fresh.pool, token: "", now: 1))
        #expect(printed.hasPrefix("klx_") && printed.count == 47)
        #expect(try await Configuration.bootstrapAdmin(fresh.pool, token: "", now: 2) == nil)
        let principal = try await fresh.pool.withConnection { try TokenStore.principal($0, token: printed) }
        #expect(principal?.role == .admin && principal?.name == "first admin")
        await fresh.drop()

        // Six processes starting together with one bootstrap token (scripts/test-ha's replicas): each
        // starts, and the token is stored once.
        let together = try await TestDatabase.create()
        let shared = "bootstrap-" + Secrets.text(count: 40)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<6 {
                group.addTask {
                    let pool = PostgresPool(url: together.url, logger: Logger(label: "start-\(index)"))
                    defer { Task { await pool.shutdown() } }
                    _ = try await Configuration.bootstrapAdmin(pool, token: shared, now: Millis(index))
                }
            }
            try await group.waitForAll()
        }
        #expect(try await together.scalar("SELECT count(*) FROM api_tokens WHERE name = 'bootstrap'") == 1)
        await together.drop()
        #expect(Secrets.mask("abcdefghijklmnopqrstuvwxyz012345") == "abcd************************2345")
    }
}
