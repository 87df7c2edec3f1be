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
    /// Fields conditions see beyond the event's own: Alertmanager's labels, Opsgenie's tags.
    public var labels: [String: String] = [:]
    public var tags: [String] = []

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
    /// Poked after a commit that wrote new incidents outside the batcher (a heartbeat's failure).
    let assignmentOutbox: Waker
    let logger: Logger

    public init(
        pool: PostgresPool, clock: any WallClock, assignmentOutbox: Waker, logger: Logger,
        maxBatch: Int = 512, maxConcurrentBatches: Int = 2
    ) {
        self.pool = pool
        self.clock = clock
        self.assignmentOutbox = assignmentOutbox
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
                case let .status(target, status, event):
                    await flush()
                    results[index] = .success(try await changeStatus(event, target: target, to: status, followUp: item.followUp))
                case let .audit(entry):
                    await flush()
                    results[index] = .success(try await audit(entry))
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
        /// The event as the service's rules left it (its dedup key may be theirs).
        case status(IngestTarget, IncidentStatus, Event)
        /// Suppressed by a rule or dropped by a maintenance window: kept in the audit trail.
        case audit(AuditEntry)
    }

    struct AuditEntry {
        var serviceID: Int64
        var kind: String
        var reason: String
        var eventJSON: String
        var dedupKey: String
    }

    /// An event a rule suppressed or a window dropped: written to the service's audit trail
    /// (committed before the reply, like any event), no incident.
    private func audit(_ entry: AuditEntry) async throws -> EventResult {
        let now = clock.nowMs()
        try await pool.withConnection { connection in
            try ServiceAudit.insert(connection, serviceID: entry.serviceID, at: now, kind: entry.kind, reason: entry.reason, eventJSON: entry.eventJSON)
        }
        KlaxonMetrics.eventFiltered(entry.kind)
        return EventResult(
            dedupKey: entry.dedupKey, incidentID: 0, outcome: .ignored, message: "\(entry.kind) by \(entry.reason); kept in the service's audit trail")
    }

    /// The event's fields as rules and maintenance matchers see them (built only for a service that has some).
    static func fields(_ request: IngestRequest, event: Event) -> EventFields {
        let payload = event.payload
        let details = request.customDetailsJSON.map(EventFields.flatten(json:)) ?? payload?.customDetails ?? [:]
        return EventFields.of(
            summary: payload?.summary ?? "", source: payload?.source ?? "", severity: payload?.severity?.rawValue ?? "",
            component: payload?.component ?? "", group: payload?.group ?? "", eventClass: payload?.eventClass ?? "",
            dedupKey: event.dedupKey, action: event.eventAction?.rawValue ?? "", client: event.client, dialect: request.dialect.rawValue,
            customDetails: details, labels: request.labels, tags: request.tags)
    }

    static let ruleTimeline = BatchedRows.Statement(
        """
        INSERT INTO timeline_entries (incident_id, at_ms, type, actor, details)
        SELECT t.incident_id, t.at_ms, t.type, t.actor, t.details::jsonb
        FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[]) WITH ORDINALITY AS t(incident_id, at_ms, type, actor, details, n)
        ORDER BY t.n
        """)

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

    /// The routing key and rate limit, for an event that passed validation; then the service's
    /// event rules (before dedup) and maintenance windows.
    private func admit(_ request: IngestRequest, action: EventAction, target: IngestTarget?, now: Millis) throws -> Admitted {
        var event = request.event
        guard var target else {
            throw RPCError.invalidArgument([FieldViolation(field: "routing_key", description: "unknown routing key")])
        }
        if let retryMs = limiter.admit(routingKey: event.routingKey, target: target, now: now) {
            throw RPCError(
                .resourceExhausted,
                "rate limit exceeded for this routing key (\(target.eventsPerMinute) events/min, burst \(target.eventsBurst)); retry in \(retryMs) ms",
                violations: [FieldViolation(field: "retry_after_ms", description: String(retryMs))])
        }
        var rules = RuleOutcome()
        let serviceRules = target.rules
        var heldUntil: Millis?
        if !target.rules.isEmpty || !target.windows.isEmpty || target.routes.contains(where: { !$0.value.windows.isEmpty }) {
            var fields = Self.fields(request, event: event)
            if !target.rules.isEmpty {
                rules = EventRules.evaluate(target.rules, fields)
                if let position = rules.suppressedBy {
                    let rule = target.rules[position - 1]
                    return .audit(AuditEntry(
                        serviceID: target.serviceID, kind: "suppressed", reason: "event rule \(position)\(rule.name.isEmpty ? "" : " (\(rule.name))")",
                        eventJSON: Self.eventJSON(event, customDetailsJSON: request.customDetailsJSON), dedupKey: event.dedupKey))
                }
                fields = rules.fields
                if let key = rules.dedupKey, !key.isEmpty { event.dedupKey = String(key.prefix(EventValidation.maxShortField)) }
                if let severity = rules.severity.flatMap(Severity.init(rawValue:)) { event.payload?.severity = severity }
                if let route = rules.route, let routed = target.routes[route] { target = routed }
            }
            if action == .trigger {
                switch Maintenance.decide(target.windows, fields, at: now) {
                case let .drop(windowID)?:
                    return .audit(AuditEntry(
                        serviceID: target.serviceID, kind: "dropped", reason: "maintenance window \(windowID)",
                        eventJSON: Self.eventJSON(event, customDetailsJSON: request.customDetailsJSON), dedupKey: event.dedupKey))
                case let .hold(until, _)?:
                    heldUntil = until
                    KlaxonMetrics.eventFiltered("held")
                case nil:
                    break
                }
            }
        }
        switch action {
        case .acknowledge: return .status(target, .acknowledged, event)
        case .resolve: return .status(target, .resolved, event)
        case .trigger:
            let payload = event.payload!
            var trigger = PreparedTrigger(
                serviceID: target.serviceID,
                dedupKey: event.dedupKey.isEmpty ? RandomID.uuid() : event.dedupKey,
                summary: payload.summary, source: payload.source, severity: payload.severity?.rawValue ?? "",
                urgency: rules.urgency.flatMap(Urgency.init(rawValue:)) ?? target.urgencyRule.urgency(for: payload.severity),
                detailsJSON: request.customDetailsJSON ?? JSON.object(payload.customDetails),
                eventJSON: request.alertEventJSON ?? Self.eventJSON(event, customDetailsJSON: request.customDetailsJSON), canary: target.canary,
                followUp: request.followUp, priority: rules.priority ?? request.priority, alertFingerprint: request.alertFingerprint,
                alertStatus: request.alertStatus)
            trigger.heldUntil = heldUntil
            if !rules.matched.isEmpty {
                // What the rules did goes on the new incident's timeline, in its transaction.
                let matched = rules.matched.map { EventRules.describe(serviceRules[$0 - 1], position: $0) }
                trigger.followUp = Self.withRuleEntries(request.followUp, matched: matched, notes: rules.notes)
            }
            return .trigger(trigger)
        }
    }

    /// The follow-up that writes, for a new incident, which rules matched and their notes.
    static func withRuleEntries(_ followUp: TriggerFollowUp?, matched: [String], notes: [String]) -> TriggerFollowUp {
        { connection, result, now, rows in
            try followUp?(connection, result, now, rows)
            guard result.outcome == .created else { return }
            let incident = BatchedRows.Value.int(Int64(result.incidentID))
            rows.add(ruleTimeline, [incident, .int(now), .text(TimelineType.eventRule.rawValue), .text("event rules"),
                                    .text(JSON.object(["matched": matched.joined(separator: "\n")]))])
            for note in notes {
                rows.add(ruleTimeline, [incident, .int(now), .text(TimelineType.note.rawValue), .text("event rule"), .text(JSON.object(["text": note]))])
            }
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
