import AsyncHTTPClient
import Foundation
import IncidentEngine
import KlaxonDomain
import Logging
import NIOConcurrencyHelpers
import Shared

/// The one delivery engine, for pages and channel posts alike (`DeliveryQueue`s): claims due
/// items (FOR UPDATE SKIP LOCKED, with a lease so replicas never send one twice at once), skips
/// what `NotificationCore` says no longer needs sending, delivers, and records the outcome in
/// the incident's timeline at the instant of the attempt. A failed attempt is retried with
/// exponential backoff (from 1 s, doubling, capped at 60 s; a 429's Retry-After instead) until
/// the delivery window after the first attempt has passed, then it is failed; a permanent
/// refusal (4xx other than 408 and 429) fails it at once.
///
/// Sending is continuous (`run`): the loop claims whenever a sending slot is free and each
/// attempt goes out on its own task, so nothing waits for a slower one. At most `maxInFlight`
/// are in flight, and at most `maxPerDestination` to one address: an endpoint that never
/// answers holds its own slots only, and its items are not even claimed while they are full.
/// Outcomes are recorded by group commit (`OutcomeWriter`): one transaction for every attempt
/// that ended meanwhile.
public struct DeliveryEngine: Sendable {
    let pool: PostgresPool
    let queues: [any DeliveryQueue]
    let clock: any WallClock
    let deliveryWindowMs: Millis
    let batchSize = 128
    public var maxInFlight = 512
    public var maxPerDestination = DeliveryEngine.defaultMaxPerDestination
    /// Pages in flight to one address at most, by default: a quarter of `maxInFlight`. A surge
    /// pages the same few people, so this bounds the surge's sending: with 64, two addresses
    /// drained at about 3,650 pages/s with the machine 30 % idle; with 128, 5,540 (docs/PERFORMANCE.md).
    public static let defaultMaxPerDestination = 128
    /// The loop claims again once this many slots are free (or nothing is in flight): each claim
    /// is a transaction, so it should carry a worthwhile number of items.
    public var claimWhenFree = 32
    let slots = Slots()
    /// Sends finished since the last claim: the loop is poked after `claimAfterFinished` of them
    /// (or when nothing is in flight), so a surge's claims carry a batch, not one page each.
    /// Counted when a send gives its slot back, before its outcome's group commit: the next claim
    /// overlaps that commit. (Counted after the commit, each round of a surge was claim, sends,
    /// commit in turn, 128 pages a round for two addresses, and the machine sat 30 % idle while
    /// pages waited: docs/PERFORMANCE.md.)
    let finishedSinceClaim = Counter()
    public var claimAfterFinished = 16
    /// One backoff per page destination, shared by its pages.
    let backoff: DestinationBackoff
    let writer: OutcomeWriter
    /// How long a claimed item is invisible to other engines: one attempt's timeout plus a
    /// margin, so a killed Notifier's pages are taken over soon after.
    let leaseMs: Millis
    let baseBackoffMs: Millis
    let maxBackoffMs: Millis = 60_000
    let incidentURLTemplate: String
    /// One-tap links in pages (KLAXON_PUBLIC_URL + KLAXON_LINK_SIGNING_KEY), else the template's.
    let oneTapLinks: (publicURL: String, key: String)?
    /// SMS pages carry reply codes (SMS goes through Twilio, whose replies come back).
    let smsReplyCodes: Bool
    /// Per contact kind, how often one contact method may be sent to (SMS and calls).
    let throttles: [String: [ThrottleRule]]
    let logger: Logger

    public static let leaseMarginMs: Millis = 2_000

    /// Attempts being made right now (their outcome not yet recorded).
    /// (Sends, and outcomes being recorded: a send's slot is freed when the send ends.)
    public var inFlight: Int { maxInFlight - slots.free(maxInFlight) + recording.value }
    /// Outcomes waiting for their group commit (their sends are over, their slots free).
    let recording = Counter()

