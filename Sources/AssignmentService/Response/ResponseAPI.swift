import IncidentEngine
import KlaxonDomain
import Shared

/// A major incident's response over the binary protocol: responder requests (paged with reason
/// `responder_request`), answers, roles, status updates (paged with reason `status_update` and
/// posted to subscribed channels), subscriptions, and the response as a whole. The rules are
/// `ResponseCore`'s and the writes `ResponseStore`'s: each handler checks the request's own
/// fields, translates it into a `ResponseCommand`, and runs it in one transaction.
public struct ResponseAPI: Sendable {
    let pool: PostgresPool
    let clock: any WallClock
    let notifierOutbox: Waker

    public init(pool: PostgresPool, clock: any WallClock, notifierOutbox: Waker) {
        self.pool = pool
        self.clock = clock
        self.notifierOutbox = notifierOutbox
    }

    /// Every role's name, in the order pages and `who` list them.
    public static let roles: [String] = Role.allCases.map(\.rawValue)

    static func role(_ name: String, field: String = "role") throws -> Role {
        guard let role = Role(rawValue: name) else {
            throw RPCError.invalidArgument([FieldViolation(field: field, description: "must be one of \(Role.listed)")])
        }
        return role
    }

    static func requireOpen(_ state: ResponseState) throws {
        do { try ResponseCore.requireOpen(state) } catch { throw error.rpcError }
    }

    /// Who did it, for the timeline: the token's name and its user.
    static func actor(_ context: RPCContext) -> String {
        guard let principal = context.principal else { return "api" }
        return principal.userID.map { "user \($0) (\(principal.name))" } ?? principal.name
    }

    /// Runs `command` (made in the transaction, at its instant) on incident `id`, pokes Notifier's
    /// outbox when pages were queued, and answers with the response.
    func run(
        _ id: UInt64, _ command: @escaping @Sendable (ResponseState, PGConnection, Millis) throws -> ResponseCommand
    ) async throws -> IncidentResponse {
        let now = clock.nowMs()
        let (queued, response) = try await pool.transaction { connection in
            let outcome = try ResponseStore.run(incidentID: Int64(id), connection: connection, now: now) { state in
                try command(state, connection, now)
            }
            return (outcome.queued, try ResponseStore.view(connection, incidentID: Int64(id)))
        }
        if queued > 0 { notifierOutbox.poke() }
        return response
    }

    public func register(into router: inout RPCRouter) {
        let api = self
        router.register(Assignment.RequestResponders) { (request: RequestRespondersRequest, context) in
            let role = request.role.isEmpty ? nil : try Self.role(request.role)
            guard !(request.userIDs.isEmpty && request.scheduleIDs.isEmpty && request.policyIDs.isEmpty) else {
                throw RPCError.invalidArgument([FieldViolation(field: "user_ids", description: "name at least one user, schedule or policy")])
            }
            let timeout = request.timeoutSeconds == 0 ? ResponseCore.defaultTimeoutSeconds : request.timeoutSeconds
            let actor = Self.actor(context)
            return try await api.run(request.incidentID) { state, connection, now in
                // A closed response refuses before any target is looked up.
                try Self.requireOpen(state)
                let users = try ResponseStore.resolveTargets(
                    connection, users: request.userIDs, schedules: request.scheduleIDs, policies: request.policyIDs, now: now)
                return .requestResponders(users: users, message: request.message, role: role, timeoutSeconds: timeout, actor: actor)
            }
        }
        router.register(Assignment.AnswerResponderRequest) { (request: ResponderAnswer, context) in
            let user = try context.actingUser(requested: request.userID)
            let actor = Self.actor(context)
            return try await api.run(request.incidentID) { _, _, _ in .answer(user: user, join: request.join, actor: actor) }
        }
        router.register(Assignment.AssignRole) { (request: AssignRoleRequest, context) in
            let role = try Self.role(request.role)
            guard request.userID != 0 else { throw RPCError.invalidArgument([FieldViolation(field: "user_id", description: "is required")]) }
            let actor = Self.actor(context)
            return try await api.run(request.incidentID) { state, connection, _ in
                try Self.requireOpen(state)
                guard try UserStore.exists(connection, id: Int64(request.userID)) else {
                    throw RPCError.invalidArgument([FieldViolation(field: "user_id", description: "user \(request.userID) does not exist")])
                }
                return request.relinquish
                    ? .relinquishRole(role, user: request.userID, actor: actor) : .assignRole(role, user: request.userID, actor: actor)
            }
        }
        router.register(Assignment.PostStatusUpdate) { (request: PostStatusUpdateRequest, context) in
            let actor = Self.actor(context)
            return try await api.run(request.incidentID) { _, _, _ in .postStatusUpdate(text: request.text, actor: actor) }
        }
        router.register(Assignment.Subscribe) { (request: SubscribeRequest, context) in
            guard !request.userIDs.isEmpty || !request.channelWebhooks.isEmpty else {
                throw RPCError.invalidArgument([FieldViolation(field: "user_ids", description: "name at least one user or channel webhook")])
            }
            if !request.remove {
                let violations = PlanStore.channelViolations(request.channelWebhooks)
                guard violations.isEmpty else { throw RPCError.invalidArgument(violations) }
            }
            let actor = Self.actor(context)
            return try await api.run(request.incidentID) { state, connection, now in
                try Self.requireOpen(state)
                let users = try ResponseStore.resolveTargets(connection, users: request.userIDs, schedules: [], policies: [], now: now)
                return request.remove
                    ? .unsubscribe(users: users, channels: request.channelWebhooks, actor: actor)
                    : .subscribe(users: users, channels: request.channelWebhooks, actor: actor)
            }
        }
        router.register(Assignment.GetResponse) { (request: GetIncidentRequest, _) in
            try await api.pool.withConnection { try ResponseStore.view($0, incidentID: Int64(request.incidentID)) }
        }
    }
}
