import KlaxonDomain
import Shared

/// Writes a batch of triggers in one transaction with a fixed number of statements, whatever the
/// batch size: lock the open incidents of the batch's (service, dedup key)s, create the missing
/// ones, then one multi-row statement each for alerts, counts and timeline, and one outbox row.
public enum TriggerWriter {
    /// Another transaction opened an incident for one of the batch's new keys first: run the batch again.
    public struct ConcurrentCreation: Error, RPCStatusConvertible {
        public var rpcError: RPCError { RPCError(.aborted, "the incident for this dedup key was being opened concurrently; retry") }
    }

    private struct Key: Hashable, Comparable {
        var serviceID: Int64
        var dedupKey: String
        static func < (a: Key, b: Key) -> Bool { (a.serviceID, a.dedupKey) < (b.serviceID, b.dedupKey) }
    }

    /// The batch's statements. Each reaches the rows it needs through an index, whatever the plan
    /// cache decides: the lock query probes per key (LATERAL) in key order; the updates run with
    /// seq scans off for this transaction (`PGConnection.seqScansOff`). IngestTests checks the
    /// plans on empty tables. The batch runs on generic plans (`PGConnection.genericPlans`): the
    /// lock query is not planned again on every call.
    static let lockOpen = """
        SELECT i.id, i.service_id, i.dedup_key, i.first_alert
        FROM unnest($1::bigint[], $2::text[]) WITH ORDINALITY AS k(service_id, dedup_key, n)
        CROSS JOIN LATERAL (
          SELECT o.id, o.service_id, o.dedup_key,
                 (SELECT min(a.id) FROM alerts a WHERE a.incident_id = o.id) AS first_alert
          FROM incidents o
          WHERE o.service_id = k.service_id AND o.dedup_key = k.dedup_key AND o.status <> 'resolved'
          FOR UPDATE OF o
        ) i
        ORDER BY k.n
        """

    static let insertIncidents = """
        INSERT INTO incidents (service_id, title, status, urgency, severity, dedup_key, details, created_at_ms, updated_at_ms, canary, number, priority, held_until_ms)
        SELECT k.service_id, k.title, 'triggered', k.urgency, k.severity, k.dedup_key, k.details::jsonb, $7, $7, k.canary,
               CASE WHEN k.canary THEN nextval('canary_incident_numbers') ELSE nextval('incident_numbers') END, k.priority, k.held_until_ms
        FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $8::boolean[], $9::text[], $10::bigint[])
             WITH ORDINALITY AS k(service_id, title, urgency, severity, dedup_key, details, canary, priority, held_until_ms, n)
        ORDER BY k.n
        RETURNING id, service_id, dedup_key
        """

    static let insertAlerts = """
        INSERT INTO alerts (incident_id, summary, source, severity, event, first_at_ms, last_at_ms, fingerprint, status)
        SELECT a.incident_id, a.summary, a.source, a.severity, a.event::json, $6, $6, a.fingerprint, a.status
        FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $7::text[], $8::text[])
             AS a(incident_id, summary, source, severity, event, fingerprint, status)
        RETURNING id, incident_id
        """

    static let countDuplicates = """
        UPDATE alerts a SET count = a.count + d.n, last_at_ms = $3
        FROM unnest($1::bigint[], $2::bigint[]) AS d(alert_id, n)
        WHERE a.id = d.alert_id
        """

    static let touchIncidents = "UPDATE incidents SET updated_at_ms = $2 WHERE id = ANY($1::bigint[])"

    static let insertTimeline = """
        INSERT INTO timeline_entries (incident_id, at_ms, type, actor, details)
        SELECT t.incident_id, $4, t.type, 'integration', t.details::jsonb
        FROM unnest($1::bigint[], $2::text[], $3::text[]) WITH ORDINALITY AS t(incident_id, type, details, n)
        ORDER BY t.n
        """

