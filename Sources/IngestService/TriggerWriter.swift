import KlaxonDomain
import Shared

/// Writes a batch of triggers in one transaction with a fixed number of statements, whatever the
/// batch size: lock the open incidents of the batch's (service, dedup key)s, create the missing
/// ones, then one multi-row statement each for alerts, counts, timeline and outbox.
enum TriggerWriter {
    private struct Key: Hashable, Comparable {
        var serviceID: Int64
        var dedupKey: String
        static func < (a: Key, b: Key) -> Bool { (a.serviceID, a.dedupKey) < (b.serviceID, b.dedupKey) }
    }

    static func write(_ triggers: [PreparedTrigger], connection: PGConnection, now: Millis) throws -> [EventResult] {
        var firstIndex: [Key: Int] = [:]
        for (index, trigger) in triggers.enumerated() {
            let key = Key(serviceID: trigger.serviceID, dedupKey: trigger.dedupKey)
            if firstIndex[key] == nil { firstIndex[key] = index }
        }
        var incidentOf: [Key: Int64] = [:]
        var created = Set<Key>()
        // Locks are taken in key order so two batches never wait on each other in a cycle.
        var missing = firstIndex.keys.sorted()
        for _ in 0..<5 where !missing.isEmpty {
            let open = try connection.query(
                """
                SELECT i.id, i.service_id, i.dedup_key
                FROM incidents i JOIN unnest($1::bigint[], $2::text[]) AS k(service_id, dedup_key)
                  ON i.service_id = k.service_id AND i.dedup_key = k.dedup_key
                WHERE i.status <> 'resolved'
                ORDER BY i.service_id, i.dedup_key
                FOR UPDATE OF i
                """, [PGArray(missing.map(\.serviceID)), PGArray(missing.map(\.dedupKey))])
            for row in 0..<open.count {
                incidentOf[Key(serviceID: open.int64(row, "service_id")!, dedupKey: open.string(row, "dedup_key")!)] = open.int64(row, "id")!
            }
            missing.removeAll { incidentOf[$0] != nil }
            guard !missing.isEmpty else { break }
            // The first trigger of each new key describes its incident. Rows go in key order, like
            // the locks above: two batches inserting overlapping keys in different orders would
            // deadlock on the unique index.
            let firsts = missing.map { triggers[firstIndex[$0]!] }
            let inserted = try connection.query(
                """
                INSERT INTO incidents (service_id, title, status, urgency, severity, dedup_key, details, created_at_ms, updated_at_ms)
                SELECT k.service_id, k.title, 'triggered', k.urgency, k.severity, k.dedup_key, k.details::jsonb, $7, $7
                FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
                     WITH ORDINALITY AS k(service_id, title, urgency, severity, dedup_key, details, n)
                ORDER BY k.n
                ON CONFLICT (service_id, dedup_key) WHERE status <> 'resolved' DO NOTHING
                RETURNING id, service_id, dedup_key
                """,
                [PGArray(firsts.map(\.serviceID)), PGArray(firsts.map(\.summary)), PGArray(firsts.map(\.urgency.rawValue)),
                 PGArray(firsts.map(\.severity)), PGArray(firsts.map(\.dedupKey)), PGArray(firsts.map(\.detailsJSON)), now])
            for row in 0..<inserted.count {
                let key = Key(serviceID: inserted.int64(row, "service_id")!, dedupKey: inserted.string(row, "dedup_key")!)
                incidentOf[key] = inserted.int64(row, "id")!
                created.insert(key)
            }
            // Keys another transaction created meanwhile are found (and joined) on the next pass.
            missing.removeAll { incidentOf[$0] != nil }
        }
        guard missing.isEmpty else { throw RPCError(.aborted, "the incident for a dedup key kept changing; retry") }

        var results: [EventResult] = []
        var alerts: (incident: [Int64], summary: [String], source: [String], severity: [String], event: [String]) = ([], [], [], [], [])
        var duplicates: [Int64: Int] = [:]
        var timeline: (incident: [Int64], type: [String], details: [String]) = ([], [], [])
        var outbox: (id: [String], body: [[UInt8]]) = ([], [])
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
                timeline.type.append(TimelineType.trigger.rawValue)
                timeline.details.append(JSON.object(["summary": trigger.summary, "source": trigger.source, "dedup_key": trigger.dedupKey]))
                let messageID = Outbox.newMessageID()
                outbox.id.append(messageID)
                outbox.body.append(IncidentTriggeredRequest(messageID: messageID, incidentID: UInt64(incidentID), triggeredAtMs: now).wireBytes())
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
        if !alerts.incident.isEmpty {
            try connection.query(
                """
                INSERT INTO alerts (incident_id, summary, source, severity, event, first_at_ms, last_at_ms)
                SELECT a.incident_id, a.summary, a.source, a.severity, a.event::jsonb, $6, $6
                FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[]) AS a(incident_id, summary, source, severity, event)
                """,
                [PGArray(alerts.incident), PGArray(alerts.summary), PGArray(alerts.source), PGArray(alerts.severity),
                 PGArray(alerts.event), now])
        }
        if !duplicates.isEmpty {
            let ids = duplicates.keys.sorted()
            try connection.query(
                """
                UPDATE alerts a SET count = a.count + d.n, last_at_ms = $3
                FROM unnest($1::bigint[], $2::int[]) AS d(incident_id, n)
                WHERE a.id = (SELECT min(x.id) FROM alerts x WHERE x.incident_id = d.incident_id)
                """, [PGArray(ids), PGArray(ids.map { duplicates[$0]! }), now])
            try connection.query(
                "UPDATE incidents SET updated_at_ms = $2 WHERE id = ANY($1::bigint[])", [PGArray(ids), now])
        }
        try connection.query(
            """
            INSERT INTO timeline_entries (incident_id, at_ms, type, actor, details)
            SELECT t.incident_id, $4, t.type, 'integration', t.details::jsonb
            FROM unnest($1::bigint[], $2::text[], $3::text[]) WITH ORDINALITY AS t(incident_id, type, details, n)
            ORDER BY t.n
            """, [PGArray(timeline.incident), PGArray(timeline.type), PGArray(timeline.details), now])
        if !outbox.id.isEmpty {
            try connection.query(
                """
                INSERT INTO outbox (message_id, destination, method, body, created_at_ms, next_attempt_at_ms)
                SELECT o.message_id, $5, $3, o.body, $4, $4
                FROM unnest($1::text[], $2::bytea[]) AS o(message_id, body)
                """, [PGArray(outbox.id), PGArray(bytea: outbox.body), IncidentTriggeredRequest.method, now, Outbox.Destination.assignment])
        }
        return results
    }

    private static func key(_ trigger: PreparedTrigger) -> Key {
        Key(serviceID: trigger.serviceID, dedupKey: trigger.dedupKey)
    }
}
