import Foundation
import Shared
import KlaxonDomain

/// An incident row with its assignment state, as the incident rules need it.
public struct IncidentRecord: Sendable {
    public var id: Int64
    public var number: Int64
    public var serviceID: Int64
    public var serviceName: String
    public var policyID: Int64?
    public var settings: IncidentSettings
    public var title: String
    public var severity: String
    public var dedupKey: String
    public var details: [String: String]
    public var createdAtMs: Millis
    public var state: IncidentState
    /// A major incident: it has a response (ResponseStore) that closes when it resolves.
    public var major: Bool = false
    /// Its service's change events in the window before it opened (newest first, at most 3).
    public var recentChanges: [RecentChange] = []

    public func snapshot(at now: Millis, status: IncidentStatus) -> IncidentSnapshot {
        IncidentSnapshot(
            incidentID: UInt64(id), number: UInt64(number), title: title, status: status, urgency: state.urgency,
            serviceID: UInt64(serviceID), serviceName: serviceName, severity: severity, dedupKey: dedupKey,
            createdAtMs: createdAtMs, atMs: now, details: details, recentChanges: recentChanges)
    }
}

/// Loads an incident (locking its row, so actions on one incident are serialised), applies
/// `IncidentCore`, and saves the result with its timeline entries and notify requests, all in
/// the caller's transaction. Ingest's acknowledge/resolve events and Assignment's actions and
/// timers all come through here, so the rules live in one place.
public enum IncidentStore {
    public struct Outcome: Sendable {
        public var record: IncidentRecord
        public var transition: IncidentTransition
        /// Notify requests queued for Notifier (poke its outbox relay after commit when > 0).
        public var notified: Int
    }

    /// nil when the incident does not exist or `when` declines it (e.g. a redelivered trigger).
    public static func run(
        _ command: IncidentCommand, incidentID: Int64, connection: PGConnection, now: Millis,
        when: (IncidentRecord) -> Bool = { _ in true }
    ) throws -> Outcome? {
        try run(incidentID: incidentID, connection: connection, now: now, when: when) { core, state in
            try core.apply(command, to: state, now: now)
        }
    }

    /// Loads and locks the incident once, builds its rules (policy and schedules as data), runs
    /// `rule`, and saves the transition; nothing is written when the rule changes nothing.
    public static func run(
        incidentID: Int64, connection: PGConnection, now: Millis, when: (IncidentRecord) -> Bool = { _ in true },
        rule: (IncidentCore, IncidentState) throws -> IncidentTransition
    ) throws -> Outcome? {
        try runBatch(incidentIDs: [incidentID], connection: connection, now: now, when: when, rule: rule).first
    }

    /// The batch form: loads and locks every incident at once (in id order, so concurrent
    /// batches never deadlock), loads each policy and its schedules once, runs `rule` on each
    /// incident, and saves the transitions with pipelined writes; the notify requests of the
    /// whole batch go to Notifier's outbox as one row (a bundle). A throw leaves the transaction
    /// to be rolled back by the caller (who may then run the incidents one by one).
    public static func runBatch(
        incidentIDs: [Int64], connection: PGConnection, now: Millis, when: (IncidentRecord) -> Bool = { _ in true },
        rule: (IncidentCore, IncidentState) throws -> IncidentTransition
    ) throws -> [Outcome] {
        var seen = Set<Int64>()
        let ids = incidentIDs.filter { seen.insert($0).inserted }
        guard !ids.isEmpty else { return [] }
        var policies: [Int64: (EscalationPolicy, [UInt64: Schedule])] = [:]  // policy id (0: none) → policy, schedules
        var outcomes: [Outcome] = []
        var notifies: [(method: String, body: [UInt8])] = []
        var writes = SaveBatch()
        for record in try loadMany(connection, ids: ids, forUpdate: true) where when(record) {
            let key = record.policyID ?? 0
            if policies[key] == nil {
                let policy = try record.policyID.flatMap { try self.policy(connection, id: $0) } ?? EscalationPolicy(levels: [])
                policies[key] = (policy, try ScheduleStore.schedules(connection, for: policy))
            }
            // Settings are the incident's service's; the policy and schedules are shared.
            let (policy, schedules) = policies[key]!
            let core = IncidentCore(policy: policy, settings: record.settings, schedules: schedules)
            let transition = try rule(core, record.state)
            if transition.state == record.state && transition.effects.isEmpty {
                outcomes.append(Outcome(record: record, transition: transition, notified: 0))
                continue
            }
            let requests = try save(record, transition, connection: connection, now: now, into: &writes)
            notifies += requests
            if record.major, record.state.status != .resolved, transition.state.status == .resolved {
                try connection.combine { try writes.flush(connection, now: now) }  // the response's rules read the incident as saved
                // A resolved major incident's response is closed: nobody is waited for any more.
                let actor = transition.effects.lazy.compactMap { effect -> String? in
                    if case let .timeline(entry) = effect, entry.type == .resolve { return entry.actor }
                    return nil
                }.first ?? "klaxon"
                try ResponseStore.run(.incidentResolved(actor: actor), incidentID: record.id, connection: connection, now: now)
            }
            outcomes.append(Outcome(record: record, transition: transition, notified: requests.count))
        }
        try connection.combine {
            try writes.flush(connection, now: now)
            try Outbox.enqueueAll(connection, destination: Outbox.Destination.notifier, notifies, now: now)
        }
        return outcomes
    }