    public static func write(_ triggers: [PreparedTrigger], connection: PGConnection, now: Millis) throws -> [EventResult] {
        var firstIndex: [Key: Int] = [:]
        for (index, trigger) in triggers.enumerated() {
            let key = Key(serviceID: trigger.serviceID, dedupKey: trigger.dedupKey)
            if firstIndex[key] == nil { firstIndex[key] = index }
        }
        try connection.enqueue(PGConnection.seqScansOff)  // sent with the lock query
        try connection.enqueue(PGConnection.genericPlans)
        var incidentOf: [Key: Int64] = [:]
        var firstAlertOf: [Int64: Int64] = [:]
        var created = Set<Key>()
        // Locks are taken in key order so two batches never wait on each other in a cycle.
        var missing = firstIndex.keys.sorted()
        let open = try connection.query(lockOpen, [PGArray(missing.map(\.serviceID)), PGArray(missing.map(\.dedupKey))])
        for row in 0..<open.count {
            let incidentID = open.int64(row, "id")!
            incidentOf[Key(serviceID: open.int64(row, "service_id")!, dedupKey: open.string(row, "dedup_key")!)] = incidentID
            if let alertID = open.int64(row, "first_alert") { firstAlertOf[incidentID] = alertID }
        }
        missing.removeAll { incidentOf[$0] != nil }
        if !missing.isEmpty {
            // The first trigger of each new key describes its incident. Rows go in key order, like
            // the locks above: two batches inserting overlapping keys in different orders would
            // deadlock on the unique index. A plain INSERT (no ON CONFLICT: no speculative
            // insertion) — if another transaction created one of these keys since the lock query,
            // the unique index refuses it and the whole batch runs again, joining that incident.
            let firsts = missing.map { triggers[firstIndex[$0]!] }
            let inserted: PGResult
            do {
                inserted = try connection.query(
                    insertIncidents,
                    [PGArray(firsts.map(\.serviceID)), PGArray(firsts.map(\.summary)), PGArray(firsts.map(\.urgency.rawValue)),
                     PGArray(firsts.map(\.severity)), PGArray(firsts.map(\.dedupKey)), PGArray(firsts.map(\.detailsJSON)), now,
                     PGArray(firsts.map(\.canary)), PGArray(firsts.map(\.priority)), PGArray(firsts.map(\.heldUntil))])
            } catch let error as PostgresError where error.isUniqueViolation {
                throw ConcurrentCreation()
            }
            for row in 0..<inserted.count {
                let key = Key(serviceID: inserted.int64(row, "service_id")!, dedupKey: inserted.string(row, "dedup_key")!)
                incidentOf[key] = inserted.int64(row, "id")!
                created.insert(key)
            }
        }

        var results: [EventResult] = []
        results.reserveCapacity(triggers.count)
        var alerts: (incident: [Int64], summary: [String], source: [String], severity: [String], event: [String], fingerprint: [String?], status: [String]) =
            ([], [], [], [], [], [], [])
        var duplicates: [Int64: Int] = [:]
        var timeline: (incident: [Int64], type: [String], details: [String]) = ([], [], [])
        var announcements: [(method: String, body: [UInt8])] = []
        var announced = Set<Key>()
        for trigger in triggers {
            let key = key(trigger)
            let incidentID = incidentOf[key]!
            timeline.incident.append(incidentID)
            if created.contains(key), announced.insert(key).inserted {
                alerts.incident.append(incidentID)
                alerts.summary.append(trigger.summary)
                alerts.source.append(trigger.source)
                alerts.severity.append(trigger.severity)
                alerts.event.append(trigger.eventJSON)
                alerts.fingerprint.append(trigger.alertFingerprint)
                alerts.status.append(trigger.alertStatus)
                timeline.type.append(TimelineType.trigger.rawValue)
                timeline.details.append(JSON.object(["summary": trigger.summary, "source": trigger.source, "dedup_key": trigger.dedupKey]))
                let messageID = Outbox.newMessageID()
                announcements.append((
                    Assignment.IncidentTriggered.name,
                    IncidentTriggeredRequest(messageID: messageID, incidentID: UInt64(incidentID), triggeredAtMs: now).wireBytes()))
                results.append(EventResult(dedupKey: trigger.dedupKey, incidentID: UInt64(incidentID), outcome: .created, message: "incident created"))
            } else {
                duplicates[incidentID, default: 0] += 1
                timeline.type.append(TimelineType.alertDeduplicated.rawValue)
                timeline.details.append(JSON.object(["summary": trigger.summary, "source": trigger.source]))
                results.append(EventResult(
                    dedupKey: trigger.dedupKey, incidentID: UInt64(incidentID), outcome: .deduplicated,
                    message: "joined the open incident with this dedup key"))
            }
        }
        // What follows is queued and goes out with COMMIT: one round trip for the rest of the batch.
        // The new alerts' ids are read back only when a duplicate in this batch needs them.
        let alertParameters: [any PGEncodable] = [
            PGArray(alerts.incident), PGArray(alerts.summary), PGArray(alerts.source), PGArray(alerts.severity),
            PGArray(alerts.event), now, PGArray(alerts.fingerprint), PGArray(alerts.status)]
        var alertsWritten = alerts.incident.isEmpty
        if !alertsWritten, duplicates.keys.contains(where: { firstAlertOf[$0] == nil }) {
            let inserted = try connection.query(insertAlerts, alertParameters)
            for row in 0..<inserted.count { firstAlertOf[inserted.int64(row, "incident_id")!] = inserted.int64(row, "id")! }
            alertsWritten = true
        }
        // The rest touch different rows of different tables: one statement (`combine`).
        try connection.combine {
            if !alertsWritten { try connection.enqueue(insertAlerts, alertParameters) }
            if !duplicates.isEmpty {
                // The count goes on the incident's first alert: found by the lock query, or inserted just above.
                let ids = duplicates.keys.sorted()
                let counted = ids.filter { firstAlertOf[$0] != nil }
                try connection.enqueue(
                    countDuplicates, [PGArray(counted.map { firstAlertOf[$0]! }), PGArray(counted.map { duplicates[$0]! }), now])
                try connection.enqueue(touchIncidents, [PGArray(ids), now])
            }
            try connection.enqueue(insertTimeline, [PGArray(timeline.incident), PGArray(timeline.type), PGArray(timeline.details), now])
            if !announcements.isEmpty {
                // One outbox row for the batch's new incidents: the relay sends each message as its own
                // call, with its own message id (Assignment's inbox), and deletes the row when all are OK.
                try connection.enqueue(
                    Outbox.insert,
                    [Outbox.newMessageID(), Outbox.Destination.assignment, Outbox.bundleMethod, Outbox.bundle(announcements), now])
            }
        }
        // What a front door writes with its trigger (an Alertmanager notification's alerts, an
        // Opsgenie request's outcome): in the same transaction, so under the same commit.
        let rows = BatchedRows()
        for (trigger, result) in zip(triggers, results) {
            try trigger.followUp?(connection, result, now, rows)
        }
        try rows.enqueue(connection)
        return results
    }