    /// Pages through `channels`, and channel posts through a Slack-compatible channel of their own.
    public init(
        pool: PostgresPool, channels: [String: any DeliveryChannel], clock: any WallClock = SystemWallClock(),
        deliveryWindowMs: Millis = 900_000, sendTimeoutMs: Millis = 10_000, baseBackoffMs: Millis = 1_000,
        incidentURLTemplate: String = "", oneTapLinks: (publicURL: String, key: String)? = nil, smsReplyCodes: Bool = false,
        throttles: [String: [ThrottleRule]] = [:], channelPostHTTP: HTTPClient = .pages, logger: Logger
    ) {
        self.incidentURLTemplate = incidentURLTemplate
        self.oneTapLinks = oneTapLinks
        self.smsReplyCodes = smsReplyCodes
        self.throttles = throttles
        self.pool = pool
        self.queues = [
            PageQueue(channels: channels, windowMs: deliveryWindowMs, logger: logger),
            ChannelPostQueue(channel: SlackChannel(http: channelPostHTTP, timeout: .milliseconds(sendTimeoutMs)), logger: logger),
        ]
        self.clock = clock
        self.deliveryWindowMs = deliveryWindowMs
        self.leaseMs = sendTimeoutMs + Self.leaseMarginMs
        self.baseBackoffMs = baseBackoffMs
        self.logger = logger
        self.writer = OutcomeWriter(pool: pool, queues: queues, logger: logger)
        self.backoff = DestinationBackoff(firstMs: baseBackoffMs, capMs: maxBackoffMs)
    }

    /// Sends what is due at `now` and waits for those sends and their outcomes; returns when the
    /// next item is due. (The service sends continuously with `run`.)
    public func dispatchDue(now: Millis) async throws -> Millis? {
        let (claimed, _, _) = try await claim(now: now, limit: batchSize)
        await withTaskGroup(of: Void.self) { group in
            for item in claimed {
                group.addTask {
                    await self.process(item, now: now)
                    item.slot?.release()
                }
            }
        }
        if claimed.count == batchSize { return now }
        return [try await nextDue(), backoff.nextOpening(after: now)].compactMap { $0 }.min()
    }

    /// The service's sending: `loop` claims whenever a slot is free (a finished send pokes it),
    /// each claimed item is sent on its own task. Ends when the loop ends (graceful shutdown),
    /// after the sends in flight have finished and their outcomes are recorded.
    public func run(_ loop: DueWorkLoop) async {
        let (stream, continuation) = AsyncStream.makeStream(of: DeliveryItem.self)
        await withDiscardingTaskGroup { group in
            group.addTask {
                await loop.run { now in
                    let free = self.slots.free(self.maxInFlight)
                    // A finished send pokes the loop.
                    guard free >= min(self.claimWhenFree, self.maxInFlight) || free == self.maxInFlight else { return nil }
                    self.finishedSinceClaim.reset()
                    let limit = min(free, self.batchSize)
                    let (claimed, saturated, more) = try await self.claim(now: now, limit: limit, waker: loop.waker)
                    for item in claimed { continuation.yield(item) }
                    // Claim again at once only if this one left claimable work. When it took all
                    // that fits, a claim now would find its addresses full and, with a backlog
                    // behind them, read the whole backlog to lease nothing (at 1,000 triggers/s to
                    // two addresses, on a busy machine, such empty claims took up to 120 ms each).
                    if claimed.count == limit && more { return now }
                    // Items wait for a full address: its next finished send pokes the loop; for a
                    // destination backing off, the end of its backoff. What comes due later for
                    // the others (a retry, a delayed rule) is looked up past the full ones.
                    let opening = self.backoff.nextOpening(after: now)
                    let fullNow = self.fullAddresses()
                    if saturated || !fullNow.isEmpty || claimed.count == limit {
                        return [try await self.nextDueLater(full: fullNow), opening].compactMap { $0 }.min()
                    }
                    return [try await self.nextDue(), opening].compactMap { $0 }.min()
                }
                continuation.finish()
            }
            for await item in stream {
                group.addTask {
                    await self.process(item, now: item.claimedAt)
                    item.slot?.release()
                    // After the outcome is recorded and the slot freed: nothing in flight now
                    // means nothing will poke the loop otherwise. (Every `claimAfterFinished`
                    // slots given back poke it too: `slotGivenBack`.) New work pokes the loop
                    // itself; the loop polls.
                    if self.inFlight == 0 { loop.waker.poke() }
                }
            }
        }
    }

    /// A send gave its slot back: every `claimAfterFinished` of them, the loop claims again. Not
    /// after every one: a claim per freed slot leases one page per transaction in a surge.
    private func slotGivenBack(_ waker: Waker?) {
        guard let waker, finishedSinceClaim.add(1) >= claimAfterFinished else { return }
        waker.poke()
    }

