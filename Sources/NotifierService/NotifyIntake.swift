import Foundation
import KlaxonDomain
import Logging
import Shared

/// Expands notify requests into scheduled notifications, one per matching rule, durably.
public struct NotifyIntake: Sendable {
    static let consumer = "notifier"
    let pool: PostgresPool
    let clock: any WallClock
    let dispatcherWaker: Waker
    let logger: Logger

    public init(pool: PostgresPool, clock: any WallClock, dispatcherWaker: Waker, logger: Logger) {
        self.pool = pool
        self.clock = clock
        self.dispatcherWaker = dispatcherWaker
        self.logger = logger
    }

    public func notify(_ request: NotifyRequest) async throws {
        try Self.validate(request)
        let scheduled: Int
        do {
            scheduled = try await schedule([request])
        } catch {
            // The sender's outbox retries this request with backoff; other requests go on.
            logger.error("notify request failed; retried by the sender with backoff", metadata: [
                "incident.id": "\(request.incidentID)", "user.id": "\(request.userID)", "error": "\(error)"])
            throw error
        }
        if scheduled > 0 { dispatcherWaker.poke() }
    }

    /// A batch of notify requests (one outbox bundle from Assignment): one transaction for all,
    /// or each on its own if that fails, so one bad request never holds up the others.
    public func notifyBatch(_ batch: NotifyBatchRequest) async throws -> BatchReply {
        var scheduled = 0
        let reply = try await BatchCall.apply(batch.requests, logger: logger, together: { requests in
            for request in requests { try Self.validate(request) }
            scheduled = try await schedule(requests)
        }, alone: { request in
            try await notify(request)
        })
        if scheduled > 0 { dispatcherWaker.poke() }
        return reply
    }

    static func validate(_ request: NotifyRequest) throws {
        var violations: [FieldViolation] = []
        if request.requestID.isEmpty { violations.append(FieldViolation(field: "request_id", description: "is required")) }
        if request.incidentID == 0 { violations.append(FieldViolation(field: "incident_id", description: "is required")) }
        if request.userID == 0 { violations.append(FieldViolation(field: "user_id", description: "is required")) }
        if request.snapshot == nil { violations.append(FieldViolation(field: "snapshot", description: "is required")) }
        guard violations.isEmpty else { throw RPCError.invalidArgument(violations) }
    }

    struct Pair: Hashable {
        var incident: Int64
        var user: Int64
    }

    /// What still waits for each (incident, user) pair ($1, $2: distinct pairs), locked in id
    /// order. Reached through notifications_incident_user (every notification) with the status
    /// tested above the fence (`OFFSET 0`), never through a pending-only index: the planner takes
    /// those for empty after an ANALYZE made while nothing was pending, and would read every
    /// pending notification for each batch, however long the backlog (migration 0029,
    /// `NotifyIntakePlanTests`), with seq scans off (`PGConnection.seqScansOff`) for a plan made on
    /// empty tables. Rows of a pair no longer pending are locked too; a pair has few.
    static let waitingSQL = """
        SELECT p.id::text AS id, p.incident_id, p.user_id, p.rule_id, p.request_id, p.minute_zero, p.requested_at_ms,
               p.lease_until_ms, p.reason
        FROM (SELECT n.id, n.incident_id, n.user_id, n.rule_id, n.request_id, n.minute_zero, n.requested_at_ms, n.lease_until_ms,
                     n.reason, n.status
              FROM unnest($1::bigint[], $2::bigint[]) AS k(incident_id, user_id)
              JOIN notifications n ON n.incident_id = k.incident_id AND n.user_id = k.user_id
              ORDER BY n.id OFFSET 0) p
        WHERE p.status = 'pending'
        FOR UPDATE OF p
        """

