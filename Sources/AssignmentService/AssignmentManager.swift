import KlaxonDomain
import Logging
import Shared

/// Applies the escalation core's effects to PostgreSQL: loads the incident in a transaction,
/// asks `EscalationCore` what happens at `now`, writes assignments, timers, timeline and
/// notify requests (to Notifier's outbox), and commits.
public struct AssignmentManager: Sendable {
    static let consumer = "assignment"
    let pool: PostgresPool
    let clock: any WallClock
    /// Poked after a commit that wrote to Notifier's outbox.
    let notifierOutbox: Waker
    let logger: Logger

    public init(pool: PostgresPool, clock: any WallClock, notifierOutbox: Waker, logger: Logger) {
        self.pool = pool
        self.clock = clock
        self.notifierOutbox = notifierOutbox
        self.logger = logger
    }

    /// A new incident: assign level 1 of its service's policy and page those users. Idempotent
    /// by message id: a redelivered message changes nothing.
    public func incidentTriggered(_ request: IncidentTriggeredRequest) async throws {
        guard !request.messageID.isEmpty else {
            throw RPCError.invalidArgument([FieldViolation(field: "message_id", description: "is required")])
        }
        let now = clock.nowMs()
        let notified = try await pool.transaction { connection -> Int in
            guard try Inbox.claim(connection, consumer: Self.consumer, messageID: request.messageID, now: now) else { return 0 }
            guard let incident = try IncidentRepository.lock(connection, id: Int64(request.incidentID)) else {
                throw RPCError(.notFound, "incident \(request.incidentID) does not exist")
            }
            guard incident.status == .triggered else { return 0 }
            guard let policyID = incident.policyID, let policy = try IncidentRepository.policy(connection, id: policyID) else {
                try Timeline.append(
                    connection, incidentID: incident.id,
                    TimelineEntry(at: now, type: .exhaustEscalationPath, actor: "system", details: ["reason": "service has no escalation policy"]))
                return 0
            }
            let effects = EscalationCore.start(policy: policy, urgency: incident.urgency, now: now) { target, _ in
                // Schedules come with the schedule model; until then a schedule target resolves to nobody.
                if case let .user(id) = target { return [id] }
                return []
            }
            return try Self.apply(effects, to: incident, connection: connection, now: now)
        }
        if notified > 0 { notifierOutbox.poke() }
    }

    /// Writes effects in order; returns how many notify requests were queued.
    static func apply(_ effects: [AssignmentEffect], to incident: IncidentRecord, connection: PGConnection, now: Millis) throws -> Int {
        var notified = 0
        for effect in effects {
            switch effect {
            case let .assign(users, level, loop):
                try connection.query("DELETE FROM incident_assignments WHERE incident_id = $1", [incident.id])
                for user in users {
                    try connection.query(
                        "INSERT INTO incident_assignments (incident_id, user_id, assigned_at_ms) VALUES ($1, $2, $3)",
                        [incident.id, user, now])
                }
                try connection.query(
                    "UPDATE incidents SET current_level = $2, current_loop = $3, updated_at_ms = $4 WHERE id = $1",
                    [incident.id, level, loop, now])
            case let .notify(user, reason):
                let requestID = Outbox.newMessageID()
                let request = NotifyRequest(
                    requestID: requestID, incidentID: UInt64(incident.id), userID: user, reason: reason,
                    snapshot: incident.snapshot(at: now), requestedAtMs: now)
                try Outbox.enqueue(
                    connection, destination: "notifier", method: NotifyRequest.method, messageID: requestID,
                    body: request.wireBytes(), now: now)
                notified += 1
            case let .setEscalationTimer(at):
                try connection.query("UPDATE incidents SET escalate_at_ms = $2 WHERE id = $1", [incident.id, at])
            case let .timeline(entry):
                try Timeline.append(connection, incidentID: incident.id, entry)
            }
        }
        return notified
    }
}
