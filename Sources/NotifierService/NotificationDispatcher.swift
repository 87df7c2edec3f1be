import KlaxonDomain
import Logging
import NIOConcurrencyHelpers
import Shared

/// Sends due notifications: claims them (FOR UPDATE SKIP LOCKED, with a lease so replicas never
/// send one twice at once), decides send-or-skip with `NotificationCore`, delivers, and records
/// the outcome in the incident's timeline at the instant of the attempt. A failed attempt is
/// retried with exponential backoff (from 1 s, doubling, capped at 60 s; a 429's Retry-After
/// instead) until the delivery window after the first attempt has passed, then the notification
/// is failed; a permanent refusal (4xx other than 408 and 429) fails it at once.
///
/// Sending is continuous (`run`): the loop claims whenever a sending slot is free and each page
/// goes out on its own task, so no page waits for a slower one. At most `maxInFlight` pages are
/// in flight, and at most `maxPerDestination` to one address: an endpoint that never answers
/// holds its own slots only, and its pages are not even claimed while they are full. Outcomes
/// are recorded by group commit (`OutcomeWriter`): one transaction for every attempt that ended
/// meanwhile.
public struct NotificationDispatcher: Sendable {
    let pool: PostgresPool
    let channels: [String: any DeliveryChannel]
    let clock: any WallClock
    let deliveryWindowMs: Millis
    let batchSize = 128
    public var maxInFlight = 512
    public var maxPerDestination = 64
    /// The loop claims again once this many slots are free (or nothing is in flight): each claim
    /// is a transaction, so it should carry a worthwhile number of pages.
    public var claimWhenFree = 32
    let slots = Slots()
    let writer: OutcomeWriter
    /// How long a claimed notification is invisible to other dispatchers: one attempt's timeout
    /// plus a margin, so a killed Notifier's pages are taken over soon after.
    let leaseMs: Millis
    let baseBackoffMs: Millis
    let maxBackoffMs: Millis = 60_000
    let incidentURLTemplate: String
    let logger: Logger

    public static let leaseMarginMs: Millis = 2_000

    public init(
        pool: PostgresPool, channels: [String: any DeliveryChannel], clock: any WallClock = SystemWallClock(),
        deliveryWindowMs: Millis = 900_000, sendTimeoutMs: Millis = 10_000, baseBackoffMs: Millis = 1_000,
        incidentURLTemplate: String = "", logger: Logger
    ) {
        self.incidentURLTemplate = incidentURLTemplate
        self.pool = pool
        self.channels = channels
        self.clock = clock
        self.deliveryWindowMs = deliveryWindowMs
        self.leaseMs = sendTimeoutMs + Self.leaseMarginMs
        self.baseBackoffMs = baseBackoffMs
        self.logger = logger
        self.writer = OutcomeWriter(pool: pool, logger: logger)
    }

    struct Claimed: Sendable {
        var id: String
        var incidentID: Int64
        var userID: Int64
        var ruleID: Int64
        var minuteZero: Bool
        var reason: NotifyReason
        var snapshot: IncidentSnapshot
        /// Attempts made before this one.
        var attempts: Int
        /// nil until an attempt was made (then the delivery window counts from it).
        var firstAttemptAt: Millis?
        var channel: String
        var address: String
        var userName: String
        var userEmail: String
        var startDelaySeconds: UInt32
        var decision: NotificationDecision
        var current: IncidentSnapshot
        var claimedAt: Millis
        /// When this attempt was due (the page latency counts from it).
        var dueAt: Millis
    }

    /// Sends what is due at `now` and waits for those sends and their outcomes; returns when the
    /// next pending notification is due. (The service sends continuously with `run`.)
    public func dispatchDue(now: Millis) async throws -> Millis? {
        let (claimed, _) = try await claim(now: now, limit: batchSize)
        await withTaskGroup(of: Void.self) { group in
            for notification in claimed {
                group.addTask {
                    await self.process(notification, now: now)
                    self.slots.release(notification.address)
                }
            }
        }
        if claimed.count == batchSize { return now }
        return try await nextDue()
    }