    /// Addresses with every sending slot taken.
    private func fullAddresses() -> Set<String> {
        Set(slots.snapshot().filter { $0.value >= maxPerDestination }.map(\.key))
    }

    private func nextDueLater(full: Set<String>) async throws -> Millis? {
        let now = clock.nowMs()
        let queues = self.queues
        let closed = backoff.closed(at: now, inFlight: slots.snapshot())
        return try await pool.withConnection { connection in
            try queues.compactMap {
                try $0.nextDueLater(connection, now: now, full: $0.sharesBackoff ? full : [], closed: $0.sharesBackoff ? closed : [])
            }.min()
        }
    }

    private func nextDue() async throws -> Millis? {
        let now = clock.nowMs()
        let queues = self.queues
        let closed = backoff.closed(at: now, inFlight: slots.snapshot())
        return try await pool.withConnection { connection in
            try queues.compactMap { try $0.nextDue(connection, now: now, closed: $0.sharesBackoff ? closed : []) }.min()
        }
    }

    /// Claims up to `limit` due items, pages first, whose address has a free slot; those over
    /// their address's limit are put back in the same transaction (never seen as claimed). Also
    /// says whether some address was full (its items were passed over), and whether claimable
    /// items were left beyond `limit` (`more`).
    /// `waker`: the sending loop's, poked as the items' slots are given back (`slotGivenBack`).
    private func claim(now: Millis, limit: Int, waker: Waker? = nil) async throws -> (claimed: [DeliveryItem], saturated: Bool, more: Bool) {
        let leaseMs = self.leaseMs
        let queues = self.queues
        let counts = slots.snapshot()
        let perDestination = maxPerDestination
        let full = Set(counts.filter { $0.value >= perDestination }.map(\.key))
        // Pages pass over destinations backing off, or probing with one page in flight.
        let closed = backoff.closed(at: now, inFlight: counts)
        let backoff = self.backoff
        // A lease need not survive a crash (the item is claimed again after one): no WAL flush.
        let (claimed, putBack, more) = try await pool.transaction(durable: false) { connection -> ([DeliveryItem], Bool, Bool) in
            var claimed: [DeliveryItem] = []
            var taken = counts
            var anyPutBack = false
            var more = false
            for (index, queue) in queues.enumerated() where claimed.count < limit {
                var putBack: [String] = []
                let shares = queue.sharesBackoff
                let (items, left) = try queue.claim(
                    connection, now: now, limit: limit - claimed.count, leaseMs: leaseMs, full: full, closed: shares ? closed : [],
                    inFlight: taken, perDestination: perDestination)
                more = more || left
                for var item in items {
                    // A failing destination takes one new page at a time (the probe); pages in
                    // their own retry schedule keep the usual limit.
                    let cap = shares && item.attempts == 0 ? backoff.limit(item.address, normal: perDestination) : perDestination
                    guard taken[item.address, default: 0] < cap else {
                        putBack.append(item.id)
                        continue
                    }
                    taken[item.address, default: 0] += 1
                    item.queue = index
                    claimed.append(item)
                }
                if !putBack.isEmpty {
                    try queue.putBack(connection, ids: putBack)
                    anyPutBack = true
                }
            }
            return (claimed, anyPutBack, more)
        }
        slots.take(claimed.map(\.address))
        let slots = self.slots
        let ticketed = claimed.map { claimedItem in
            var item = claimedItem
            let address = item.address
            item.slot = SlotTicket { [self] in
                slots.release(address)
                slotGivenBack(waker)
            }
            return item
        }
        return (ticketed, !full.isEmpty || putBack, more)
    }

