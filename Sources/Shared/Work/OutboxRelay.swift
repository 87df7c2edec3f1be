import KlaxonDomain
import Logging
import NIOCore

/// Delivers one destination's outbox rows over the binary protocol: claims due rows in batches
/// (FOR UPDATE SKIP LOCKED, so replicas share the work), sends them concurrently (a bundle of
/// messages that have a batch method as one batch call, `BatchCall`), deletes each row on OK and
/// reschedules what failed with exponential backoff. Receivers are idempotent, so a crash
/// between a delivery and its delete only means one more delivery.
///
/// A claim leases the row (`leased_until_ms`) apart from its retry backoff (`next_attempt_at_ms`).
/// With `takeoverAfterMs`, the relay is a *taker*: it sends the destination's rows that are that
/// old and not leased, whatever backoff their own relay left on them — the receiver's side
/// relaying what a stopped sender committed (Assignment takes over Ingest's outbox), its own
/// failures backing off through the lease.
public struct OutboxRelay: Sendable {
    /// Makes one call: method, request body, timeout → the reply's body.
    public typealias Transport = @Sendable (_ method: String, _ body: [UInt8], _ timeout: TimeAmount) async throws -> [UInt8]

    public var destination: String
    public var transport: Transport
    /// Reaches the peer before a claim (`RPCClient.connect`), so rows are never leased while a
    /// connection is being attempted; nil for a transport that needs no connection (a taker).
    public var connect: (@Sendable () async throws -> Void)?
    public var pool: PostgresPool
    /// Set: take over rows at least this old that no relay is sending (see above).
    public var takeoverAfterMs: Millis?
    public var batchSize = 64
    /// A claimed row is invisible to other relays this long; past it, it is due again.
    public var leaseMs: Millis = 30_000
    public var maxBackoffMs: Millis = 60_000
    public var callTimeout: TimeAmount = .seconds(10)
    /// Calls in flight at once (a bundle row holds a whole group commit's messages).
    public var maxConcurrentCalls = 64
    public var logger: Logger

    public init(destination: String, client: RPCClient, pool: PostgresPool, logger: Logger) {
        self.init(destination: destination, transport: { try await client.callRaw($0, body: $1, timeout: $2).body }, pool: pool, logger: logger)
        self.connect = { try await client.connect() }
    }

    public init(destination: String, transport: @escaping Transport, pool: PostgresPool, logger: Logger) {
        self.destination = destination
        self.transport = transport
        self.pool = pool
        self.logger = logger
    }

    /// The receiver's side: a taker of `destination`'s rows 5 s old that no relay is sending,
    /// applying each through `server`'s own entrance as a service (`who` names it in the logs).
    public static func takeover(destination: String, server: RPCServer, who: String, pool: PostgresPool, logger: Logger) -> OutboxRelay {
        var relay = OutboxRelay(
            destination: destination,
            transport: { method, body, timeout in
                try await server.callRaw(
                    method, body, as: Principal(tokenID: 0, name: "\(who) (outbox takeover)", role: .service, userID: nil),
                    deadlineBudgetMs: timeout.nanoseconds / 1_000_000)
            },
            pool: pool, logger: logger)
        relay.takeoverAfterMs = takeoverAfterMs
        return relay
    }

    /// How old a row no relay is sending must be before its receiver's side applies it.
    public static let takeoverAfterMs: Millis = 5_000

    struct Claimed: Sendable {
        var id: Int64
        var method: String
        var body: [UInt8]
        var attempts: Int
    }

    /// Makes one call; returns the (row, message index, error) of each message that failed.
    private static func send(_ call: Call, transport: Transport, timeout: TimeAmount) async -> [(Int, Int, String)] {
        do {
            let reply = try await transport(call.method, call.body, timeout)
            guard call.single != nil else { return [] }
            let batch = try BatchReply(wire: reply)
            return batch.failures.compactMap { failure in
                guard Int(failure.index) < call.members.count else { return nil }
                let status = failure.status ?? RPCStatus(code: .unknown)
                let member = call.members[Int(failure.index)]
                return (member.row, member.index, "\(status.code): \(status.message)")
            }
        } catch let error as RPCError where error.code == .unimplemented && call.single != nil {
            // A peer from before batch calls: one call per message.
            var failed: [(Int, Int, String)] = []
            for (position, body) in call.bodies.enumerated() {
                do {
                    _ = try await transport(call.single!, body, timeout)
                } catch {
                    failed.append((call.members[position].row, call.members[position].index, "\(error)"))
                }
            }
            return failed
        } catch {
            return call.members.map { ($0.row, $0.index, "\(error)") }
        }
    }