    /// Loads the incident and locks its row until the transaction ends.
    public static func lock(_ connection: PGConnection, id: Int64) throws -> IncidentRecord? {
        try load(connection, id: id, forUpdate: true)
    }

    /// Loads the incident; queries read without locking.
    public static func load(_ connection: PGConnection, id: Int64, forUpdate: Bool = false) throws -> IncidentRecord? {
        try loadMany(connection, ids: [id], forUpdate: forUpdate).first
    }

    /// Loads the incidents that exist among `ids`, in id order: one query whatever the count
    /// (assignees and acknowledgements come along as arrays).
    public static func loadMany(_ connection: PGConnection, ids: [Int64], forUpdate: Bool = false) throws -> [IncidentRecord] {
        let rows = try connection.query(
            """
            SELECT i.id, i.number, i.service_id, s.name AS service_name,
                   coalesce(i.escalation_policy_id, s.escalation_policy_id) AS escalation_policy_id, s.ack_timeout_seconds,
                   s.auto_resolve_timeout_seconds, i.title, i.status, i.urgency, i.severity, i.dedup_key,
                   i.details::text AS details, i.created_at_ms, i.current_level, i.current_loop, i.escalate_at_ms,
                   i.ack_timeout_at_ms, i.snoozed_until_ms, i.auto_resolve_at_ms, i.exhausted, i.trigger_applied, i.major, i.held_until_ms,
                   (SELECT coalesce(json_agg(json_build_object('summary', c.summary, 'source', c.source, 'at_ms', c.at_ms, 'links', c.links)
                                             ORDER BY c.at_ms DESC), '[]')::text
                    FROM (SELECT summary, source, at_ms, links FROM change_events
                          WHERE service_id = i.service_id AND at_ms <= i.created_at_ms AND at_ms > i.created_at_ms - $2::bigint
                          ORDER BY at_ms DESC LIMIT $3) c) AS recent_changes,
                   array_to_string(ARRAY(SELECT a.user_id FROM incident_assignments a WHERE a.incident_id = i.id
                                         ORDER BY a.assigned_at_ms, a.user_id), ',') AS assignees,
                   (SELECT coalesce(json_agg(json_build_object('user', k.user_id, 'actor', k.actor, 'at', k.at_ms, 'closed', k.closed_at_ms)
                                             ORDER BY k.id), '[]')::text
                    FROM acknowledgements k WHERE k.incident_id = i.id) AS acks
            FROM incidents i JOIN services s ON s.id = i.service_id
            WHERE i.id = ANY($1::bigint[]) ORDER BY i.id \(forUpdate ? "FOR UPDATE OF i" : "")
            """, [PGArray(ids), ChangeStore.windowMs.load(ordering: .relaxed), Int64(ChangeStore.onPages)])
        guard !rows.isEmpty else { return [] }
        var assigned: [Int64: [UInt64]] = [:]
        var acknowledged: [Int64: [Acknowledgement]] = [:]
        for row in 0..<rows.count {
            let id = rows.int64(row, "id")!
            if let list = rows.string(row, "assignees"), !list.isEmpty {
                assigned[id] = list.split(separator: ",").compactMap { UInt64($0) }
            }
            if let acks = rows.string(row, "acks"), acks != "[]",
               let array = try? JSONSerialization.jsonObject(with: Data(acks.utf8)) as? [[String: Any]] {
                acknowledged[id] = array.map { ack in
                    Acknowledgement(
                        user: (ack["user"] as? NSNumber)?.uint64Value, actor: ack["actor"] as? String ?? "",
                        at: (ack["at"] as? NSNumber)?.int64Value ?? 0, closedAt: (ack["closed"] as? NSNumber)?.int64Value)
                }
            }
        }
        return (0..<rows.count).map { row in
            let id = rows.int64(row, "id")!
            var state = Self.state(rows, row)
            state.assignees = assigned[id] ?? []
            state.acknowledgements = acknowledged[id] ?? []
            return IncidentRecord(
                id: id, number: rows.int64(row, "number")!, serviceID: rows.int64(row, "service_id")!,
                serviceName: rows.string(row, "service_name")!, policyID: rows.int64(row, "escalation_policy_id"),
                settings: IncidentSettings(
                    ackTimeoutSeconds: UInt32(rows.int(row, "ack_timeout_seconds")!),
                    autoResolveSeconds: UInt32(rows.int(row, "auto_resolve_timeout_seconds")!)),
                title: rows.string(row, "title")!, severity: rows.string(row, "severity")!, dedupKey: rows.string(row, "dedup_key")!,
                details: JSON.stringMap(rows.string(row, "details")!), createdAtMs: rows.int64(row, "created_at_ms")!, state: state,
                major: rows.bool(row, "major")!, recentChanges: ChangeStore.recent(rows.string(row, "recent_changes")))
        }
    }

