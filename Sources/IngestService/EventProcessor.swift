import IncidentEngine
import Foundation
import KlaxonDomain
import Logging
import NIOCore
import Shared

/// One event to process, from either endpoint.
public struct IngestRequest: Sendable {
    public var event: Event
    /// Size as received (protobuf body or HTTP JSON), checked against the 512 KiB limit.
    public var encodedSize: Int
    /// custom_details as any JSON object (the HTTP endpoint); nil uses the event's string map.
    public var customDetailsJSON: String?
    /// The front door it came through, for `klaxon_events_total{dialect}`.
    public var dialect: Dialect

    /// The monitor dialects Ingest speaks.
    public enum Dialect: String, Sendable, CaseIterable {
        case binary, pagerduty, alertmanager, opsgenie
    }

    /// Written in the event's transaction with its result (a trigger's group commit, or an
    /// acknowledge's or resolve's own transaction).
    public var followUp: TriggerFollowUp?
    /// What a front door knows beyond the event: a new incident's priority, and its first alert
    /// as that door sees it (Alertmanager: fingerprint, status and the alert's own JSON).
    public var priority: String?
    public var alertFingerprint: String?
    public var alertStatus = ""
    public var alertEventJSON: String?

    public init(
        event: Event, encodedSize: Int, customDetailsJSON: String? = nil, dialect: Dialect = .binary, followUp: TriggerFollowUp? = nil
    ) {
        self.event = event
        self.encodedSize = encodedSize
        self.customDetailsJSON = customDetailsJSON
        self.dialect = dialect
        self.followUp = followUp
    }
}

/// Turns monitor events into incidents: validation, routing, rate limit, then the write —
/// triggers through group commit, acknowledge/resolve in their own transaction. Every reply is
/// sent after the transaction holding its event commits. The binary and HTTP endpoints both
/// come through here.
public struct EventProcessor: Sendable {
    public static let consumerActor = "integration"
    let pool: PostgresPool
    let clock: any WallClock
    let directory: ServiceDirectory
    let limiter: RateLimiter
    let batcher: TriggerBatcher
    let logger: Logger

    public init(
        pool: PostgresPool, clock: any WallClock, assignmentOutbox: Waker, logger: Logger,
        maxBatch: Int = 512, maxConcurrentBatches: Int = 2
    ) {
        self.pool = pool
        self.clock = clock
        self.directory = ServiceDirectory(pool: pool)
        self.limiter = RateLimiter()
        self.batcher = TriggerBatcher(
            pool: pool, clock: clock, maxBatch: maxBatch, maxCommitters: maxConcurrentBatches, logger: logger,
            onCreated: { assignmentOutbox.poke() })
        self.logger = logger
    }

    /// Triggers written and transactions used so far (group commit at work).
    public var batchStatistics: TriggerBatcher.Statistics { batcher.statistics }

    public func process(_ event: Event, encodedSize: Int) async throws -> EventResult {
        try await process([IngestRequest(event: event, encodedSize: encodedSize)])[0].get()
    }

    public func process(_ events: [(event: Event, encodedSize: Int)]) async -> [Result<EventResult, RPCError>] {
        await process(events.map { IngestRequest(event: $0.event, encodedSize: $0.encodedSize) })
    }

    /// Answers each event on its own, in order: a rejected event does not affect its neighbours.
    /// Consecutive triggers share transactions; an acknowledge or resolve runs after the
    /// triggers before it and before the ones after it.
    public func process(_ events: [IngestRequest]) async -> [Result<EventResult, RPCError>] {
        let now = clock.nowMs()
        var results: [Result<EventResult, RPCError>?] = Array(repeating: nil, count: events.count)
        var run: [(index: Int, trigger: PreparedTrigger)] = []
        func flush() async {
            guard !run.isEmpty else { return }
            let outcomes = await batcher.submit(run.map(\.trigger))
            for (item, outcome) in zip(run, outcomes) { results[item.index] = outcome.mapError(Self.rpcError) }
            run.removeAll()
        }
        for (index, item) in events.enumerated() {
            do {
                switch try await admit(item, now: now) {
                case let .trigger(trigger):
                    run.append((index, trigger))
                case let .status(target, status):
                    await flush()
                    results[index] = .success(try await changeStatus(item.event, target: target, to: status, followUp: item.followUp))
                }
            } catch {
                results[index] = .failure(Self.rpcError(error))
            }
        }
        await flush()
        let answers = results.map { $0! }
        for (answer, item) in zip(answers, events) where !directory.isCanary(item.event.routingKey) { Self.count(answer, dialect: item.dialect) }
        return answers
    }