    private static func key(_ trigger: PreparedTrigger) -> Key {
        Key(serviceID: trigger.serviceID, dedupKey: trigger.dedupKey)
    }
}

/// What a front door writes beside an event, in the event's own transaction, given its result:
/// rows into `rows` (one multi-row statement per kind for the whole batch), other statements
/// enqueued (they go out with COMMIT). Runs again if the transaction does.
public typealias TriggerFollowUp = @Sendable (_ connection: PGConnection, _ result: EventResult, _ now: Millis, _ rows: BatchedRows) throws -> Void

/// Rows a batch's follow-ups add, written with one `INSERT … SELECT FROM unnest(…)` per statement
/// kind (a group commit's worth of Opsgenie request outcomes is one statement, not one each).
/// Used inside one transaction by one task.
public final class BatchedRows: @unchecked Sendable {
    /// A column of a batched statement: its values go as one array parameter.
    public enum Value: Sendable {
        case text(String?)
        case int(Int64)
        case bool(Bool)
    }

    /// `sql` takes one array parameter per column, $1 … $n, in order.
    public struct Statement: Hashable, Sendable {
        public var sql: String
        public init(_ sql: String) { self.sql = sql }
    }

    private var order: [Statement] = []
    private var rows: [Statement: [[Value]]] = [:]

    public init() {}

    public func add(_ statement: Statement, _ row: [Value]) {
        if rows[statement] == nil { order.append(statement) }
        rows[statement, default: []].append(row)
    }

    public func enqueue(_ connection: PGConnection) throws {
        for statement in order {
            guard let batch = rows[statement], let width = batch.first?.count else { continue }
            let parameters: [any PGEncodable] = (0..<width).map { column -> any PGEncodable in
                switch batch[0][column] {
                case .text: PGArray(batch.map { if case let .text(value) = $0[column] { value } else { nil } })
                case .int: PGArray(batch.map { if case let .int(value) = $0[column] { value } else { 0 } })
                case .bool: PGArray(batch.map { if case let .bool(value) = $0[column] { value } else { false } })
                }
            }
            try connection.enqueue(statement.sql, parameters)
        }
        order.removeAll()
        rows.removeAll()
    }
}

/// A trigger that passed validation, routing and the rate limit (Ingest's), ready to be written
/// by the group commit.
public struct PreparedTrigger: Sendable {
    public var serviceID: Int64
    public var dedupKey: String
    public var summary: String
    public var source: String
    public var severity: String
    public var urgency: Urgency
    public var detailsJSON: String
    public var eventJSON: String
    /// Klaxon's canary (issue 26): a synthetic incident, numbered apart and listed nowhere.
    public var canary = false
    /// Written in the trigger's transaction once its incident is known (see `TriggerFollowUp`).
    public var followUp: TriggerFollowUp?
    /// A new incident's priority (Opsgenie's P1–P5), nil for none.
    public var priority: String?
    /// The new incident's first alert as a front door knows it (Alertmanager: its fingerprint and
    /// firing/resolved); nil and "" for the others.
    public var alertFingerprint: String?
    public var alertStatus = ""
    /// A maintenance window holds the new incident until then (nobody paged); nil for none.
    public var heldUntil: Millis?

    public init(
        serviceID: Int64, dedupKey: String, summary: String, source: String, severity: String, urgency: Urgency, detailsJSON: String,
        eventJSON: String, canary: Bool = false, followUp: TriggerFollowUp? = nil, priority: String? = nil,
        alertFingerprint: String? = nil, alertStatus: String = ""
    ) {
        self.canary = canary
        self.followUp = followUp
        self.priority = priority
        self.alertFingerprint = alertFingerprint
        self.alertStatus = alertStatus
        self.serviceID = serviceID
        self.dedupKey = dedupKey
        self.summary = summary
        self.source = source
        self.severity = severity
        self.urgency = urgency
        self.detailsJSON = detailsJSON
        self.eventJSON = eventJSON
    }
}
