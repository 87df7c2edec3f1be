import Foundation
import KlaxonDomain
import Shared

/// The throttle of SMS and calls per contact method, and the bundles it makes (issue 25, point 5).
/// Before a throttled page is sent, `admit` takes the method's lock and asks `ContactThrottle`:
/// not yet → the page waits until it may go (no attempt spent); now → the send is counted, and
/// every other page due for the same method that still needs sending rides along in the same
/// message (leased here, recorded sent with it, or released if it fails). So a surge of 40
/// incidents reaches a phone as a couple of messages naming them all, and each incident's
/// minute-zero page still reaches the person, in a bundle.
enum PageThrottle {
    enum Verdict: Sendable {
        case later(Millis)
        case now(riders: [Rider])
        /// Another message already carried this page (it rode along while claimed here).
        case carried
    }

    /// A page carried by another's message.
    struct Rider: Sendable {
        var id: String
        var incidentID: Int64
        var incident: WebhookMessage.BundledIncident
    }

    static func admit(
        _ connection: PGConnection, method: Int64, carrier: String, now: Millis, rules: [ThrottleRule], leaseMs: Millis
    ) throws -> Verdict {
        try connection.query("SELECT pg_advisory_xact_lock(26, $1::int)", [Int32(truncatingIfNeeded: method)])
        let state = try connection.query("SELECT status FROM notifications WHERE id = $1::uuid", [carrier]).string(0, "status")
        guard state == "pending" else { return .carried }
        let horizon = ContactThrottle.horizon(rules)
        try connection.query("DELETE FROM contact_sends WHERE contact_method_id = $1 AND at_ms <= $2", [method, now - horizon])
        let rows = try connection.query("SELECT at_ms FROM contact_sends WHERE contact_method_id = $1", [method])
        let sends = (0..<rows.count).compactMap { rows.int64($0, "at_ms") }
        let allowed = ContactThrottle.nextAllowed(sends: sends, now: now, rules: rules)
        if allowed > now { return .later(allowed) }
        try connection.query("INSERT INTO contact_sends (contact_method_id, at_ms, notification_id) VALUES ($1, $2, $3::uuid)", [method, now, carrier])
        // Riders: the method's other due pages of the assignment family that still need sending
        // (minute zero always does; a delayed one only while the incident is open and theirs),
        // leased or not — a page claimed meanwhile finds itself carried when it gets the lock —
        // but never the page of another message being sent (its send, counted within the last
        // lease, is in flight; an older carrier being retried may ride). Rows a
        // recording transaction holds for a moment are waited for, not skipped: a skipped one
        // would wait alone for the next slot. (No cycle: recorders never take this lock.)
        let riders = try connection.query(
            """
            WITH due AS (
                SELECT n.id FROM notifications n JOIN incidents i ON i.id = n.incident_id
                WHERE n.contact_method_id = $1 AND n.status = 'pending' AND n.due_at_ms <= $2
                  AND n.id <> $3::uuid AND n.id NOT IN (SELECT notification_id FROM contact_sends WHERE contact_method_id = $1 AND at_ms > $2 - $4) AND n.reason IN ('assigned', 'escalated', 'ack_timeout', 'reassigned')
                  AND (n.minute_zero OR (i.status = 'triggered' AND EXISTS (
                       SELECT 1 FROM incident_assignments a WHERE a.incident_id = n.incident_id AND a.user_id = n.user_id)))
                ORDER BY n.due_at_ms, n.incident_id LIMIT 500 FOR UPDATE OF n)
            UPDATE notifications n SET lease_until_ms = $2 + $4
            FROM due, incidents i, services s
            WHERE n.id = due.id AND i.id = n.incident_id AND s.id = i.service_id
            RETURNING n.id::text AS id, n.incident_id, i.number, i.title, s.name AS service
            """, [method, now, carrier, leaseMs])
        return .now(riders: (0..<riders.count).map { row in
            Rider(
                id: riders.string(row, "id")!, incidentID: riders.int64(row, "incident_id")!,
                incident: .init(number: riders.uint64(row, "number")!, title: riders.string(row, "title")!, service: riders.string(row, "service")!))
        }.sorted { $0.incident.number < $1.incident.number })
    }

    /// The page waits for the throttle: due again when it may go; said once in its timeline.
    static func hold(_ connection: PGConnection, _ item: DeliveryItem, until: Millis, now: Millis) throws {
        let held = try connection.query(
            "UPDATE notifications SET due_at_ms = $2, lease_until_ms = 0 WHERE id = $1::uuid AND status = 'pending' RETURNING id", [item.id, until])
        guard !held.isEmpty else { return }  // carried by another message meanwhile
        try Timeline.append(connection, incidentID: item.incidentID, TimelineEntry(
            at: now, type: .notifyThrottled, actor: "notifier",
            details: ["notification": item.id, "channel": item.channel, "until_ms": String(until),
                      "address": AddressMask.mask(item.address, channel: item.channel)]))
    }

    /// The carrier's message went: each rider is sent with it, its timeline naming the message.
    static func ridersSent(_ connection: PGConnection, _ riders: [Rider], carrier: DeliveryItem, carrierNumber: UInt64, at: Millis) throws {
        guard !riders.isEmpty else { return }
        try connection.query(
            """
            UPDATE notifications SET status = 'sent', finished_at_ms = $2, lease_until_ms = 0, last_error = NULL,
                   attempts = attempts + 1, first_attempt_at_ms = coalesce(first_attempt_at_ms, $2), bundled_in = $3::uuid
            WHERE id = ANY($1::text[]::uuid[])
            """, [PGArray(riders.map(\.id)), at, carrier.id])
        try Timeline.enqueueMany(connection, riders.map { rider in
            (rider.incidentID, TimelineEntry(at: at, type: .notifySent, actor: "notifier", details: [
                "notification": rider.id, "channel": carrier.channel, "address": AddressMask.mask(carrier.address, channel: carrier.channel),
                "bundled_in": carrier.id, "bundle": "sent in one \(carrier.channel) with #\(carrierNumber) and \(riders.count) incident(s)",
            ]))
        })
    }

    /// The carrier's message did not go: the riders are free to be claimed again, and the send
    /// does not count against the throttle.
    static func release(_ connection: PGConnection, _ riders: [Rider], carrier: String, at: Millis) throws {
        try connection.query("DELETE FROM contact_sends WHERE notification_id = $1::uuid AND at_ms = $2", [carrier, at])
        guard !riders.isEmpty else { return }
        try connection.query("UPDATE notifications SET lease_until_ms = 0 WHERE id = ANY($1::text[]::uuid[])", [PGArray(riders.map(\.id))])
    }
}