    /// The assignment state held in an incidents row (status, urgency, current_level, current_loop,
    /// the timer columns, exhausted); assignees and acknowledgements live in their own tables.
    public static func state(_ rows: PGResult, _ row: Int) -> IncidentState {
        var state = IncidentState(urgency: Urgency(rawValue: rows.string(row, "urgency")!) ?? .high)
        state.status = IncidentStatus(rawValue: rows.string(row, "status")!) ?? .triggered
        state.level = rows.int(row, "current_level")!
        state.loop = rows.int(row, "current_loop")!
        state.escalateAt = rows.int64(row, "escalate_at_ms")
        state.ackTimeoutAt = rows.int64(row, "ack_timeout_at_ms")
        state.snoozedUntil = rows.int64(row, "snoozed_until_ms")
        state.autoResolveAt = rows.int64(row, "auto_resolve_at_ms")
        state.exhausted = rows.bool(row, "exhausted")!
        state.triggerApplied = rows.bool(row, "trigger_applied")!
        state.heldUntil = rows.int64(row, "held_until_ms")
        return state
    }

    /// The policy with its levels and targets: one query.
    public static func policy(_ connection: PGConnection, id: Int64) throws -> EscalationPolicy? {
        let rows = try connection.query(
            """
            SELECT p.num_loops, l.position, l.escalation_delay_seconds, t.user_id, t.schedule_id
            FROM escalation_policies p
            LEFT JOIN escalation_levels l ON l.policy_id = p.id
            LEFT JOIN escalation_targets t ON t.policy_id = l.policy_id AND t.level_position = l.position
            WHERE p.id = $1 ORDER BY l.position, t.position
            """, [id])
        guard !rows.isEmpty, let numLoops = rows.int(0, "num_loops") else { return nil }
        var levels: [EscalationLevel] = []
        var lastPosition = -1
        for row in 0..<rows.count {
            guard let position = rows.int(row, "position") else { continue }  // a policy without levels
            if position != lastPosition {
                levels.append(EscalationLevel(delaySeconds: UInt32(rows.int(row, "escalation_delay_seconds")!), targets: []))
                lastPosition = position
            }
            if let user = rows.uint64(row, "user_id") {
                levels[levels.count - 1].targets.append(.user(user))
            } else if let schedule = rows.uint64(row, "schedule_id") {
                levels[levels.count - 1].targets.append(.schedule(schedule))
            }
        }
        return EscalationPolicy(levels: levels, numLoops: numLoops)
    }

    /// The common writes of a batch's saves, sent as set-based statements: one UPDATE of the
    /// incidents, one INSERT of new assignees, one INSERT of timeline entries, whatever the
    /// batch's size, made one statement by `PGConnection.combine` (issue 29: statements per
    /// incident). They touch different rows, so none needs to see another's effect.
    struct SaveBatch {
        var ids: [Int64] = [], status: [String] = [], level: [Int64] = [], loop: [Int64] = []
        var escalateAt: [Int64?] = [], ackTimeoutAt: [Int64?] = [], snoozedUntil: [Int64?] = [], autoResolveAt: [Int64?] = []
        var exhausted: [Bool] = [], triggerApplied: [Bool] = [], heldUntil: [Int64?] = []
        var assigned: (incident: [Int64], user: [Int64]) = ([], [])
        var entries: [(incidentID: Int64, entry: TimelineEntry)] = []