    /// The service's sending: `loop` claims whenever a slot is free (a finished send pokes it),
    /// each claimed page is sent on its own task. Ends when the loop ends (graceful shutdown),
    /// after the sends in flight have finished and their outcomes are recorded.
    public func run(_ loop: DueWorkLoop) async {
        let (stream, continuation) = AsyncStream.makeStream(of: Claimed.self)
        await withDiscardingTaskGroup { group in
            group.addTask {
                await loop.run { now in
                    let free = self.slots.free(self.maxInFlight)
                    // A finished send pokes the loop.
                    guard free >= min(self.claimWhenFree, self.maxInFlight) || free == self.maxInFlight else { return nil }
                    let (claimed, saturated) = try await self.claim(now: now, limit: min(free, self.batchSize))
                    self.clock.workBegan(claimed.count)
                    for notification in claimed { continuation.yield(notification) }
                    if claimed.count == min(free, self.batchSize) { return now }
                    // Pages wait for a full address: its next finished send pokes the loop.
                    if saturated { return nil }
                    return try await self.nextDue()
                }
                continuation.finish()
            }
            for await notification in stream {
                group.addTask {
                    await self.process(notification, now: notification.claimedAt)
                    self.slots.release(notification.address)
                    loop.waker.poke()
                    self.clock.workEnded()
                }
            }
        }
    }

    /// The earliest instant a pending notification can be claimed: the first due one not leased
    /// (index order), or the end of the earliest lease. Two index lookups, whatever the backlog.
    private func nextDue() async throws -> Millis? {
        let now = clock.nowMs()
        return try await pool.withConnection { connection in
            let due = try connection.query(
                """
                SELECT due_at_ms AS next FROM notifications WHERE status = 'pending' AND lease_until_ms <= $1
                ORDER BY due_at_ms LIMIT 1
                """, [now]).int64(0, "next")
            let leased = try connection.query(
                """
                SELECT min(greatest(due_at_ms, lease_until_ms)) AS next FROM notifications
                WHERE status = 'pending' AND lease_until_ms > $1
                """, [now]).int64(0, "next")
            return [due, leased].compactMap { $0 }.min()
        }
    }