    private func process(_ item: DeliveryItem, now: Millis) async {
        let content: IncidentSnapshot
        switch item.decision {
        case let .skip(reason):
            await finish(item, DeliveryResult(outcome: .skipped(reason: reason), at: now, attempts: item.attempts))
            return
        case .sendSnapshot: content = item.snapshot
        case .sendCurrent: content = item.current
        }
        if item.shadow != nil {
            // Shadow mode: everything happened (rules, minute zero, escalation); only delivery is withheld.
            await finish(item, DeliveryResult(outcome: .shadowed, at: clock.nowMs(), attempts: item.attempts))
            return
        }
        let shares = queues[item.queue].sharesBackoff
        if shares, item.attempts == 0, let lastError = backoff.failing(item.address, at: now), item.dueAt <= now - deliveryWindowMs {
            // Waited the whole delivery window for a destination that kept failing: not attempted again.
            let why = "not delivered within \(deliveryWindowMs / 60_000) min: its destination kept failing (last: \(lastError))"
            logger.error("\(item.what) failed", metadata: metadata(item, attempts: item.attempts, ["reason": "\(why)"]))
            await finish(item, DeliveryResult(outcome: .failed(error: why), at: now, attempts: item.attempts, firstAttemptAt: item.firstAttemptAt))
            return
        }
        guard let channel = item.deliverer else {
            logger.error("\(item.what) failed", metadata: metadata(item, attempts: item.attempts, ["reason": "\(item.notConfigured)"]))
            await finish(item, DeliveryResult(outcome: .failed(error: item.notConfigured), at: now, attempts: item.attempts))
            return
        }
        // Instants are the attempt's own, not the batch's claim.
        let attemptAt = clock.nowMs()
        let attempts = item.attempts + 1
        let firstAttemptAt = item.firstAttemptAt ?? attemptAt
        var message = WebhookMessage(
            notificationID: item.id, reason: item.reason, isSnapshot: item.decision == .sendSnapshot, incident: content,
            user: item.user, rule: item.rule, sentAt: attemptAt)
        if let links = oneTapLinks {
            // The person's own link to this incident, valid 24 h from this attempt.
            let link = OneTapLink(userID: item.user.id, incidentID: content.incidentID, expiresAtMs: attemptAt + OneTapLink.lifetimeMs)
            let url = link.url(publicURL: links.publicURL, key: links.key)
            message.incident.htmlURL = url
            message.incident.ackURL = url + "/ack"
        } else if !incidentURLTemplate.isEmpty {
            message.incident.htmlURL = incidentURLTemplate.replacingOccurrences(of: "{id}", with: String(content.incidentID))
        }
        // A throttled phone: wait for the throttle, or take along the other pages due for it.
        var riders: [PageThrottle.Rider] = []
        var admitted = false  // this send is counted against the phone's throttle
        if let method = item.contactMethodID, let rules = throttles[item.channel], !rules.isEmpty {
            let (id, leaseMs) = (item.id, self.leaseMs)
            do {
                let verdict = try await pool.transaction { connection in
                    try PageThrottle.admit(connection, method: method, carrier: id, now: attemptAt, rules: rules, leaseMs: leaseMs)
                }
                switch verdict {
                case let .later(until):
                    logger.info("page held by its phone's throttle", metadata: metadata(item, attempts: item.attempts, ["until_ms": "\(until)"]))
                    do { try await writer.write { try PageThrottle.hold($0, item, until: until, now: attemptAt) } } catch {
                        logger.error("cannot hold a throttled page; its lease will expire", metadata: metadata(item, attempts: item.attempts, ["error": "\(error)"]))
                    }
                    return
                case .carried:
                    logger.debug("page already carried by another message", metadata: metadata(item, attempts: item.attempts, [:]))
                    return
                case let .now(found):
                    admitted = true
                    riders = found
                    message.bundled = found.map { $0.incident }
                }
            } catch {
                // The lease runs out and the page is claimed again.
                logger.error("cannot consult the phone's throttle; the lease will expire", metadata: metadata(item, attempts: item.attempts, ["error": "\(error)"]))
                return
            }
        }
        do {
            if smsReplyCodes, item.channel == ContactKind.sms.name {
                let (user, incident) = (item.user.id, content.incidentID)
                message.replyCode = try await pool.transaction { try PhoneStore.replyCode($0, userID: user, incidentID: incident) }
            }
            try await channel.deliver(to: item.address, idempotencyKey: item.id, message: message)
            if shares { backoff.succeeded(item.address) }
            await finish(item, DeliveryResult(
                outcome: .sent(snapshot: message.snapshot), at: attemptAt, attempts: attempts, firstAttemptAt: firstAttemptAt))
            if !riders.isEmpty {
                let (number, carried) = (content.number, riders)
                for _ in carried { KlaxonMetrics.pageSent(channel: item.channel, latencyMs: attemptAt - item.dueAt) }
                do { try await writer.write { try PageThrottle.ridersSent($0, carried, carrier: item, carrierNumber: number, at: attemptAt) } } catch {
                    logger.error("cannot record a bundle's pages; their leases will expire", metadata: metadata(item, attempts: attempts, ["error": "\(error)"]))
                }
            }
        } catch {
            if admitted {
                let (carrier, held) = (item.id, riders)
                try? await writer.write { try PageThrottle.release($0, held, carrier: carrier, at: attemptAt) }
            }
            // Logs and timelines never carry a contact address (a webhook URL may hold a secret,
            // an email or phone number is personal): where an error repeats it, it is masked.
            let description = "\(error)".replacingOccurrences(of: item.address, with: AddressMask.mask(item.address, channel: item.channel))
            let delivery = error as? DeliveryError
            // The destination backs off for all its pages (not for one page's own permanent refusal).
            if shares, !(delivery?.permanent ?? false) {
                backoff.failed(item.address, at: clock.nowMs(), error: description, retryAfterMs: delivery?.retryAfterMs)
            }
            let outcome = NotificationCore.afterFailedAttempt(
                DeliveryFailure(description: description, permanent: delivery?.permanent ?? false, retryAfterMs: delivery?.retryAfterMs),
                attempts: attempts, firstAttemptAt: firstAttemptAt, finishedAt: clock.nowMs(),
                window: DeliveryWindow(lengthMs: deliveryWindowMs, firstBackoffMs: baseBackoffMs, maxBackoffMs: maxBackoffMs))
            switch outcome {
            case let .fail(why):
                logger.error("\(item.what) failed", metadata: metadata(item, attempts: attempts, ["reason": "\(why)"]))
                await finish(item, DeliveryResult(outcome: .failed(error: why), at: attemptAt, attempts: attempts, firstAttemptAt: firstAttemptAt))
            case let .retry(nextAt):
                logger.warning("\(item.what) attempt failed; retrying", metadata: metadata(item, attempts: attempts, [
                    "reason": "\(description)", "retry_in_ms": "\(nextAt - attemptAt)"]))
                await finish(item, DeliveryResult(
                    outcome: .retry(at: nextAt, error: description), at: attemptAt, attempts: attempts, firstAttemptAt: firstAttemptAt))
            }
        }
    }