    /// `klaxon_events_total` by outcome (and `klaxon_incidents_created_total`): every event
    /// answered, over either protocol, is counted here once — but the canary's (issue 26).
    static func count(_ result: Result<EventResult, RPCError>, dialect: IngestRequest.Dialect) {
        switch result {
        case let .success(value): KlaxonMetrics.event(outcome: value.outcome?.rawValue ?? "unknown", dialect: dialect.rawValue)
        case let .failure(error): KlaxonMetrics.event(outcome: "\(error.code)".lowercased(), dialect: dialect.rawValue)
        }
    }

    /// The hot path for one event, on the caller's event loop and without a task: validation,
    /// the cached routing key and the rate limit run here and a trigger goes straight to group
    /// commit. What must wait (a routing key not in the cache, acknowledge, resolve) continues
    /// as a task through `process(_:)`. Same checks, same results as the async path.
    public func process(_ request: IngestRequest, on loop: EventLoop) -> EventLoopFuture<EventResult> {
        let now = clock.nowMs()
        do {
            let action = try Self.validate(request)
            if let target = directory.cachedTarget(for: request.event.routingKey, now: now),
               case let .trigger(trigger) = try admit(request, action: action, target: target, now: now)
            {
                let answer = batcher.enqueue(trigger, on: loop)  // its errors know their status (RPCStatusConvertible)
                if !target.canary { answer.whenComplete { Self.count($0.mapError(Self.rpcError), dialect: request.dialect) } }
                return answer
            }
        } catch {
            let refusal = Self.rpcError(error)
            Self.count(.failure(refusal), dialect: request.dialect)
            return loop.makeFailedFuture(refusal)
        }
        return loop.makeFutureWithTask { try await self.process([request])[0].get() }
    }

    private enum Admitted {
        case trigger(PreparedTrigger)
        case status(IngestTarget, IncidentStatus)
    }

    /// Validation, routing key and rate limit: everything that may refuse an event before any write.
    private func admit(_ request: IngestRequest, now: Millis) async throws -> Admitted {
        let action = try Self.validate(request)
        return try admit(request, action: action, target: try await directory.target(for: request.event.routingKey, now: now), now: now)
    }

    /// The event's action, once every field is within its limits.
    private static func validate(_ request: IngestRequest) throws -> EventAction {
        let violations = EventValidation.violations(of: request.event, encodedSize: request.encodedSize)
        guard violations.isEmpty, let action = request.event.eventAction else { throw RPCError.invalidArgument(violations) }
        return action
    }

    /// The routing key and rate limit, for an event that passed validation.
    private func admit(_ request: IngestRequest, action: EventAction, target: IngestTarget?, now: Millis) throws -> Admitted {
        let event = request.event
        guard let target else {
            throw RPCError.invalidArgument([FieldViolation(field: "routing_key", description: "unknown routing key")])
        }
        if let retryMs = limiter.admit(routingKey: event.routingKey, target: target, now: now) {
            throw RPCError(
                .resourceExhausted,
                "rate limit exceeded for this routing key (\(target.eventsPerMinute) events/min, burst \(target.eventsBurst)); retry in \(retryMs) ms",
                violations: [FieldViolation(field: "retry_after_ms", description: String(retryMs))])
        }
        switch action {
        case .acknowledge: return .status(target, .acknowledged)
        case .resolve: return .status(target, .resolved)
        case .trigger:
            let payload = event.payload!
            return .trigger(PreparedTrigger(
                serviceID: target.serviceID,
                dedupKey: event.dedupKey.isEmpty ? RandomID.uuid() : event.dedupKey,
                summary: payload.summary, source: payload.source, severity: payload.severity?.rawValue ?? "",
                urgency: target.urgencyRule.urgency(for: payload.severity),
                detailsJSON: request.customDetailsJSON ?? JSON.object(payload.customDetails),
                eventJSON: request.alertEventJSON ?? Self.eventJSON(event, customDetailsJSON: request.customDetailsJSON), canary: target.canary,
                followUp: request.followUp, priority: request.priority, alertFingerprint: request.alertFingerprint, alertStatus: request.alertStatus))
        }
    }

