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

    public func register(into router: inout RPCRouter) {
        for method in [
            IncidentActionRequest.acknowledge, IncidentActionRequest.resolve, IncidentActionRequest.reassign,
            IncidentActionRequest.escalate, IncidentActionRequest.snooze, IncidentActionRequest.addNote,
        ] {
            router.register(method) { (request: IncidentActionRequest, _) in
                try await perform(method, request)
            }
        }
    }

    func perform(_ method: String, _ request: IncidentActionRequest) async throws -> IncidentView {
        var violations: [FieldViolation] = []
        if request.incidentID == 0 { violations.append(FieldViolation(field: "incident_id", description: "is required")) }
        if request.userID == 0 { violations.append(FieldViolation(field: "user_id", description: "is required (who acts)")) }
        guard violations.isEmpty else { throw RPCError.invalidArgument(violations) }
        let actor = "user:\(request.userID)"
        let command: IncidentCommand
        switch method {
        case IncidentActionRequest.acknowledge: command = .acknowledge(user: request.userID, actor: actor)
        case IncidentActionRequest.resolve: command = .resolve(actor: actor, reason: request.text)
        case IncidentActionRequest.reassign:
            command = request.toPolicy || request.policyID != 0
                ? .reassignToPolicy(actor: actor) : .reassign(users: request.userIDs, actor: actor)
        case IncidentActionRequest.escalate: command = .escalate(level: Int(request.level), actor: actor)
        case IncidentActionRequest.snooze: command = .snooze(seconds: request.durationSeconds, actor: actor)
        default: command = .note(text: request.text, actor: actor)
        }
        let now = clock.nowMs()
        let outcome = try await pool.transaction { connection in
            try Self.checkUsersExist(request, method: method, connection: connection)
            if method == IncidentActionRequest.reassign, request.policyID != 0 {
                try Self.switchPolicy(request, connection: connection)
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

    /// Points the incident at another escalation policy; the rules then restart it at level 1.
    static func switchPolicy(_ request: IncidentActionRequest, connection: PGConnection) throws {
        guard try IncidentStore.policy(connection, id: Int64(request.policyID)) != nil else {
            throw RPCError.invalidArgument([FieldViolation(field: "policy_id", description: "escalation policy \(request.policyID) does not exist")])
        }
        let status = try connection.query("SELECT status FROM incidents WHERE id = $1 FOR UPDATE", [Int64(request.incidentID)])
        guard let current = status.string(0, "status"), !status.isEmpty else {
            throw RPCError(.notFound, "incident \(request.incidentID) does not exist")
        }
        guard current != IncidentStatus.resolved.rawValue else { throw IncidentCommandError.failedPrecondition("the incident is resolved") }
        try connection.query(
            "UPDATE incidents SET escalation_policy_id = $2 WHERE id = $1", [Int64(request.incidentID), Int64(request.policyID)])
    }

    static func checkUsersExist(_ request: IncidentActionRequest, method: String, connection: PGConnection) throws {
        let reassigned = method == IncidentActionRequest.reassign && !request.toPolicy ? request.userIDs : []
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
