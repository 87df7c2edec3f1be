import KlaxonDomain
import Logging
import NIOConcurrencyHelpers
import Shared

/// Pages: the `notifications` table. A claim reads the incident as it is now and decides
/// send-or-skip with `NotificationCore` (minute zero always; a delayed page while its family
/// still needs the person); outcomes are `notify_sent`, `notify_skipped`, `notify_retry`,
/// `notify_failed` in the incident's timeline, the address masked.
struct PageQueue: DeliveryQueue {
    let channels: [String: any DeliveryChannel]
    let logger: Logger
    /// Which contact methods send to each address (learnt from claims): the claim passes over a
    /// full address's pages by contact method, so it stays an index scan in due order.
    private let addressMethods = NIOLockedValueBox([String: Set<Int64>]())

    /// A page that waited this long for a destination still backing off is failed (the engine's
    /// delivery window).
    let windowMs: Millis

    init(channels: [String: any DeliveryChannel], windowMs: Millis = 900_000, logger: Logger) {
        self.channels = channels
        self.windowMs = windowMs
        self.logger = logger
    }

    var sharesBackoff: Bool { true }

    func methods(_ addresses: Set<String>) -> [Int64] {
        addresses.isEmpty ? [] : addressMethods.withLockedValue { map in addresses.flatMap { map[$0] ?? [] } }
    }

