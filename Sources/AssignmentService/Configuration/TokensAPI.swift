import KlaxonDomain
import Shared

/// Bearer tokens (`klaxon.assignment.v1.Admin`): created with a role and shown once, listed by
/// their prefix, revoked; and who the caller is.
extension AdminAPI {
    static func tokenMessage(_ rows: PGResult, _ row: Int) -> ApiToken {
        ApiToken(
            id: rows.uint64(row, "id")!, name: rows.string(row, "name")!, role: rows.string(row, "role")!,
            userID: rows.uint64(row, "user_id") ?? 0, prefix: rows.string(row, "prefix")! + "…",
            createdAtMs: rows.int64(row, "created_at_ms")!, revokedAtMs: rows.int64(row, "revoked_at_ms") ?? 0)
    }

    func registerTokens(into router: inout RPCRouter) {
        let pool = self.pool
        let clock = self.clock
        let authenticator = self.authenticator
        router.register(Admin.CreateToken) { (request: ApiToken, _) in
            var violations: [FieldViolation] = []
            if request.name.isEmpty || request.name.unicodeScalars.count > 255 {
                violations.append(FieldViolation(field: "name", description: "must be 1–255 characters"))
            }
            let role = TokenRole(rawValue: request.role)
            if role == nil || role == .service {
                violations.append(FieldViolation(field: "role", description: "must be admin, responder or observer, got \"\(request.role)\""))
            }
            if role == .responder, request.userID == 0 {
                violations.append(FieldViolation(field: "user_id", description: "is required for a responder token (the user it acts as)"))
            }
            if !request.token.isEmpty { violations.append(FieldViolation(field: "token", description: "is made by Klaxon; leave it empty")) }
            guard violations.isEmpty, let role else { throw RPCError.invalidArgument(violations) }
            let now = clock.nowMs()
            return try await pool.transaction { connection in
                if request.userID != 0, try connection.query("SELECT 1 FROM users WHERE id = $1", [Int64(request.userID)]).isEmpty {
                    throw RPCError.invalidArgument([FieldViolation(field: "user_id", description: "user \(request.userID) does not exist")])
                }
                let issued = try TokenStore.issue(
                    connection, name: request.name, role: role, userID: request.userID == 0 ? nil : Int64(request.userID), now: now)
                return ApiToken(
                    id: UInt64(issued.id), name: request.name, role: role.rawValue, userID: request.userID, token: issued.token,
                    prefix: issued.prefix + "…", createdAtMs: now)
            }
        }
        router.register(Admin.ListTokens) { (_: Empty, _) in
            try await pool.withConnection { connection in
                let rows = try connection.query(
                    "SELECT id, name, role, user_id, prefix, created_at_ms, revoked_at_ms FROM api_tokens ORDER BY id")
                return ApiTokenList(tokens: (0..<rows.count).map { Self.tokenMessage(rows, $0) })
            }
        }
        router.register(Admin.RevokeToken) { (request: AdminIDRequest, _) in
            let now = clock.nowMs()
            let revoked = try await pool.transaction { connection in
                let rows = try connection.query(
                    """
                    UPDATE api_tokens SET revoked_at_ms = COALESCE(revoked_at_ms, $2) WHERE id = $1
                    RETURNING id, name, role, user_id, prefix, created_at_ms, revoked_at_ms
                    """, [Int64(request.id), now])
                guard !rows.isEmpty else { throw RPCError(.notFound, "token \(request.id) does not exist") }
                return Self.tokenMessage(rows, 0)
            }
            authenticator?.forget(tokenID: Int64(request.id))
            return revoked
        }
        router.register(Admin.WhoAmI) { (_: Empty, context) in
            guard let principal = context.principal else { throw RPCError(.unauthenticated, "this call carried no token") }
            return ApiToken(
                id: UInt64(principal.tokenID), name: principal.name, role: principal.role.rawValue,
                userID: principal.userID.map { UInt64($0) } ?? 0)
        }
    }
}