    /// Claims up to `limit` due notifications whose address has a free slot; those over their
    /// address's limit are put back in the same transaction (never seen as claimed). Also says
    /// whether some address was full (its pages were passed over).
    private func claim(now: Millis, limit: Int) async throws -> (claimed: [Claimed], saturated: Bool) {
        let batchSize = limit
        let leaseMs = self.leaseMs
        let logger = self.logger
        let counts = slots.snapshot()
        let perDestination = maxPerDestination
        // Contact methods of full addresses: their pages are passed over by the claim (by id, so
        // the claim stays an index scan in due order).
        let saturated = slots.methods(ofAddresses: Set(counts.filter { $0.value >= perDestination }.map(\.key)))
        // A lease need not survive a crash (the page is claimed again after one): no WAL flush.
        let claimed = try await pool.transaction(durable: false) { connection -> ([Claimed], [(String, Int64)], Bool) in
            var methods: [(String, Int64)] = []
            let rows = try connection.query(
                """
                WITH due AS (
                    SELECT n.id FROM notifications n
                    WHERE n.status = 'pending' AND n.due_at_ms <= $1 AND n.lease_until_ms <= $1
                      AND NOT (n.contact_method_id = ANY($4::bigint[]))
                    ORDER BY n.due_at_ms LIMIT $2 FOR UPDATE SKIP LOCKED)
                UPDATE notifications n SET lease_until_ms = $1 + $3
                FROM due, users u, contact_methods c, notification_rules r, incidents i, services s
                WHERE n.id = due.id AND u.id = n.user_id AND c.id = n.contact_method_id AND r.id = n.rule_id
                  AND i.id = n.incident_id AND s.id = i.service_id
                RETURNING n.id::text AS id, n.due_at_ms, n.incident_id, n.user_id, n.rule_id, n.contact_method_id, n.minute_zero, n.reason, n.snapshot,
                          n.attempts, n.first_attempt_at_ms, c.type, c.address, u.name, u.email, r.start_delay_seconds,
                          i.status, i.title, i.urgency, i.number, s.name AS service_name,
                          EXISTS (SELECT 1 FROM incident_assignments a
                                  WHERE a.incident_id = n.incident_id AND a.user_id = n.user_id) AS assigned,
                          CASE WHEN n.reason = 'responder_request' THEN
                              (SELECT q.state FROM responder_requests q WHERE q.incident_id = n.incident_id AND q.user_id = n.user_id)
                          END AS request_state,
                          CASE WHEN n.reason = 'status_update' THEN
                              EXISTS (SELECT 1 FROM incident_subscribers b WHERE b.incident_id = n.incident_id AND b.user_id = n.user_id)
                          ELSE false END AS subscribed
                """, [now, batchSize, leaseMs, PGArray(saturated)])
            var claimed: [Claimed] = []
            var taken = counts
            var putBack: [String] = []
            for row in 0..<rows.count {
                let address = rows.string(row, "address")!
                methods.append((address, rows.int64(row, "contact_method_id")!))
                guard taken[address, default: 0] < perDestination else {
                    putBack.append(rows.string(row, "id")!)
                    continue
                }
                guard let snapshot = try? IncidentSnapshot(wire: rows.bytes(row, "snapshot") ?? []) else {
                    // One bad notification never stalls the others: fail it, say why, go on.
                    let id = rows.string(row, "id")!, incidentID = rows.int64(row, "incident_id")!
                    logger.error("notification snapshot undecodable; failed", metadata: [
                        "notification.id": "\(id)", "incident.id": "\(incidentID)"])
                    try connection.query(
                        "UPDATE notifications SET status = 'failed', finished_at_ms = $2, lease_until_ms = 0, last_error = $3 WHERE id = $1::uuid",
                        [id, now, "the notification's snapshot cannot be decoded"])
                    try Timeline.append(connection, incidentID: incidentID, TimelineEntry(
                        at: now, type: .notifyFailed, actor: "notifier",
                        details: ["notification": id, "error": "the notification's snapshot cannot be decoded"]))
                    continue
                }
                taken[address, default: 0] += 1
                let status = IncidentStatus(rawValue: rows.string(row, "status")!) ?? .triggered
                let minuteZero = rows.bool(row, "minute_zero")!
                var current = snapshot
                current.status = status
                current.title = rows.string(row, "title")!
                current.urgency = Urgency(rawValue: rows.string(row, "urgency")!)
                current.serviceName = rows.string(row, "service_name")!
                current.atMs = now
                claimed.append(Claimed(
                    id: rows.string(row, "id")!, incidentID: rows.int64(row, "incident_id")!, userID: rows.int64(row, "user_id")!,
                    ruleID: rows.int64(row, "rule_id")!, minuteZero: minuteZero,
                    reason: NotifyReason(rawValue: rows.string(row, "reason")!) ?? .assigned, snapshot: snapshot,
                    attempts: rows.int(row, "attempts")!, firstAttemptAt: rows.int64(row, "first_attempt_at_ms"),
                    channel: rows.string(row, "type")!, address: address,
                    userName: rows.string(row, "name")!, userEmail: rows.string(row, "email")!,
                    startDelaySeconds: UInt32(rows.int(row, "start_delay_seconds")!),
                    decision: NotificationCore.decide(DuePage(
                        reason: NotifyReason(rawValue: rows.string(row, "reason")!) ?? .assigned, minuteZero: minuteZero,
                        currentStatus: status, userStillAssigned: rows.bool(row, "assigned")!,
                        requestState: rows.string(row, "request_state").flatMap(RequestState.init(rawValue:)),
                        stillSubscribed: rows.bool(row, "subscribed")!)),
                    current: current, claimedAt: now, dueAt: rows.int64(row, "due_at_ms")!))
            }
            if !putBack.isEmpty {
                try connection.enqueue("UPDATE notifications SET lease_until_ms = 0 WHERE id = ANY($1::text[]::uuid[])", [PGArray(putBack)])
            }
            return (claimed, methods, !putBack.isEmpty)
        }
        slots.learn(claimed.1)
        slots.take(claimed.0.map(\.address))
        return (claimed.0, !saturated.isEmpty || claimed.2)
    }