    /// Delivers what is due at `now`; returns the next instant something will be due.
    public func deliverDue(now: Millis) async throws -> Millis? {
        let destination = self.destination
        let batchSize = self.batchSize
        let leaseMs = self.leaseMs
        let takeover = self.takeoverAfterMs
        // Reach the peer first, outside any lease. Reaching a dead peer is the slow part (on a
        // loaded machine, relay steps to a refusing port took about 2 s each), and rows leased
        // all that time kept the receiver's taker from them: a dead Notifier's rows were taken
        // over 10–13 s after they were written instead of 5. If it fails, the claim still goes
        // on, so each row records its attempt and error; its calls fail at once (the client
        // backs off after a failed connect).
        if let connect { try? await connect() }
        // A claim is a lease: a crash that loses it only means the rows are claimed again (the
        // receivers are idempotent), so it does not wait for the WAL flush. (next_attempt_at_ms
        // moves too, so a relay from before leased_until_ms leaves a claimed row alone.)
        let claimed = try await pool.transaction(durable: false) { connection -> [Claimed] in
            let due = takeover == nil
                ? "next_attempt_at_ms <= $2 AND leased_until_ms <= $2"
                : "created_at_ms <= $2 - $5::bigint AND leased_until_ms <= $2"
            let rows = try connection.query(
                """
                UPDATE outbox SET attempts = attempts + 1, next_attempt_at_ms = greatest(next_attempt_at_ms, $2 + $4),
                       leased_until_ms = $2 + $4
                WHERE id IN (
                    SELECT id FROM outbox WHERE destination = $1 AND \(due)
                    ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED)
                RETURNING id, method, body, attempts
                """, [destination, now, batchSize, leaseMs] + (takeover.map { [$0] } ?? []))
            // In the order they were written (RETURNING follows the heap, not the ORDER BY).
            return (0..<rows.count).map { row in
                Claimed(
                    id: rows.int64(row, "id")!, method: rows.string(row, "method")!, body: rows.bytes(row, "body") ?? [],
                    attempts: rows.int(row, "attempts")!)
            }.sorted { $0.id < $1.id }
        }
        if !claimed.isEmpty {
            await deliver(claimed, now: now)
            if claimed.count == batchSize { return now }  // more may be waiting
        }
        return try await pool.withConnection { connection in
            if let takeover {
                return try connection.query(
                    "SELECT min(greatest(created_at_ms + $2::bigint, leased_until_ms)) AS next FROM outbox WHERE destination = $1",
                    [destination, takeover]).int64(0, "next")
            }
            // The first row in due order, one probe of outbox_due: every write moves
            // next_attempt_at_ms to at least the lease's end (claims, outcomes, takers), so that
            // row's availability is the earliest. (The minimum over every row cost a visit to each
            // row in flight and each dead one, 0.75 ms a step at 1,000 triggers/s.)
            return try connection.query(
                """
                SELECT greatest(next_attempt_at_ms, leased_until_ms) AS next FROM outbox WHERE destination = $1
                ORDER BY next_attempt_at_ms LIMIT 1
                """, [destination])
                .int64(0, "next")
        }
    }

    /// One call to make: a message on its own, or messages of one method as one batch call (from
    /// every claimed row on its first attempt, or from one row on a retry).
    struct Call: Sendable {
        /// The (claimed row, message index in that row) of each message this call carries, in
        /// the batch's order.
        var members: [(row: Int, index: Int)]
        var method: String
        var body: [UInt8]
        /// For a batch call: the single method to fall back to when the peer lacks the batch one.
        var single: String?
        var bodies: [[UInt8]] = []
        var bytes = 0
    }

    /// At most this many messages in one batch call: Ingest's largest group commit, which every
    /// receiver already applies as one batch.
    public var maxMessagesPerCall = 512
    /// And at most this many bytes of messages: well inside the 4 MiB frame limit.
    public var maxCallBytes = 1 << 20

