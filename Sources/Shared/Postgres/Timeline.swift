import Foundation
import KlaxonDomain

/// Writes incident timeline entries; callers do so in the transaction of the change.
public enum Timeline {
    public static func append(_ connection: PGConnection, incidentID: Int64, _ entry: TimelineEntry) throws {
        try connection.query(
            "INSERT INTO timeline_entries (incident_id, at_ms, type, actor, details) VALUES ($1, $2, $3, $4, $5::jsonb)",
            [incidentID, entry.at, entry.type.rawValue, entry.actor, JSON.object(entry.details)])
    }

    /// `append`, queued: sent with the transaction's next statement (one round trip for many).
    public static func enqueue(_ connection: PGConnection, incidentID: Int64, _ entry: TimelineEntry) throws {
        try connection.enqueue(
            "INSERT INTO timeline_entries (incident_id, at_ms, type, actor, details) VALUES ($1, $2, $3, $4, $5::jsonb)",
            [incidentID, entry.at, entry.type.rawValue, entry.actor, JSON.object(entry.details)])
    }

    /// Many entries (on many incidents) in one statement, queued like `enqueue`.
    public static func enqueueMany(_ connection: PGConnection, _ entries: [(incidentID: Int64, entry: TimelineEntry)]) throws {
        guard !entries.isEmpty else { return }
        try connection.enqueue(
            """
            INSERT INTO timeline_entries (incident_id, at_ms, type, actor, details)
            SELECT i, a, t, w, d::jsonb FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[]) AS e(i, a, t, w, d)
            """,
            [PGArray(entries.map(\.incidentID)), PGArray(entries.map(\.entry.at)), PGArray(entries.map(\.entry.type.rawValue)),
             PGArray(entries.map(\.entry.actor)), PGArray(entries.map { JSON.object($0.entry.details) })])
    }

    public static func entries(_ connection: PGConnection, incidentID: Int64) throws -> [TimelineEntry] {
        let rows = try connection.query(
            "SELECT at_ms, type, actor, details::text AS details FROM timeline_entries WHERE incident_id = $1 ORDER BY id",
            [incidentID])
        return (0..<rows.count).compactMap { row in
            guard let type = TimelineType(rawValue: rows.string(row, "type")!) else { return nil }
            return TimelineEntry(
                at: rows.int64(row, "at_ms")!, type: type, actor: rows.string(row, "actor")!,
                details: JSON.stringMap(rows.string(row, "details") ?? "{}"))
        }
    }
}