    private func process(_ notification: Claimed, now: Millis) async {
        let content: IncidentSnapshot
        switch notification.decision {
        case let .skip(reason):
            await finish(notification, status: "skipped", attempts: notification.attempts, at: now, timeline: TimelineEntry(
                at: now, type: .notifySkipped, actor: "notifier",
                details: details(notification, attempts: notification.attempts, ["reason": reason])))
            return
        case .sendSnapshot: content = notification.snapshot
        case .sendCurrent: content = notification.current
        }
        guard let channel = channels[notification.channel] else {
            logger.error("page failed", metadata: [
                "notification.id": "\(notification.id)", "incident.id": "\(notification.incidentID)", "channel": "\(notification.channel)",
                "reason": "\(ChannelKind.named(notification.channel)?.notConfigured ?? "unknown channel")"])
            await finish(notification, status: "failed", attempts: notification.attempts, at: now, timeline: TimelineEntry(
                at: now, type: .notifyFailed, actor: "notifier",
                details: details(notification, attempts: notification.attempts, [
                    "error": ChannelKind.named(notification.channel)?.notConfigured ?? "unknown channel \(notification.channel)"])))
            return
        }
        // Instants are the attempt's own, not the batch's claim.
        let attemptAt = clock.nowMs()
        let attempts = notification.attempts + 1
        var message = WebhookMessage(
            notificationID: notification.id, reason: notification.reason, isSnapshot: notification.decision == .sendSnapshot,
            incident: content,
            user: .init(id: UInt64(notification.userID), name: notification.userName, email: notification.userEmail),
            rule: .init(id: UInt64(notification.ruleID), startDelaySeconds: notification.startDelaySeconds), sentAt: attemptAt)
        if !incidentURLTemplate.isEmpty {
            message.incident.htmlURL = incidentURLTemplate.replacingOccurrences(of: "{id}", with: String(content.incidentID))
        }
        do {
            try await channel.deliver(to: notification.address, idempotencyKey: notification.id, message: message)
            await finish(notification, status: "sent", attempts: attempts, at: attemptAt, timeline: TimelineEntry(
                at: attemptAt, type: .notifySent, actor: "notifier",
                details: details(notification, attempts: attempts, ["snapshot": message.snapshot ? "true" : "false"])))
        } catch {
            let description = "\(error)"
            let delivery = error as? DeliveryError
            let outcome = NotificationCore.afterFailedAttempt(
                DeliveryFailure(description: description, permanent: delivery?.permanent ?? false, retryAfterMs: delivery?.retryAfterMs),
                attempts: attempts, firstAttemptAt: notification.firstAttemptAt ?? attemptAt, finishedAt: clock.nowMs(),
                window: DeliveryWindow(lengthMs: deliveryWindowMs, firstBackoffMs: baseBackoffMs, maxBackoffMs: maxBackoffMs))
            switch outcome {
            case let .fail(why):
                logger.error("page failed", metadata: [
                    "notification.id": "\(notification.id)", "incident.id": "\(notification.incidentID)", "channel": "\(notification.channel)",
                    "notification.attempt": "\(attempts)", "reason": "\(redacted(why, notification))"])
                await finish(notification, status: "failed", attempts: attempts, at: attemptAt, timeline: TimelineEntry(
                    at: attemptAt, type: .notifyFailed, actor: "notifier",
                    details: details(notification, attempts: attempts, ["error": why])))
            case let .retry(nextAt):
                logger.warning("page attempt failed; retrying", metadata: [
                    "notification.id": "\(notification.id)", "incident.id": "\(notification.incidentID)", "channel": "\(notification.channel)",
                    "notification.attempt": "\(attempts)", "reason": "\(redacted(description, notification))", "retry_in_ms": "\(nextAt - attemptAt)"])
                KlaxonMetrics.notification(channel: notification.channel, outcome: "retried")
                let entry = TimelineEntry(
                    at: attemptAt, type: .notifyRetry, actor: "notifier",
                    details: details(notification, attempts: attempts, ["error": description, "retry_at_ms": String(nextAt)]))
                let firstAttemptAt = notification.firstAttemptAt ?? attemptAt
                do {
                    try await writer.write { connection in
                        try connection.enqueue(
                            """
                            UPDATE notifications SET due_at_ms = $2, lease_until_ms = 0, last_error = $3, attempts = $4,
                                   first_attempt_at_ms = coalesce(first_attempt_at_ms, $5)
                            WHERE id = $1::uuid
                            """, [notification.id, nextAt, description, attempts, firstAttemptAt])
                        try Timeline.enqueue(connection, incidentID: notification.incidentID, entry)
                    }
                } catch {
                    logger.error("cannot record a failed attempt; the lease will expire", metadata: [
                        "notification.id": "\(notification.id)", "incident.id": "\(notification.incidentID)", "error": "\(error)"])
                }
            }
        }
    }

    /// Logs never carry a contact address (a webhook URL may hold a secret, an email or phone
    /// number is personal): where an error repeats it, it is masked.
    private func redacted(_ text: String, _ notification: Claimed) -> String {
        text.replacingOccurrences(of: notification.address, with: AddressMask.mask(notification.address, channel: notification.channel))
    }

    private func details(_ notification: Claimed, attempts: Int, _ extra: [String: String]) -> [String: String] {
        var details = [
            "notification": notification.id, "user": String(notification.userID), "rule": String(notification.ruleID),
            "channel": notification.channel, "address": AddressMask.mask(notification.address, channel: notification.channel),
            "attempts": String(attempts),
        ]
        details.merge(extra) { _, new in new }
        return details
    }