    /// Expands the requests into notifications in one transaction: one inbox statement, one
    /// query for every user's rules, one for what still waits, then one set-based write of the
    /// notifications and their timeline entries (and one of superseded ones, when there are).
    private func schedule(_ requests: [NotifyRequest]) async throws -> Int {
        let now = clock.nowMs()
        return try await pool.transaction { connection -> Int in
            let fresh = try Inbox.claim(connection, consumer: Self.consumer, messageIDs: requests.map(\.requestID), now: now)
            var seen = Set<String>()
            let todo = requests.filter { fresh.contains($0.requestID) && seen.insert($0.requestID).inserted }
            guard !todo.isEmpty else { return 0 }
            let users = Array(Set(todo.map { Int64($0.userID) }))
            let ruleRows = try connection.query(
                """
                SELECT id, user_id, contact_method_id, start_delay_seconds, urgency FROM notification_rules
                WHERE user_id = ANY($1::bigint[]) ORDER BY id
                """, [PGArray(users)])
            var rules: [Int64: [NotificationRule]] = [:]
            for row in 0..<ruleRows.count {
                rules[ruleRows.int64(row, "user_id")!, default: []].append(NotificationRule(
                    id: ruleRows.uint64(row, "id")!, contactMethodID: ruleRows.uint64(row, "contact_method_id")!,
                    startDelaySeconds: UInt32(ruleRows.int(row, "start_delay_seconds")!),
                    urgency: Urgency(rawValue: ruleRows.string(row, "urgency")!) ?? .high))
            }
            // The supersede rule is NotificationCore's; here: load what waits, mark what it names.
            let pairs = Array(Set(todo.map { Pair(incident: Int64($0.incidentID), user: Int64($0.userID)) }))
            try connection.enqueue(PGConnection.seqScansOff)  // sent with the lookup
            let pendingRows = try connection.query(Self.waitingSQL, [PGArray(pairs.map(\.incident)), PGArray(pairs.map(\.user))])
            var waiting: [Pair: [WaitingNotification]] = [:]
            for row in 0..<pendingRows.count {
                waiting[Pair(incident: pendingRows.int64(row, "incident_id")!, user: pendingRows.int64(row, "user_id")!), default: []].append(
                    WaitingNotification(
                        id: pendingRows.string(row, "id")!, ruleID: pendingRows.uint64(row, "rule_id")!,
                        requestID: pendingRows.string(row, "request_id")!, minuteZero: pendingRows.bool(row, "minute_zero")!,
                        requestedAt: pendingRows.int64(row, "requested_at_ms")!, leaseUntil: pendingRows.int64(row, "lease_until_ms")!,
                        reason: NotifyReason(rawValue: pendingRows.string(row, "reason")!) ?? .assigned))
            }
            var scheduled = 0
            // Written after the loop as three set-based statements, whatever the batch's size.
            var inserts: (id: [String], request: [String], rule: [Int64], incident: [Int64], user: [Int64], method: [Int64],
                          reason: [String], minuteZero: [Bool], snapshot: [[UInt8]], requestedAt: [Int64], dueAt: [Int64]) =
                ([], [], [], [], [], [], [], [], [], [], [])
            var supersededIDs: [String] = []
            var entries: [(incidentID: Int64, entry: TimelineEntry)] = []
            for request in todo {
                let snapshot = request.snapshot!
                let reason = request.reason ?? .assigned
                let urgency = snapshot.urgency ?? .high
                let pair = Pair(incident: Int64(request.incidentID), user: Int64(request.userID))
                let incidentID = pair.incident
                let superseded = NotificationCore.superseded(
                    waiting[pair] ?? [], byRequest: request.requestID, reason: reason, requestedAt: request.requestedAtMs, now: now)
                if !superseded.isEmpty {
                    let ids = Set(superseded.map(\.id))
                    waiting[pair]?.removeAll { ids.contains($0.id) }
                    supersededIDs += superseded.map(\.id)
                }
                for notification in superseded {
                    entries.append((incidentID, TimelineEntry(at: now, type: .notifySkipped, actor: "notifier", details: [
                        "notification": notification.id, "user": String(request.userID),
                        "rule": String(notification.ruleID), "reason": "superseded", "by_request": request.requestID,
                    ])))
                }
                let plan = NotificationCore.expand(rules: rules[pair.user] ?? [], urgency: urgency, requestedAt: request.requestedAtMs)
                if plan.isEmpty {
                    entries.append((incidentID, TimelineEntry(
                        at: now, type: .notifySkipped, actor: "notifier",
                        details: ["user": String(request.userID), "reason": "no notification rule for \(urgency.rawValue) urgency"])))
                    continue
                }
                let snapshotBytes = snapshot.wireBytes()
                for item in plan {
                    let id = RandomID.uuid()
                    inserts.id.append(id)
                    inserts.request.append(request.requestID)
                    inserts.rule.append(Int64(item.ruleID))
                    inserts.incident.append(incidentID)
                    inserts.user.append(Int64(request.userID))
                    inserts.method.append(Int64(item.contactMethodID))
                    inserts.reason.append(reason.rawValue)
                    inserts.minuteZero.append(item.minuteZero)
                    inserts.snapshot.append(snapshotBytes)
                    inserts.requestedAt.append(request.requestedAtMs)
                    inserts.dueAt.append(item.dueAt)
                    entries.append((incidentID, TimelineEntry(
                        at: now, type: .notifyScheduled, actor: "notifier",
                        details: ["user": String(request.userID), "rule": String(item.ruleID), "notification": id,
                                  "due_at_ms": String(item.dueAt)])))
                    waiting[pair, default: []].append(WaitingNotification(
                        id: id, ruleID: item.ruleID, requestID: request.requestID, minuteZero: item.minuteZero,
                        requestedAt: request.requestedAtMs, leaseUntil: 0, reason: reason))
                }
                scheduled += plan.count
            }
            // The notifications and their timeline entries: one statement (`combine`).
            try connection.combine {
                if !inserts.id.isEmpty {
                    // Never a conflict here (the inbox admitted these requests once); kept as a guard.
                    try connection.enqueue(
                        """
                        INSERT INTO notifications (id, request_id, rule_id, incident_id, user_id, contact_method_id, reason,
                                                   minute_zero, snapshot, requested_at_ms, due_at_ms)
                        SELECT id::uuid, request_id, rule_id, incident_id, user_id, contact_method_id, reason, minute_zero, snapshot,
                               requested_at_ms, due_at_ms
                        FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::text[],
                                    $8::boolean[], $9::bytea[], $10::bigint[], $11::bigint[])
                             AS n(id, request_id, rule_id, incident_id, user_id, contact_method_id, reason, minute_zero, snapshot,
                                  requested_at_ms, due_at_ms)
                        ON CONFLICT (request_id, rule_id) DO NOTHING
                        """,
                        [PGArray(inserts.id), PGArray(inserts.request), PGArray(inserts.rule), PGArray(inserts.incident), PGArray(inserts.user),
                         PGArray(inserts.method), PGArray(inserts.reason), PGArray(inserts.minuteZero), PGArray(bytea: inserts.snapshot),
                         PGArray(inserts.requestedAt), PGArray(inserts.dueAt)])
                }
                try Timeline.enqueueMany(connection, entries)
            }
            if !supersededIDs.isEmpty {
                // After the INSERT: a request may supersede a notification an earlier one of this batch scheduled.
                try connection.enqueue(
                    "UPDATE notifications SET status = 'skipped', finished_at_ms = $2, last_error = 'superseded' WHERE id = ANY($1::text[]::uuid[])",
                    [PGArray(supersededIDs), now])
            }
            return scheduled
        }
    }
}
