import KlaxonDomain

/// What a token may do. `service` tokens are issued by the services themselves for their calls
/// to each other; people get the other three.
public enum TokenRole: String, Sendable, CaseIterable {
    case admin, responder, observer, service
}

/// Who is calling: the token's id, name, role and, for a person's token, the user it acts as.
public struct Principal: Sendable, Equatable {
    public var tokenID: Int64
    public var name: String
    public var role: TokenRole
    public var userID: Int64?

    public init(tokenID: Int64, name: String, role: TokenRole, userID: Int64?) {
        self.tokenID = tokenID
        self.name = name
        self.role = role
        self.userID = userID
    }
}

extension RPCContext {
    /// The user an incident action is done as. A responder's token acts as its own user (a
    /// different `user_id` in the request is PERMISSION_DENIED); an admin's acts as the request's
    /// `user_id`, or its own user when the request names none. Without authentication (a bare
    /// server in tests of the wire layer) the request's `user_id`.
    public func actingUser(requested: UInt64) throws(RPCError) -> UInt64 {
        guard let principal else {
            guard requested != 0 else { throw RPCError.invalidArgument([FieldViolation(field: "user_id", description: "is required (who acts)")]) }
            return requested
        }
        switch principal.role {
        case .responder:
            guard let own = principal.userID else { throw RPCError(.permissionDenied, "responder token \(principal.name) has no user") }
            if requested != 0, requested != UInt64(own) {
                throw RPCError(.permissionDenied, "a responder token acts as its own user \(own), not user \(requested)")
            }
            return UInt64(own)
        case .admin:
            if requested != 0 { return requested }
            guard let own = principal.userID else {
                throw RPCError.invalidArgument([FieldViolation(field: "user_id", description: "is required (who acts): this admin token has no user of its own, so name one (the CLI's --user)")])
            }
            return UInt64(own)
        case .observer, .service:
            throw RPCError(.permissionDenied, "role \(principal.role.rawValue) may not act on incidents")
        }
    }

    /// A call about `userID`'s own contact methods: an admin for anyone, a responder for their
    /// own user only (PERMISSION_DENIED otherwise). Without authentication (wire-layer tests), allowed.
    public func mayManageContacts(of userID: Int64) throws(RPCError) {
        guard let principal, principal.role != .admin else { return }
        guard principal.role == .responder, let own = principal.userID, own == userID else {
            throw RPCError(.permissionDenied, "token \(principal.name) (\(principal.role.rawValue)) may manage only its own user's contact methods, not user \(userID)'s")
        }
    }
}
