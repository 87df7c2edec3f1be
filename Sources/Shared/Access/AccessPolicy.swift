import KlaxonDomain
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// The classes of binary-protocol methods, and which token roles may call each.
public enum MethodAccess: String, Sendable {
    /// Monitors: authenticated by the event's routing key alone, no token.
    case monitor
    /// Reads: admin, responder, observer.
    case read
    /// Incident actions: admin and responder (a responder acts as its own user).
    case incidentAction = "incident action"
    /// Calls between Klaxon's own services: service tokens only.
    case service
    /// A user's own contact methods (verify, test): admin, or a responder for their own user
    /// (the method checks whose they are).
    case ownContacts = "own contact methods"
    /// Everything else (configuration, tokens): admin only.
    case admin

    public func allows(_ role: TokenRole) -> Bool {
        switch self {
        case .monitor: true
        case .read: role != .service
        case .incidentAction, .ownContacts: role == .admin || role == .responder
        case .service: role == .service
        case .admin: role == .admin
        }
    }
}

public enum AccessPolicy {
    static let classes: [String: MethodAccess] = {
        var table: [String: MethodAccess] = [:]
        for method in [Ingest.SendEvent.name, Ingest.SendEvents.name] { table[method] = .monitor }
        for method in [
            Assignment.IncidentTriggered.name, Assignment.IncidentsTriggered.name, Notifier.Notify.name, Notifier.NotifyBatch.name,
            Notifier.PostToChannel.name,
        ] { table[method] = .service }
        for method in [
            Assignment.Acknowledge.name, Assignment.Resolve.name, Assignment.Reassign.name, Assignment.Escalate.name,
            Assignment.Snooze.name, Assignment.AddNote.name,
            Assignment.SetPriority.name, Assignment.DeclareMajor.name, Assignment.LinkIncidents.name,
            Assignment.RequestResponders.name, Assignment.AnswerResponderRequest.name, Assignment.AssignRole.name,
            Assignment.PostStatusUpdate.name, Assignment.Subscribe.name,
            // The on-call engineer starting maintenance before a deploy.
            Admin.CreateMaintenance.name, Admin.EndMaintenance.name, Admin.CancelMaintenance.name,
        ] { table[method] = .incidentAction }
        for method in [
            Assignment.GetIncident.name, Assignment.ListIncidents.name, Assignment.GetTimeline.name,
            Admin.GetEscalationPolicy.name, Admin.ListEscalationPolicies.name, Admin.GetSchedule.name, Admin.ListSchedules.name,
            Admin.WhoIsOnCall.name, Admin.GetService.name, Admin.ListServices.name, Admin.ListChanges.name, Admin.WhoAmI.name,
            Admin.GetSurgeSettings.name, Admin.GetHeartbeat.name, Admin.ListHeartbeats.name, Admin.ListMaintenance.name,
            Admin.GetEventRules.name, Admin.ListServiceAudit.name, Admin.ListShadowPages.name, Admin.ListWebhooks.name, Admin.ListWebhookDeliveries.name,
            Assignment.GetResponse.name, Admin.ListResponsePlans.name,
            People.GetUser.name, People.ListUsers.name, People.ListIncidentNotifications.name,
        ] { table[method] = .read }
        for method in [People.VerifyContactMethod.name, People.SendVerificationCode.name, People.TestPage.name] { table[method] = .ownContacts }
        return table
    }()

    /// A method not listed is an admin method: a new method is closed until someone opens it.
    public static func access(for method: String) -> MethodAccess { classes[method] ?? .admin }
}

/// Tokens presented on calls → principals, from PostgreSQL, remembered for `ttl` so a busy
/// caller does not cost a query per call. A revoked token is refused at once by the process that
/// revoked it (`forget`) and within `ttl` by the others.
public final class TokenAuthenticator: Sendable {
    private let pool: PostgresPool
    private let ttl: TimeAmount
    private let cache = NIOLockedValueBox<[[UInt8]: (principal: Principal?, until: NIODeadline)]>([:])

    public init(pool: PostgresPool, ttl: TimeAmount = .seconds(2)) {
        self.pool = pool
        self.ttl = ttl
    }