    /// Passes over `full` addresses' pages (saturated), and `closed` addresses' pages never
    /// attempted (backing off) except those due longer than the delivery window ago: the engine
    /// fails them if their address is still failing.
    func claim(
        _ connection: PGConnection, now: Millis, limit: Int, leaseMs: Millis, full: Set<String>, closed: Set<String>,
        inFlight: [String: Int], perDestination: Int
    ) throws -> (items: [DeliveryItem], more: Bool) {
        let passOver = methods(full)
        let holdBack = methods(closed)
        // Room left per address (its free slots): the claim leases no more than fits, so few are
        // put back (a put-back row costs two writes for nothing).
        let busy = inFlight.filter { $0.value > 0 }
        let room = (addresses: Array(busy.keys), free: busy.values.map { Int64(max(perDestination - $0, 0)) })
        let rows = try connection.query(
            """
            WITH candidates AS (
                SELECT c.id, c.due_at_ms, m.address,
                       row_number() OVER (PARTITION BY m.address ORDER BY c.due_at_ms) AS rank
                FROM (SELECT n.id, n.due_at_ms, n.contact_method_id FROM notifications n
                      WHERE n.status = 'pending' AND n.due_at_ms <= $1 AND n.lease_until_ms <= $1
                        AND NOT (n.contact_method_id = ANY($4::bigint[]))
                        AND (n.attempts > 0 OR NOT (n.contact_method_id = ANY($6::bigint[])) OR n.due_at_ms <= $1 - $5::bigint)
                      ORDER BY n.due_at_ms LIMIT $7) c
                JOIN contact_methods m ON m.id = c.contact_method_id
            ), due AS (
                SELECT n.id FROM notifications n JOIN candidates c ON c.id = n.id
                LEFT JOIN unnest($8::text[], $9::bigint[]) AS r(address, free) ON r.address = c.address
                WHERE c.rank <= coalesce(r.free, $10::bigint) AND n.status = 'pending' AND n.lease_until_ms <= $1
                ORDER BY c.due_at_ms LIMIT $2 FOR UPDATE OF n SKIP LOCKED
            ), spare AS (
                -- Whether the candidates hold more that fits than this claim takes: work left behind.
                SELECT 1 FROM candidates c LEFT JOIN unnest($8::text[], $9::bigint[]) AS r(address, free) ON r.address = c.address
                WHERE c.rank <= coalesce(r.free, $10::bigint) OFFSET $2 LIMIT 1)
            UPDATE notifications n SET lease_until_ms = $1 + $3
            FROM due, users u, contact_methods c, notification_rules r, incidents i, services s
            WHERE n.id = due.id AND u.id = n.user_id AND c.id = n.contact_method_id AND r.id = n.rule_id
              AND i.id = n.incident_id AND s.id = i.service_id
            RETURNING n.id::text AS id, n.due_at_ms, n.incident_id, n.user_id, n.rule_id, n.contact_method_id, n.minute_zero, n.reason, n.snapshot,
                      n.attempts, n.first_attempt_at_ms, c.type, c.address, c.verified_at_ms IS NOT NULL AS verified, u.name, u.email, r.start_delay_seconds,
                      i.status, i.title, i.urgency, i.number, s.name AS service_name, s.id AS service_id, s.mode = 'shadow' AS shadow,
                      EXISTS (SELECT 1 FROM incident_assignments a
                              WHERE a.incident_id = n.incident_id AND a.user_id = n.user_id) AS assigned,
                      CASE WHEN n.reason = 'responder_request' THEN
                          (SELECT q.state FROM responder_requests q WHERE q.incident_id = n.incident_id AND q.user_id = n.user_id)
                      END AS request_state,
                      CASE WHEN n.reason = 'status_update' THEN
                          EXISTS (SELECT 1 FROM incident_subscribers b WHERE b.incident_id = n.incident_id AND b.user_id = n.user_id)
                      ELSE false END AS subscribed,
                      EXISTS (SELECT 1 FROM spare) AS more
            """, [now, limit, leaseMs, PGArray(passOver), windowMs, PGArray(holdBack), Int64(min(limit * 4, 2048)), PGArray(room.addresses),
                  PGArray(room.free), Int64(perDestination)])
        var learnt: [(String, Int64)] = []
        var items: [DeliveryItem] = []
        for row in 0..<rows.count {
            let id = rows.string(row, "id")!, incidentID = rows.int64(row, "incident_id")!
            let address = rows.string(row, "address")!, channel = rows.string(row, "type")!
            learnt.append((address, rows.int64(row, "contact_method_id")!))
            guard let snapshot = try? IncidentSnapshot(wire: rows.bytes(row, "snapshot") ?? []) else {
                // One bad notification never stalls the others: fail it, say why, go on.
                logger.error("notification snapshot undecodable; failed", metadata: ["notification.id": "\(id)", "incident.id": "\(incidentID)"])
                try connection.query(
                    "UPDATE notifications SET status = 'failed', finished_at_ms = $2, lease_until_ms = 0, last_error = $3 WHERE id = $1::uuid",
                    [id, now, "the notification's snapshot cannot be decoded"])
                try Timeline.append(connection, incidentID: incidentID, TimelineEntry(
                    at: now, type: .notifyFailed, actor: "notifier",
                    details: ["notification": id, "error": "the notification's snapshot cannot be decoded"]))
                continue
            }
            let status = IncidentStatus(rawValue: rows.string(row, "status")!) ?? .triggered
            let minuteZero = rows.bool(row, "minute_zero")!
            let reason = NotifyReason(rawValue: rows.string(row, "reason")!) ?? .assigned
            var current = snapshot
            current.status = status
            current.title = rows.string(row, "title")!
            current.urgency = Urgency(rawValue: rows.string(row, "urgency")!)
            current.serviceName = rows.string(row, "service_name")!
            current.atMs = now
            items.append(DeliveryItem(
                // The canary's pages (Klaxon's own loopback receiver) count in no metric: metricChannel "".
                id: id, incidentID: incidentID, what: "page", channel: channel,
                metricChannel: channel == CanaryReceiver.kind ? "" : channel, address: address,
                contactMethodID: rows.int64(row, "contact_method_id"), deliverer: channels[channel],
                notConfigured: ChannelKind.named(channel)?.notConfigured ?? "unknown channel \(channel)",
                reason: reason,
                decision: NotificationCore.decide(DuePage(
                    reason: reason, minuteZero: minuteZero, currentStatus: status, userStillAssigned: rows.bool(row, "assigned")!,
                    requestState: rows.string(row, "request_state").flatMap(RequestState.init(rawValue:)),
                    stillSubscribed: rows.bool(row, "subscribed")!,
                    contactUnverified: ContactVerification.needsCode(channel) && !rows.bool(row, "verified")!)),
                snapshot: snapshot, current: current,
                user: .init(id: rows.uint64(row, "user_id")!, name: rows.string(row, "name")!, email: rows.string(row, "email")!),
                rule: .init(id: rows.uint64(row, "rule_id")!, startDelaySeconds: UInt32(rows.int(row, "start_delay_seconds")!)),
                attempts: rows.int(row, "attempts")!, firstAttemptAt: rows.int64(row, "first_attempt_at_ms"),
                dueAt: rows.int64(row, "due_at_ms")!, claimedAt: now, countsAsPage: channel != CanaryReceiver.kind,
                shadow: rows.bool(row, "shadow")! ? .init(serviceID: rows.int64(row, "service_id")!, minuteZero: minuteZero) : nil))
        }
        addressMethods.withLockedValue { map in for (address, method) in learnt { map[address, default: []].insert(method) } }
        return (items, rows.count > 0 && rows.bool(0, "more") == true)
    }

