import IncidentEngine
import KlaxonDomain
import Logging
import Shared

/// Responders' actions on an incident, over the binary protocol: each loads the incident under
/// its row lock, applies the incident rules, saves, and answers with the new state after commit.
public struct IncidentActions: Sendable {
    let pool: PostgresPool
    let clock: any WallClock
    let notifierOutbox: Waker
    let timers: Waker

    public init(pool: PostgresPool, clock: any WallClock, notifierOutbox: Waker, timers: Waker) {
        self.pool = pool
        self.clock = clock
        self.notifierOutbox = notifierOutbox
        self.timers = timers
    }

    /// Each action and the rule command it runs. A method not listed here is not registered, so
    /// the server answers UNIMPLEMENTED for it: an action this build does not know never turns
    /// into another one.
    static let actions: [(RPCMethod<IncidentActionRequest, IncidentView>, @Sendable (IncidentActionRequest, String) -> IncidentCommand)] = [
        (Assignment.Acknowledge, { .acknowledge(user: $0.userID, actor: $1) }),
        (Assignment.Resolve, { .resolve(actor: $1, reason: $0.text) }),
        (Assignment.Reassign, { $0.toPolicy || $0.policyID != 0 ? .reassignToPolicy(actor: $1) : .reassign(users: $0.userIDs, actor: $1) }),
        (Assignment.Escalate, { .escalate(level: Int($0.level), actor: $1) }),
        (Assignment.Snooze, { .snooze(seconds: $0.durationSeconds, actor: $1) }),
        (Assignment.AddNote, { .note(text: $0.text, actor: $1) }),
    ]

    public func register(into router: inout RPCRouter) {
        for (method, command) in Self.actions {
            router.register(method) { request, context in
                // Who acts comes from the token (a responder acts as its own user), not the request.
                var request = request
                if request.incidentID != 0 { request.userID = try context.actingUser(requested: request.userID) }
                return try await perform(request, reassign: method.name == Assignment.Reassign.name) { [request] in command(request, $0) }
            }
        }
    }

    func perform(
        _ request: IncidentActionRequest, reassign: Bool, command makeCommand: (String) -> IncidentCommand
    ) async throws -> IncidentView {
        var violations: [FieldViolation] = []
        if request.incidentID == 0 { violations.append(FieldViolation(field: "incident_id", description: "is required")) }
        if request.userID == 0 { violations.append(FieldViolation(field: "user_id", description: "is required (who acts)")) }
        guard violations.isEmpty else { throw RPCError.invalidArgument(violations) }
        let command = makeCommand("user:\(request.userID)")
        let now = clock.nowMs()
        let outcome = try await pool.transaction { connection in
            try Self.checkUsersExist(request, reassign: reassign, connection: connection)
            if reassign, request.policyID != 0 {
                try IncidentStore.switchPolicy(connection, incidentID: Int64(request.incidentID), policyID: Int64(request.policyID))
            }
            guard let outcome = try IncidentStore.run(command, incidentID: Int64(request.incidentID), connection: connection, now: now) else {
                throw RPCError(.notFound, "incident \(request.incidentID) does not exist")
            }
            return outcome
        }
        if outcome.notified > 0 { notifierOutbox.poke() }
        timers.poke()
        return IncidentView(incidentID: request.incidentID, state: outcome.transition.state)
    }

    static func checkUsersExist(_ request: IncidentActionRequest, reassign: Bool, connection: PGConnection) throws {
        let reassigned = reassign && !request.toPolicy ? request.userIDs : []
        let wanted = Array(Set([request.userID] + reassigned))
        let found = try connection.query("SELECT id FROM users WHERE id = ANY($1::bigint[])", [PGArray(wanted.map(Int64.init))])
        let known = Set((0..<found.count).compactMap { found.uint64($0, "id") })
        if !known.contains(request.userID) {
            throw RPCError(.notFound, "user \(request.userID) does not exist")
        }
        if let unknown = reassigned.first(where: { !known.contains($0) }) {
            throw RPCError.invalidArgument([FieldViolation(field: "user_ids", description: "user \(unknown) does not exist")])
        }
    }
}