    func cached(_ hash: [UInt8]) -> Principal?? {
        // NIODeadline: monotonic, a cache age, not a domain instant.
        guard let hit = cache.withLockedValue({ $0[hash] }), hit.until > .now() else { return nil }
        return .some(hit.principal)
    }

    public func principal(for token: String) async throws -> Principal? {
        try await principal(for: token, hash: Secrets.sha256(token))
    }

    /// `hash` is the token's SHA-256, when the caller has it already.
    func principal(for token: String, hash: [UInt8]) async throws -> Principal? {
        if let hit = cached(hash) { return hit }
        let principal = try await pool.withConnection { try TokenStore.principal($0, token: token) }
        let until = NIODeadline.now() + ttl
        cache.withLockedValue { cache in
            if cache.count > 10_000 { cache.removeAll() }  // unknown tokens must not grow it without bound
            cache[hash] = (principal, until)
        }
        return principal
    }

    /// Drops a token from the cache (after revoking it here).
    public func forget(tokenID: Int64) {
        cache.withLockedValue { cache in cache = cache.filter { $0.value.principal?.tokenID != tokenID } }
    }
}

/// Authenticates every call by its `authorization: Bearer <token>` header and checks the
/// token's role against the method's class (`AccessPolicy`). Missing, unknown or revoked token →
/// UNAUTHENTICATED; a role that may not → PERMISSION_DENIED naming both. Monitors' methods need
/// no token. The token itself is never logged.
public struct AccessMiddleware: RPCMiddleware {
    let authenticator: TokenAuthenticator

    public init(_ authenticator: TokenAuthenticator) {
        self.authenticator = authenticator
    }

    public func handle(_ call: RPCCall, next: @escaping @Sendable (RPCCall) -> EventLoopFuture<[UInt8]>) -> EventLoopFuture<[UInt8]> {
        let method = call.context.method
        let access = AccessPolicy.access(for: method)
        if access == .monitor { return next(call) }
        if let principal = call.context.principal {
            // Identified by another door of this process (a chat request's signature and its
            // mapped user, through `RPCServer.call`); a frame off the wire never has one. The
            // role check is the same.
            guard access.allows(principal.role) else {
                return call.eventLoop.makeFailedFuture(RPCError(
                    .permissionDenied, "\(principal.name) has the role \(principal.role.rawValue), which may not call \(method) (\(access.rawValue) method)"))
            }
            return next(call)
        }
        // The scheme is case-insensitive (RFC 9110), the token is not.
        guard let header = call.context.headers["authorization"], header.count > 7, header.prefix(7).lowercased() == "bearer " else {
            return call.eventLoop.makeFailedFuture(RPCError(
                .unauthenticated, "\(method) needs a token: send the header `authorization: Bearer <token>` (klaxon token create)"))
        }
        let token = String(header.dropFirst(7))
        let admit: @Sendable (Principal?) -> EventLoopFuture<[UInt8]> = { principal in
            guard let principal else {
                return call.eventLoop.makeFailedFuture(RPCError(.unauthenticated, "unknown or revoked token"))
            }
            guard access.allows(principal.role) else {
                return call.eventLoop.makeFailedFuture(RPCError(
                    .permissionDenied, "role \(principal.role.rawValue) may not call \(method) (\(access.rawValue) method)"))
            }
            var call = call
            call.context.principal = principal
            return next(call)
        }
        let hash = Secrets.sha256(token)
        if let hit = authenticator.cached(hash) { return admit(hit) }
        let promise = call.eventLoop.makePromise(of: Principal?.self)
        let authenticator = self.authenticator
        promise.completeWithTask { try await authenticator.principal(for: token, hash: hash) }
        return promise.futureResult.flatMapError { error in
            call.eventLoop.makeFailedFuture(RPCError(.unavailable, "cannot check the token: \(error)"))
        }.flatMap(admit)
    }
}

/// Sends this process's service token on every call (`authorization: Bearer …`).
public struct BearerInterceptor: RPCClientInterceptor {
    let token: @Sendable () -> String?

    public init(_ token: @escaping @Sendable () -> String?) {
        self.token = token
    }

    public func intercept(method: String, headers: inout [String: String]) {
        if let token = token() { headers["authorization"] = "Bearer \(token)" }
    }
}