    private func metadata(_ item: DeliveryItem, attempts: Int, _ extra: Logger.Metadata) -> Logger.Metadata {
        var metadata: Logger.Metadata = [
            "\(item.what == "page" ? "notification" : "channel_post").id": "\(item.id)", "incident.id": "\(item.incidentID)",
            "channel": "\(item.metricChannel)", "notification.attempt": "\(attempts)",
        ]
        metadata.merge(extra) { _, new in new }
        return metadata
    }

    /// Counts the outcome and records it through its queue, in the next group commit.
    private func finish(_ item: DeliveryItem, _ result: DeliveryResult) async {
        if !item.metricChannel.isEmpty {  // the canary's are not counted
            KlaxonMetrics.notification(
                channel: item.metricChannel, outcome: result.outcome == .shadowed ? "shadowed" : result.status == "pending" ? "retried" : result.status)
        }
        if result.status == "sent", item.countsAsPage { KlaxonMetrics.pageSent(channel: item.channel, latencyMs: result.at - item.dueAt) }
        // A failover makes the database unreachable for seconds: the outcome is written again
        // (backing off) while the lease holds, so a page already sent is not sent again after it.
        // The destination is done with this attempt: its slot goes to the next page now, not after
        // the group commit (a slot held through the commit capped each address at 64 per commit).
        _ = recording.add(1)
        item.slot?.release()
        defer { _ = recording.add(-1) }
        let giveUpAt = ContinuousClock.now + .milliseconds(max(leaseMs - Self.leaseMarginMs, 0))  // monotonic, not a domain instant
        var pause = Duration.milliseconds(200)
        while true {
            do {
                try await writer.record(item, result)
                return
            } catch {
                guard ContinuousClock.now + pause < giveUpAt, !Task.isCancelled else {
                    // The lease runs out and the item is tried again: at-least-once, never lost.
                    logger.error("cannot record a delivery outcome; the lease will expire", metadata: [
                        "\(item.what == "page" ? "notification" : "channel_post").id": "\(item.id)", "incident.id": "\(item.incidentID)",
                        "error": "\(error)"])
                    return
                }
                try? await Task.sleep(for: pause)
                pause = min(pause * 2, .seconds(2))
            }
        }
    }
}