    func putBack(_ connection: PGConnection, ids: [String]) throws {
        try connection.enqueue("UPDATE notifications SET lease_until_ms = 0 WHERE id = ANY($1::text[]::uuid[])", [PGArray(ids)])
    }

    /// The first due one not leased (index order), or the end of the earliest lease, in one
    /// statement. Leases are in no index (their updates stay HOT), so the earliest lease end is
    /// looked for only when nothing is due already: with a backlog, one index lookup.
    func nextDue(_ connection: PGConnection, now: Millis, closed: Set<String>) throws -> Millis? {
        let passOver = methods(closed)
        return try connection.query(
            """
            SELECT CASE WHEN d.next <= $1 THEN d.next ELSE least(d.next,
                       (SELECT min(greatest(due_at_ms, lease_until_ms)) FROM notifications WHERE status = 'pending' AND lease_until_ms > $1)) END AS next
            FROM (SELECT (SELECT due_at_ms FROM notifications WHERE status = 'pending' AND lease_until_ms <= $1
                            AND (attempts > 0 OR NOT (contact_method_id = ANY($2::bigint[])))
                          ORDER BY due_at_ms LIMIT 1) AS next) d
            """, [now, PGArray(passOver)]).int64(0, "next")
    }

    /// A range scan of notifications_due from `now` on: rows due later are few (retries and
    /// delayed rules), whatever the backlog of due ones.
    func nextDueLater(_ connection: PGConnection, now: Millis, full: Set<String>, closed: Set<String>) throws -> Millis? {
        try connection.query(
            """
            SELECT due_at_ms AS next FROM notifications
            WHERE status = 'pending' AND due_at_ms > $1 AND NOT (contact_method_id = ANY($2::bigint[]))
              AND (attempts > 0 OR NOT (contact_method_id = ANY($3::bigint[])))
            ORDER BY due_at_ms LIMIT 1
            """, [now, PGArray(methods(full)), PGArray(methods(closed))]).int64(0, "next")
    }

    /// The outcomes at their attempts' instants, a group commit's at once: one UPDATE for the
    /// retries, one for the final outcomes, one INSERT for their timeline entries, sent as one statement. A skip or a
    /// failure keeps its reason in `last_error`; a sent notification keeps none (its failed
    /// attempts are in the timeline).
    func record(_ connection: PGConnection, _ outcomes: [(DeliveryItem, DeliveryResult)]) throws {
        // Different rows of different tables: one statement (`combine`).
        try connection.combine { try recordTogether(connection, outcomes) }
    }