    static func rpcError(_ error: Error) -> RPCError {
        switch error {
        case let error as RPCError: return error
        case let error as RPCStatusConvertible: return error.rpcError
        default: return RPCError(.internalError, "internal error")
        }
    }

    /// Acknowledge or resolve the open incident with the event's dedup key, through the incident
    /// rules (an acknowledgement starts the ack timeout like any other); IGNORED when none is open.
    private func changeStatus(
        _ event: Event, target: IngestTarget, to status: IncidentStatus, followUp: TriggerFollowUp? = nil
    ) async throws -> EventResult {
        let now = clock.nowMs()
        let actor = Self.consumerActor
        return try await pool.transaction { connection in
            let result = try Self.changeStatus(connection, event, target: target, to: status, actor: actor, now: now)
            if let followUp {
                let rows = BatchedRows()
                try followUp(connection, result, now, rows)
                try rows.enqueue(connection)
            }
            return result
        }
    }

    private static func changeStatus(
        _ connection: PGConnection, _ event: Event, target: IngestTarget, to status: IncidentStatus, actor: String, now: Millis
    ) throws -> EventResult {
        let open = try connection.query(
            "SELECT id FROM incidents WHERE service_id = $1 AND dedup_key = $2 AND status <> 'resolved'",
            [target.serviceID, event.dedupKey])
        guard let incidentID = open.int64(0, "id"), !open.isEmpty else {
            return EventResult(dedupKey: event.dedupKey, incidentID: 0, outcome: .ignored, message: "no open incident with this dedup key")
        }
        let command: IncidentCommand = status == .resolved
            ? .resolve(actor: actor, reason: "resolve event") : .acknowledge(user: nil, actor: actor)
        // The row lock is taken inside; a concurrent resolve makes this one IGNORED.
        guard try IncidentStore.run(command, incidentID: incidentID, connection: connection, now: now, when: { $0.state.status != .resolved }) != nil else {
            return EventResult(dedupKey: event.dedupKey, incidentID: UInt64(incidentID), outcome: .ignored, message: "the incident was resolved meanwhile")
        }
        let outcome: EventOutcome = status == .resolved ? .resolved : .acknowledged
        return EventResult(dedupKey: event.dedupKey, incidentID: UInt64(incidentID), outcome: outcome, message: "incident \(outcome.rawValue)")
    }

    /// The event as stored on its alert (for the incident page and postmortems).
    static func eventJSON(_ event: Event, customDetailsJSON: String? = nil) -> String {
        var json = JSONWriter(capacity: 512)
        json.beginObject()
        json.field("routing_key_suffix", String(event.routingKey.suffix(4)))
        json.field("dedup_key", event.dedupKey)
        if let payload = event.payload {
            json.beginObject("payload")
            json.field("summary", payload.summary)
            json.field("source", payload.source)
            json.field("severity", payload.severity?.rawValue ?? "")
            json.field("timestamp_ms", payload.timestampMs)
            json.field("component", payload.component)
            json.field("group", payload.group)
            json.field("class", payload.eventClass)
            if let customDetailsJSON {
                json.field("custom_details", json: customDetailsJSON)
            } else {
                json.field("custom_details", payload.customDetails)
            }
            json.endObject()
        }
        json.beginArray("links")
        for link in event.links {
            json.beginObject()
            json.field("href", link.href)
            json.field("text", link.text)
            json.endObject()
        }
        json.endArray()
        json.beginArray("images")
        for image in event.images {
            json.beginObject()
            json.field("src", image.src)
            json.field("href", image.href)
            json.field("alt", image.alt)
            json.endObject()
        }
        json.endArray()
        json.field("client", event.client)
        json.field("client_url", event.clientURL)
        json.endObject()
        return json.string
    }
}