    /// Records the outcome at the attempt's instant. A skip or a failure keeps its reason in
    /// `last_error`; a sent notification keeps none (its failed attempts are in the timeline).
    private func finish(_ notification: Claimed, status: String, attempts: Int, at: Millis, timeline: TimelineEntry) async {
        KlaxonMetrics.notification(channel: notification.channel, outcome: status)
        if status == "sent" { KlaxonMetrics.pageSent(channel: notification.channel, latencyMs: at - notification.dueAt) }
        let why = status == "sent" ? nil : (timeline.details["reason"] ?? timeline.details["error"])
        let firstAttemptAt: Millis? = attempts > notification.attempts ? (notification.firstAttemptAt ?? at) : nil
        do {
            try await writer.write { connection in
                try connection.enqueue(
                    """
                    UPDATE notifications SET status = $2, finished_at_ms = $3, lease_until_ms = 0, last_error = $4, attempts = $5,
                           first_attempt_at_ms = coalesce(first_attempt_at_ms, $6)
                    WHERE id = $1::uuid
                    """, [notification.id, status, at, why, attempts, firstAttemptAt])
                try Timeline.enqueue(connection, incidentID: notification.incidentID, timeline)
            }
        } catch {
            // The lease runs out and the notification is tried again: at-least-once, never lost.
            logger.error("cannot record notification outcome", metadata: [
                "notification.id": "\(notification.id)", "incident.id": "\(notification.incidentID)", "error": "\(error)"])
        }
    }
}

/// Sending slots: pages in flight, in total and per address.
final class Slots: Sendable {
    private let counts = NIOLockedValueBox([String: Int]())
    /// Which contact methods send to each address (learnt from claims).
    private let addressMethods = NIOLockedValueBox([String: Set<Int64>]())

    func learn(_ pairs: [(String, Int64)]) {
        addressMethods.withLockedValue { map in for (address, method) in pairs { map[address, default: []].insert(method) } }
    }
    func methods(ofAddresses addresses: Set<String>) -> [Int64] {
        guard !addresses.isEmpty else { return [] }
        return addressMethods.withLockedValue { map in addresses.flatMap { map[$0] ?? [] } }
    }

    func snapshot() -> [String: Int] { counts.withLockedValue { $0 } }
    func free(_ limit: Int) -> Int { limit - counts.withLockedValue { $0.values.reduce(0, +) } }
    func take(_ addresses: [String]) {
        counts.withLockedValue { counts in for address in addresses { counts[address, default: 0] += 1 } }
    }
    func release(_ address: String) {
        counts.withLockedValue { counts in
            counts[address, default: 1] -= 1
            if counts[address] == 0 { counts[address] = nil }
        }
    }
}

/// Group commit for outcomes: writes submitted while a transaction is running go together in the
/// next one. A batch that fails is retried item by item, so one bad write fails alone.
final class OutcomeWriter: Sendable {
    typealias Work = @Sendable (PGConnection) throws -> Void
    private struct State {
        var pending: [(work: Work, done: CheckedContinuation<Void, Error>)] = []
        var writing = false
    }

    private let pool: PostgresPool
    private let logger: Logger
    private let state = NIOLockedValueBox(State())

    init(pool: PostgresPool, logger: Logger) {
        self.pool = pool
        self.logger = logger
    }

    /// Returns once `work` is committed (or throws its error).
    func write(_ work: @escaping Work) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
            let lead = state.withLockedValue { state -> Bool in
                state.pending.append((work, continuation))
                if state.writing { return false }
                state.writing = true
                return true
            }
            if lead { Task { await self.drain() } }
        }
    }

    private func drain() async {
        while true {
            let batch = state.withLockedValue { state -> [(work: Work, done: CheckedContinuation<Void, Error>)] in
                let batch = state.pending
                state.pending = []
                if batch.isEmpty { state.writing = false }
                return batch
            }
            if batch.isEmpty { return }
            let works = batch.map(\.work)
            do {
                try await pool.transaction { connection in for work in works { try work(connection) } }
                for item in batch { item.done.resume() }
            } catch {
                if batch.count > 1 {
                    logger.warning("outcome batch failed; writing its items one by one", metadata: ["error": "\(error)"])
                }
                for item in batch {
                    let work = item.work
                    do {
                        try await pool.transaction { connection in try work(connection) }
                        item.done.resume()
                    } catch {
                        item.done.resume(throwing: error)
                    }
                }
            }
        }
    }
}