    private func recordTogether(_ connection: PGConnection, _ outcomes: [(DeliveryItem, DeliveryResult)]) throws {
        var retries: (ids: [String], due: [Int64], errors: [String?], attempts: [Int64], first: [Int64?]) = ([], [], [], [], [])
        var finals: (ids: [String], status: [String], at: [Int64], why: [String?], attempts: [Int64], first: [Int64?]) = ([], [], [], [], [], [])
        var entries: [(incidentID: Int64, entry: TimelineEntry)] = []
        for (item, result) in outcomes {
            var details = [
                "notification": item.id, "user": String(item.user.id), "rule": String(item.rule.id),
                "channel": item.channel, "address": AddressMask.mask(item.address, channel: item.channel),
                "attempts": String(result.attempts),
            ]
            if let method = item.contactMethodID { details["contact_method"] = String(method) }
            let type: TimelineType
            var why: String?
            switch result.outcome {
            case let .retry(at, error):
                details["error"] = error
                details["retry_at_ms"] = String(at)
                retries.ids.append(item.id)
                retries.due.append(at)
                retries.errors.append(error)
                retries.attempts.append(Int64(result.attempts))
                retries.first.append(result.firstAttemptAt)
                entries.append((item.incidentID, TimelineEntry(at: result.at, type: .notifyRetry, actor: "notifier", details: details)))
                continue
            case let .sent(snapshot):
                details["snapshot"] = snapshot ? "true" : "false"
                type = .notifySent
            case let .skipped(reason):
                details["reason"] = reason
                why = reason
                type = .notifySkipped
            case .shadowed:
                // Shadow mode: the page is recorded, not delivered (`klaxon shadow report`).
                why = "shadow mode: recorded, not delivered"
                details["reason"] = why
                details["shadow"] = "true"
                type = .notifySkipped
                if let shadow = item.shadow {
                    try connection.enqueue(
                        """
                        INSERT INTO shadow_pages (notification_id, service_id, incident_id, user_id, channel, reason, minute_zero, due_at_ms, at_ms)
                        VALUES ($1::uuid, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (notification_id) DO NOTHING
                        """, [item.id, shadow.serviceID, item.incidentID, Int64(item.user.id), item.channel, item.reason.rawValue,
                              shadow.minuteZero, item.dueAt, result.at])
                }
            case let .failed(error):
                details["error"] = error
                why = error
                type = .notifyFailed
            }
            finals.ids.append(item.id)
            finals.status.append(result.status)
            finals.at.append(result.at)
            finals.why.append(why)
            finals.attempts.append(Int64(result.attempts))
            finals.first.append(result.firstAttemptAt)
            entries.append((item.incidentID, TimelineEntry(at: result.at, type: type, actor: "notifier", details: details)))
        }
        if !retries.ids.isEmpty {
            try connection.enqueue(
                """
                UPDATE notifications n SET due_at_ms = o.due, lease_until_ms = 0, last_error = o.error, attempts = o.attempts,
                       first_attempt_at_ms = coalesce(n.first_attempt_at_ms, o.first)
                FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[]) AS o(id, due, error, attempts, first)
                WHERE n.id = o.id::uuid
                """, [PGArray(retries.ids), PGArray(retries.due), PGArray(retries.errors), PGArray(retries.attempts), PGArray(retries.first)])
        }
        if !finals.ids.isEmpty {
            try connection.enqueue(
                """
                UPDATE notifications n SET status = o.status, finished_at_ms = o.at, lease_until_ms = 0, last_error = o.why,
                       attempts = o.attempts, first_attempt_at_ms = coalesce(n.first_attempt_at_ms, o.first)
                FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::bigint[], $6::bigint[]) AS o(id, status, at, why, attempts, first)
                WHERE n.id = o.id::uuid
                """, [PGArray(finals.ids), PGArray(finals.status), PGArray(finals.at), PGArray(finals.why), PGArray(finals.attempts),
                      PGArray(finals.first)])
        }
        try Timeline.enqueueMany(connection, entries)
    }
}
