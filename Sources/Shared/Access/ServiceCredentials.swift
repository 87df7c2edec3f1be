#if canImport(Glibc)
import Glibc
#endif
import KlaxonDomain
import NIOConcurrencyHelpers

/// A service's own token for its calls to the other services (role `service`). Issued when the
/// service starts (stored hashed like any token, named after the service, host and process) and
/// revoked when it stops; a process killed without stopping leaves its token, which
/// `klaxon token list` shows and an admin may revoke. Revoked service tokens are deleted at the
/// next start.
public final class ServiceCredentials: Sendable {
    private let state = NIOLockedValueBox<(token: String?, id: Int64?)>((nil, nil))
    public let name: String

    public init(service: String) {
        // gethostname(2), not ProcessInfo.hostName: that one may wait on DNS for a canonical name.
        var buffer = [CChar](repeating: 0, count: 256)
        let host = gethostname(&buffer, buffer.count) == 0 ? String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : "unknown-host"
        self.name = "service \(service)@\(host) pid \(getpid())"
    }

    public var token: String? { state.withLockedValue { $0.token } }

    public var interceptor: BearerInterceptor { BearerInterceptor { [self] in token } }

    public func issue(pool: PostgresPool, now: Millis) async throws {
        let name = self.name
        let issued = try await pool.transaction { connection in
            try connection.query("DELETE FROM api_tokens WHERE role = 'service' AND revoked_at_ms IS NOT NULL")
            return try TokenStore.issue(connection, name: name, role: .service, userID: nil, now: now)
        }
        state.withLockedValue { $0 = (issued.token, issued.id) }
    }

    public func revoke(pool: PostgresPool, now: Millis) async {
        guard let id = state.withLockedValue({ $0.id }) else { return }
        _ = try? await pool.transaction { connection in
            try connection.query("UPDATE api_tokens SET revoked_at_ms = $2 WHERE id = $1", [id, now])
        }
    }

    /// Runs `body` (the service) with a token issued before it starts and revoked after it ends,
    /// however it ends.
    public func whileIssued(pool: PostgresPool, clock: any WallClock, _ body: () async throws -> Void) async throws {
        try await issue(pool: pool, now: clock.nowMs())
        do {
            try await body()
        } catch {
            await revoke(pool: pool, now: clock.nowMs())
            throw error
        }
        await revoke(pool: pool, now: clock.nowMs())
    }
}