        /// Queues what was collected (sent with the transaction's next statement) and empties it.
        mutating func flush(_ connection: PGConnection, now: Millis) throws {
            if !ids.isEmpty {
                try connection.enqueue(
                    """
                    UPDATE incidents i SET status = n.status, current_level = n.level, current_loop = n.loop, escalate_at_ms = n.escalate_at,
                           ack_timeout_at_ms = n.ack_timeout_at, snoozed_until_ms = n.snoozed_until, auto_resolve_at_ms = n.auto_resolve_at,
                           exhausted = n.exhausted, updated_at_ms = $12, trigger_applied = n.trigger_applied, held_until_ms = n.held_until,
                           work_attempts = 0, work_retry_at_ms = NULL, work_last_error = NULL,
                           resolved_at_ms = CASE WHEN n.status = 'resolved' THEN coalesce(i.resolved_at_ms, $12) END
                    FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[],
                                $9::boolean[], $10::boolean[], $11::bigint[])
                         AS n(id, status, level, loop, escalate_at, ack_timeout_at, snoozed_until, auto_resolve_at, exhausted,
                              trigger_applied, held_until)
                    WHERE i.id = n.id
                    """,
                    [PGArray(ids), PGArray(status), PGArray(level), PGArray(loop), PGArray(escalateAt), PGArray(ackTimeoutAt),
                     PGArray(snoozedUntil), PGArray(autoResolveAt), PGArray(exhausted), PGArray(triggerApplied), PGArray(heldUntil), now])
            }
            if !assigned.incident.isEmpty {
                try connection.enqueue(
                    """
                    INSERT INTO incident_assignments (incident_id, user_id, assigned_at_ms)
                    SELECT a.incident_id, a.user_id, $3 FROM unnest($1::bigint[], $2::bigint[]) AS a(incident_id, user_id)
                    ON CONFLICT DO NOTHING
                    """, [PGArray(assigned.incident), PGArray(assigned.user), now])
            }
            try Timeline.enqueueMany(connection, entries)
            self = SaveBatch()
        }
    }

    /// Writes the new state and the timeline (collected in `batch`, or queued: they go out with
    /// the transaction's next statement, in one round trip) and returns the notify requests for
    /// Notifier's outbox.
    static func save(
        _ record: IncidentRecord, _ transition: IncidentTransition, connection: PGConnection, now: Millis, into batch: inout SaveBatch
    ) throws -> [(method: String, body: [UInt8])] {
        let old = record.state
        let new = transition.state
        batch.ids.append(record.id)
        batch.status.append(new.status.rawValue)
        batch.level.append(Int64(new.level))
        batch.loop.append(Int64(new.loop))
        batch.escalateAt.append(new.escalateAt)
        batch.ackTimeoutAt.append(new.ackTimeoutAt)
        batch.snoozedUntil.append(new.snoozedUntil)
        batch.autoResolveAt.append(new.autoResolveAt)
        batch.exhausted.append(new.exhausted)
        batch.triggerApplied.append(new.triggerApplied)
        batch.heldUntil.append(new.heldUntil)
        if new.assignees != old.assignees {
            if !old.assignees.isEmpty {
                try connection.enqueue(
                    "DELETE FROM incident_assignments WHERE incident_id = $1 AND NOT (user_id = ANY($2::bigint[]))",
                    [record.id, PGArray(new.assignees.map(Int64.init))])
            }
            for user in new.assignees {
                batch.assigned.incident.append(record.id)
                batch.assigned.user.append(Int64(user))
            }
        }
        for ack in new.acknowledgements.dropFirst(old.acknowledgements.count) {
            try connection.enqueue(
                "INSERT INTO acknowledgements (incident_id, user_id, actor, at_ms, closed_at_ms) VALUES ($1, $2, $3, $4, $5)",
                [record.id, ack.user.map(Int64.init), ack.actor, ack.at, ack.closedAt])
        }
        if let closedAt = new.acknowledgements.compactMap(\.closedAt).max(), old.openAcknowledgements.count > new.openAcknowledgements.count {
            try connection.enqueue(
                "UPDATE acknowledgements SET closed_at_ms = $2 WHERE incident_id = $1 AND closed_at_ms IS NULL", [record.id, closedAt])
        }
        // Outbound webhooks: one delivery per matching subscription, in this transaction.
        try WebhookEvents.enqueue(connection, record, old: old, transition: transition, now: now)
        var notifies: [(method: String, body: [UInt8])] = []
        for effect in transition.effects {
            switch effect {
            case let .timeline(entry):
                batch.entries.append((record.id, entry))
            case let .notify(user, reason, status):
                let requestID = Outbox.newMessageID()
                let request = NotifyRequest(
                    requestID: requestID, incidentID: UInt64(record.id), userID: user, reason: reason,
                    snapshot: record.snapshot(at: now, status: status), requestedAtMs: now)
                notifies.append((Notifier.Notify.name, request.wireBytes()))
            }
        }
        return notifies
    }
}

extension IncidentCommandError: RPCStatusConvertible {
    public var rpcError: RPCError {
        switch self {
        case let .failedPrecondition(message): RPCError(.failedPrecondition, message)
        case let .invalidArgument(field, description): RPCError.invalidArgument([FieldViolation(field: field, description: description)])
        }
    }
}