/// A claimed item's sending slot, given back once: when its outcome is handed to the group
/// commit, or when its processing ends without one.
final class SlotTicket: Sendable {
    private let action: NIOLockedValueBox<(@Sendable () -> Void)?>
    init(_ release: @escaping @Sendable () -> Void) { self.action = NIOLockedValueBox(release) }
    func release() {
        let action = self.action.withLockedValue { action -> (@Sendable () -> Void)? in
            defer { action = nil }
            return action
        }
        action?()
    }
}

/// A count shared by the sends and the loop.
final class Counter: Sendable {
    private let count = NIOLockedValueBox(0)
    /// The count after adding `amount`.
    func add(_ amount: Int) -> Int { count.withLockedValue { $0 += amount; return $0 } }
    func reset() { count.withLockedValue { $0 = 0 } }
    var value: Int { count.withLockedValue { $0 } }
}

/// Sending slots: attempts in flight, in total and per address.
final class Slots: Sendable {
    private let counts = NIOLockedValueBox([String: Int]())

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
/// next one, and each queue writes its outcomes of the batch as set-based statements (one UPDATE,
/// one timeline INSERT), not one per attempt. A batch that fails is retried item by item, so one
/// bad write fails alone.
final class OutcomeWriter: Sendable {
    typealias Work = @Sendable (PGConnection) throws -> Void
    /// An attempt's outcome (through its queue), or another write, in submission order.
    enum Write: Sendable {
        case outcome(DeliveryItem, DeliveryResult)
        case other(Work)
    }

    private struct State {
        var pending: [(write: Write, done: CheckedContinuation<Void, Error>)] = []
        var writing = false
    }

    private let pool: PostgresPool
    private let queues: [any DeliveryQueue]
    private let logger: Logger
    private let state = NIOLockedValueBox(State())

    init(pool: PostgresPool, queues: [any DeliveryQueue], logger: Logger) {
        self.pool = pool
        self.queues = queues
        self.logger = logger
    }

    /// Returns once `work` is committed (or throws its error).
    func write(_ work: @escaping Work) async throws {
        try await submit(.other(work))
    }

    /// Returns once the outcome is committed (or throws its error).
    func record(_ item: DeliveryItem, _ result: DeliveryResult) async throws {
        try await submit(.outcome(item, result))
    }

    private func submit(_ write: Write) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
            let lead = state.withLockedValue { state -> Bool in
                state.pending.append((write, continuation))
                if state.writing { return false }
                state.writing = true
                return true
            }
            if lead { Task { await self.drain() } }
        }
    }

    /// Runs `writes` in order; consecutive outcomes go to their queues together.
    private static func apply(_ writes: [Write], queues: [any DeliveryQueue], _ connection: PGConnection) throws {
        var outcomes: [[(DeliveryItem, DeliveryResult)]] = Array(repeating: [], count: queues.count)
        func flush() throws {
            for index in outcomes.indices where !outcomes[index].isEmpty {
                try queues[index].record(connection, outcomes[index])
                outcomes[index] = []
            }
        }
        for write in writes {
            switch write {
            case let .outcome(item, result): outcomes[item.queue].append((item, result))
            case let .other(work):
                try flush()
                try work(connection)
            }
        }
        try flush()
    }

    private func drain() async {
        while true {
            let batch = state.withLockedValue { state -> [(write: Write, done: CheckedContinuation<Void, Error>)] in
                let batch = state.pending
                state.pending = []
                if batch.isEmpty { state.writing = false }
                return batch
            }
            if batch.isEmpty { return }
            let (writes, queues) = (batch.map(\.write), queues)
            do {
                try await pool.transaction { connection in try Self.apply(writes, queues: queues, connection) }
                for item in batch { item.done.resume() }
            } catch {
                if batch.count > 1 {
                    logger.warning("outcome batch failed; writing its items one by one", metadata: ["error": "\(error)"])
                }
                for item in batch {
                    let write = item.write
                    do {
                        try await pool.transaction { connection in try Self.apply([write], queues: queues, connection) }
                        item.done.resume()
                    } catch {
                        item.done.resume(throwing: error)
                    }
                }
            }
        }
    }
}
