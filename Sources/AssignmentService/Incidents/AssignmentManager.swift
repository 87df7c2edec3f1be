import IncidentEngine
import KlaxonDomain
import Logging
import Shared

/// Applies the escalation core's effects to PostgreSQL: loads the incident in a transaction,
/// asks `EscalationCore` what happens at `now`, writes assignments, timers, timeline and
/// notify requests (to Notifier's outbox), and commits.
public struct AssignmentManager: Sendable {
    static let consumer = "assignment"
    let pool: PostgresPool
    let clock: any WallClock
    /// Poked after a commit that wrote to Notifier's outbox.
    let notifierOutbox: Waker
    /// Poked after a commit that may have set an earlier timer.
    let timers: Waker
    let logger: Logger

    public init(pool: PostgresPool, clock: any WallClock, notifierOutbox: Waker, timers: Waker, logger: Logger) {
        self.pool = pool
        self.clock = clock
        self.notifierOutbox = notifierOutbox
        self.timers = timers
        self.logger = logger
    }

    /// A new incident: assign level 1 of its service's policy and page those users. Idempotent
    /// by message id: a redelivered message changes nothing.
    public func incidentTriggered(_ request: IncidentTriggeredRequest) async throws {
        guard !request.messageID.isEmpty else {
            throw RPCError.invalidArgument([FieldViolation(field: "message_id", description: "is required")])
        }
        let now = clock.nowMs()
        let notified: Int, soonest: Millis?
        do {
            (notified, soonest) = try await triggered(request, now: now)
        } catch {
            // The sender's outbox retries this message with backoff; the other messages of its
            // batch were applied on their own calls.
            logger.error(
                "incident trigger failed; retried by the sender with backoff",
                metadata: ["incident.id": "\(request.incidentID)", "error": "\(error)"])
            throw error
        }
        if notified > 0 { notifierOutbox.poke() }
        pokeTimers(soonest, now: now)
    }

    /// The timer loop reads the next due timer at least every `TimerManager.pollMs`; it is poked
    /// only for a timer due before then. A new incident's escalation is usually minutes away, and a
    /// poke per batch cost the loop a transaction and two lookups per batch at 1,000 triggers/s.
    private func pokeTimers(_ soonest: Millis?, now: Millis) {
        if let soonest, soonest <= now + TimerManager.pollMs { timers.poke() }
    }

    /// A batch of new incidents (one outbox bundle from Ingest): one transaction for all of them
    /// — the inbox claims, the loads, the saves and one bundle of notify requests — or, if that
    /// fails, each on its own so one bad incident never holds up the others.
    public func incidentsTriggered(_ batch: IncidentTriggeredBatch) async throws -> BatchReply {
        let requests = batch.requests
        var notified = 0
        var soonest: Millis?
        let now = clock.nowMs()
        let reply = try await BatchCall.apply(requests, logger: logger, together: { requests in
            guard requests.allSatisfy({ !$0.messageID.isEmpty }) else {
                throw RPCError.invalidArgument([FieldViolation(field: "message_id", description: "is required")])
            }
            let outcomes = try await pool.transaction { connection -> [IncidentStore.Outcome] in
                let fresh = try Inbox.claim(connection, consumer: Self.consumer, messageIDs: requests.map(\.messageID), now: now)
                let ids = requests.filter { fresh.contains($0.messageID) }.map { Int64($0.incidentID) }
                return try IncidentStore.runBatch(incidentIDs: ids, connection: connection, now: now) { core, state in
                    try core.apply(.trigger, to: state, now: now)
                }
            }
            notified = outcomes.reduce(0) { $0 + $1.notified }
            soonest = outcomes.compactMap(\.transition.state.nextTimer).min()
        }, alone: { request in
            try await incidentTriggered(request)
        })
        if notified > 0 { notifierOutbox.poke() }
        pokeTimers(soonest, now: now)
        return reply
    }

    private func triggered(_ request: IncidentTriggeredRequest, now: Millis) async throws -> (notified: Int, soonest: Millis?) {
        try await pool.transaction { connection -> (Int, Millis?) in
            guard try Inbox.claim(connection, consumer: Self.consumer, messageID: request.messageID, now: now) else { return (0, nil) }
            // The rules apply a trigger once, whatever reached the incident first: an acknowledge
            // or resolve that landed before this message already applied it (and paged level 1).
            let outcome = try IncidentStore.run(.trigger, incidentID: Int64(request.incidentID), connection: connection, now: now)
            return (outcome?.notified ?? 0, outcome?.transition.state.nextTimer)
        }
    }
}