    /// Sends every message of the claimed rows, at most `maxConcurrentCalls` calls at once:
    /// messages that share a method with a batch counterpart as one batch call (`BatchCall`; up to
    /// `maxMessagesPerCall` and `maxCallBytes` each; the first attempts of all the rows together, a
    /// retried row's on calls of its own), any other message as its own call. Rows whose messages
    /// were all answered OK are deleted together. A row with failures is rescheduled with backoff
    /// holding only the messages that failed, so one bad message never makes its batch's
    /// neighbours go round again.
    private func deliver(_ claimed: [Claimed], now: Millis) async {
        var failures: [Int: String] = [:]  // claimed index → first error (the row is kept whole)
        var calls: [Call] = []
        var parsed = Array(repeating: [(method: String, body: [UInt8])](), count: claimed.count)
        // The batch call being filled, per single method, shared by the rows on their first
        // attempt: at 1,000 triggers/s a claim holds several Ingest group commits, and the
        // receiver applies each call in one transaction, not one per row (each hop's p50 went
        // from 21–37 ms to 14–18 ms). A row on a retry may hold a message its receiver refuses,
        // so it goes on calls of its own and never holds up the fresh rows.
        var shared: [String: Int] = [:]
        for (row, claimedRow) in claimed.enumerated() {
            let alone = claimedRow.attempts > 1
            // This row's batch calls being filled: the shared ones, or its own on a retry.
            var filling = alone ? [:] : shared
            defer { if !alone { shared = filling } }
            do {
                let messages = try Outbox.messages(method: claimedRow.method, body: claimedRow.body)
                parsed[row] = messages
                for (index, message) in messages.enumerated() {
                    guard let batch = BatchCall.batchMethods[message.method] else {
                        calls.append(Call(members: [(row, index)], method: message.method, body: message.body))
                        continue
                    }
                    if let at = filling[message.method], calls[at].members.count < maxMessagesPerCall,
                       calls[at].bytes + message.body.count <= maxCallBytes {
                        calls[at].members.append((row, index))
                        calls[at].bodies.append(message.body)
                        calls[at].bytes += message.body.count
                    } else {
                        filling[message.method] = calls.count
                        calls.append(Call(
                            members: [(row, index)], method: batch, body: [], single: message.method, bodies: [message.body],
                            bytes: message.body.count))
                    }
                }
            } catch {
                failures[row] = "\(error)"  // kept and retried, never dropped: a person can look at it
            }
        }
        for at in calls.indices where calls[at].single != nil {
            if calls[at].bodies.count == 1 {
                // One message alone: its own method, as it was written.
                calls[at] = Call(members: calls[at].members, method: calls[at].single!, body: calls[at].bodies[0])
            } else {
                calls[at].body = BatchCall.body(calls[at].bodies)
            }
        }
        let transport = self.transport
        let callTimeout = self.callTimeout
        let limit = max(1, maxConcurrentCalls)
        // claimed index → (message index → error)
        let callFailures = await withTaskGroup(of: [(Int, Int, String)].self) { group -> [Int: [Int: String]] in
            var failed: [Int: [Int: String]] = [:]
            var next = 0
            var running = 0
            while next < calls.count || running > 0 {
                while running < limit, next < calls.count {
                    let call = calls[next]
                    next += 1
                    running += 1
                    group.addTask { await Self.send(call, transport: transport, timeout: callTimeout) }
                }
                if let failedMessages = await group.next() {
                    running -= 1
                    for (row, index, error) in failedMessages { failed[row, default: [:]][index] = error }
                }
            }
            return failed
        }

        let delivered = claimed.indices.filter { failures[$0] == nil && callFailures[$0] == nil }.map { claimed[$0].id }
        struct Failed: Sendable { var id: Int64; var nextAt: Millis; var error: String; var body: [UInt8]? }
        var failed: [Failed] = []
        for index in claimed.indices where failures[index] != nil || callFailures[index] != nil {
            let message = claimed[index]
            let delay = Backoff.delay(afterFailures: message.attempts, first: 200, cap: maxBackoffMs)
            var remaining: [UInt8]? = nil
            let error: String
            if let whole = failures[index] {
                error = whole
            } else {
                let failedMessages = callFailures[index]!
                error = failedMessages.sorted { $0.key < $1.key }.first!.value
                if message.method == Outbox.bundleMethod, failedMessages.count < parsed[index].count {
                    remaining = Outbox.bundle(failedMessages.keys.sorted().map { parsed[index][$0] })
                }
            }
            logger.warning(
                "outbox delivery failed",
                metadata: ["outbox.destination": "\(destination)", "outbox.id": "\(message.id)",
                           "outbox.attempts": "\(message.attempts)",
                           "outbox.failed_messages": "\(callFailures[index]?.count ?? parsed[index].count)", "error": "\(error)"])
            failed.append(Failed(id: message.id, nextAt: now + delay, error: error, body: remaining))
        }
        guard !delivered.isEmpty || !failed.isEmpty else { return }
        // A relay's backoff is the row's next attempt (its lease ends); a taker's is its lease
        // (the row's own relay, if alive, keeps its schedule).
        let backoff = takeoverAfterMs == nil
            ? "next_attempt_at_ms = $2, leased_until_ms = 0"
            : "leased_until_ms = $2, next_attempt_at_ms = greatest(next_attempt_at_ms, $2)"
        let (pool, logger, outcome) = (self.pool, self.logger, failed)
        // One transaction for the outcomes, on a task of its own: a shutdown that cancels this
        // step (its last one) must not keep the rows leased for the next relay to wait out.
        await Task {
            do {
                try await pool.transaction(durable: false) { connection in
                    if !delivered.isEmpty { try connection.enqueue("DELETE FROM outbox WHERE id = ANY($1::bigint[])", [PGArray(delivered)]) }
                    for row in outcome {
                        if let body = row.body {
                            try connection.enqueue(
                                "UPDATE outbox SET \(backoff), last_error = $3, body = $4 WHERE id = $1", [row.id, row.nextAt, row.error, body])
                        } else {
                            try connection.enqueue("UPDATE outbox SET \(backoff), last_error = $3 WHERE id = $1", [row.id, row.nextAt, row.error])
                        }
                    }
                }
            } catch {
                // The leases run out and the rows are claimed again (receivers are idempotent).
                logger.warning("cannot record outbox outcomes; their leases will run out", metadata: ["error": "\(error)"])
            }
        }.value
    }
}
