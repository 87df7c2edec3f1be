import Foundation
import KlaxonDomain
import Shared
import Synchronization

/// Change events (PagerDuty's Change Events API: deploys, configuration changes) per service, and
/// the ones that came just before an incident: the first thing a responder wants to see.
public enum ChangeStore {
    /// How far before an incident its service's changes count as "recent"
    /// (`KLAXON_CHANGE_WINDOW_HOURS`, set by Assignment at start; 4 hours by default).
    public static let windowMs = Atomic<Int64>(4 * 3_600_000)
    /// At most this many recent changes go with a page (the newest).
    public static let onPages = 3

    public static func insert(
        _ connection: PGConnection, serviceID: Int64, summary: String, source: String, atMs: Millis, receivedAtMs: Millis,
        customDetailsJSON: String, linksJSON: String
    ) throws {
        try connection.query(
            """
            INSERT INTO change_events (service_id, summary, source, at_ms, received_at_ms, custom_details, links)
            VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb)
            """, [serviceID, summary, source, atMs, receivedAtMs, customDetailsJSON, linksJSON])
    }

    /// A service's changes, newest first; with `before`, only those in the window before it.
    public static func list(_ connection: PGConnection, serviceID: Int64, before: Millis? = nil, limit: Int) throws -> [ChangeEventInfo] {
        let rows = try connection.query(
            """
            SELECT id, service_id, summary, source, at_ms, received_at_ms, custom_details::text AS details, links::text AS links
            FROM change_events
            WHERE service_id = $1 AND ($2::bigint IS NULL OR (at_ms <= $2::bigint AND at_ms > $2::bigint - $3::bigint))
            ORDER BY at_ms DESC, id DESC LIMIT $4
            """, [serviceID, before, windowMs.load(ordering: .relaxed), Int64(limit)])
        return (0..<rows.count).map { row in
            ChangeEventInfo(
                id: rows.uint64(row, "id")!, serviceID: rows.uint64(row, "service_id")!, summary: rows.string(row, "summary")!,
                source: rows.string(row, "source")!, atMs: rows.int64(row, "at_ms")!, receivedAtMs: rows.int64(row, "received_at_ms")!,
                customDetails: JSON.stringMap(rows.string(row, "details") ?? "{}"), links: links(rows.string(row, "links") ?? "[]"))
        }
    }

    static func links(_ text: String) -> [ChangeLink] {
        guard text != "[]", let items = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [[String: Any]] else { return [] }
        return items.map { ChangeLink(href: $0["href"] as? String ?? "", text: $0["text"] as? String ?? "") }
    }

    /// The recent changes as a page carries them, from `loadMany`'s `recent_changes` column.
    static func recent(_ text: String?) -> [RecentChange] {
        guard let text, text != "[]", let items = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [[String: Any]] else { return [] }
        return items.map { item in
            RecentChange(
                summary: item["summary"] as? String ?? "", source: item["source"] as? String ?? "",
                atMs: (item["at_ms"] as? NSNumber)?.int64Value ?? 0,
                linkHrefs: (item["links"] as? [[String: Any]])?.compactMap { $0["href"] as? String } ?? [])
        }
    }
}
