import Foundation
import Hummingbird
import IncidentEngine
import KlaxonDomain
import NIOCore
import Shared

/// The Opsgenie Alert API's routes on Ingest's HTTP listener (`OpsgenieAlerts` has the mapping).
/// Paths are Opsgenie's own under `/v2/alerts`, so a client given the host (the SDKs), the API
/// URL (Alertmanager's `api_url`, to which it appends `v2/alerts`) or the alerts URL (Grafana)
/// all reach them.
extension IngestHTTP {
    static func addOpsgenie(to router: Router<BasicRequestContext>, processor: EventProcessor) {
        router.post("/v2/alerts") { request, _ in
            await Self.opsgenie(request, processor: processor) { key, target, body, requestID in
                try await Self.opsgenieCreate(key: key, serviceID: target.serviceID, body: body, requestID: requestID, processor: processor)
            }
        }
        for action in ["close", "acknowledge", "unacknowledge", "notes"] {
            router.post("/v2/alerts/:identifier/\(action)") { request, context in
                await Self.opsgenieAction(action, request, identifier: context.parameters.get("identifier") ?? "", processor: processor)
            }
        }
        for action in ["message", "description"] {
            router.put("/v2/alerts/:identifier/\(action)") { request, context in
                await Self.opsgenieAction(action, request, identifier: context.parameters.get("identifier") ?? "", processor: processor)
            }
        }
        router.get("/v2/alerts/requests/:id") { request, context in
            await Self.opsgenie(request, processor: processor) { _, target, _, requestID in
                let id = context.parameters.get("id") ?? ""
                guard UUID(uuidString: id) != nil else { return (.notFound, OpsgenieAlerts.failure("Request not found", requestID: requestID)) }
                let rows = try await processor.pool.withConnection { connection in
                    try connection.query("SELECT * FROM opsgenie_requests WHERE id = $1::uuid AND service_id = $2", [id, target.serviceID])
                }
                // Not found yet is what Opsgenie answers while a request is being processed.
                guard !rows.isEmpty else { return (.notFound, OpsgenieAlerts.failure("Request not found", requestID: requestID)) }
                return (.ok, OpsgenieAlerts.requestStatus(rows, requestID: id))
            }
        }
    }

    /// `Authorization: GenieKey <routing key>`.
    static func genieKey(_ request: Request) -> String? {
        guard let value = request.headers[.authorization] else { return nil }
        let parts = value.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "geniekey" else { return nil }
        // A key moved in from Opsgenie (a UUID) is kept as its 32 hex digits.
        return GenieKey.routingKey(String(parts[1]).trimmingCharacters(in: .whitespaces))
    }

    typealias OpsgenieHandler = @Sendable (_ key: String, _ target: IngestTarget, _ body: [UInt8], _ requestID: String) async throws
        -> (HTTPResponse.Status, [UInt8])

    /// Authentication, the body, and the failures every call shares (401, 413, 503).
    static func opsgenie(_ request: Request, processor: EventProcessor, _ handler: OpsgenieHandler) async -> Response {
        let requestID = RandomID.uuid()
        guard let key = genieKey(request), !key.isEmpty else {
            return json(.unauthorized, OpsgenieAlerts.failure("Could not authenticate: send Authorization: GenieKey <routing key>", requestID: requestID))
        }
        guard let bytes = await body(request, limit: maxBodyBytes) else {
            return json(.contentTooLarge, OpsgenieAlerts.failure("Body exceeds \(maxBodyBytes) bytes", requestID: requestID))
        }
        do {
            guard let target = try await processor.directory.target(for: key, now: processor.clock.nowMs()) else {
                return json(.unauthorized, OpsgenieAlerts.failure("Could not authenticate: unknown key", requestID: requestID))
            }
            let (status, body) = try await handler(key, target, bytes, requestID)
            return json(status, body)
        } catch {
            return json(.serviceUnavailable, OpsgenieAlerts.failure("Service unavailable: \(error)", requestID: requestID))
        }
    }

    /// An event's refusal in Opsgenie's terms (nil when it was not refused).
    static func opsgenieRefusal(_ error: RPCError, requestID: String) -> (HTTPResponse.Status, [UInt8]) {
        switch error.code {
        case .invalidArgument:
            let problems = error.status.violations.map { "\($0.field): \($0.description)" }.joined(separator: "; ")
            return (.unprocessableContent, OpsgenieAlerts.failure(problems.isEmpty ? error.message : problems, requestID: requestID))
        case .resourceExhausted:
            return (.tooManyRequests, OpsgenieAlerts.failure("You are making too many requests! \(error.message)", requestID: requestID))
        default:
            return (.serviceUnavailable, OpsgenieAlerts.failure(error.message, requestID: requestID))
        }
    }

    static func took(_ started: ContinuousClock.Instant) -> Double {
        let elapsed = ContinuousClock.now - started
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }

    static func opsgenieCreate(
        key: String, serviceID: Int64, body: [UInt8], requestID: String, processor: EventProcessor
    ) async throws -> (HTTPResponse.Status, [UInt8]) {
        let started = ContinuousClock.now
        let (create, problem) = OpsgenieAlerts.parseCreate(body)
        guard let create else { return (.unprocessableContent, OpsgenieAlerts.failure(problem ?? "Invalid request", requestID: requestID)) }
        let (event, details) = OpsgenieAlerts.event(create, routingKey: key)
        // The priority, the note and the request's outcome go in the trigger's own transaction.
        let followUp: TriggerFollowUp = { connection, outcome, now, rows in
            let incidentID = Int64(outcome.incidentID)
            if !create.note.isEmpty {
                try Timeline.enqueue(connection, incidentID: incidentID, TimelineEntry(
                    at: now, type: .note, actor: EventProcessor.consumerActor,
                    details: ["text": String(create.note.prefix(OpsgenieAlerts.maxNote)), "user": create.user]))
            }
            try OpsgenieAlerts.record(connection, rows, requestID: requestID, serviceID: serviceID, OpsgenieAlerts.Outcome(
                action: "Create", success: true, status: outcome.outcome == .created ? "Created alert" : "Alert count incremented",
                alertID: String(outcome.incidentID), alias: create.alias.isEmpty ? event.dedupKey : create.alias), now: now)
        }
        var ingestRequest = IngestRequest(
            event: event, encodedSize: body.count, customDetailsJSON: details, dialect: .opsgenie, followUp: followUp)
        ingestRequest.priority = create.priority  // a new incident's, written with it
        ingestRequest.tags = create.tags
        let result = await processor.process([ingestRequest])[0]
        if case let .failure(error) = result { return opsgenieRefusal(error, requestID: requestID) }
        if case let .success(outcome) = result, outcome.outcome == .ignored, outcome.incidentID == 0 {
            // Suppressed by an event rule or dropped by a maintenance window: no alert, and the
            // request's status says so (Zabbix polls it after every call).
            let now = processor.clock.nowMs()
            try await processor.pool.transaction { connection in
                let rows = BatchedRows()
                try OpsgenieAlerts.record(connection, rows, requestID: requestID, serviceID: serviceID, OpsgenieAlerts.Outcome(
                    action: "Create", success: true, status: "Alert not created: \(outcome.message)", alertID: "",
                    alias: create.alias.isEmpty ? event.dedupKey : create.alias), now: now)
                try rows.enqueue(connection)
            }
        }
        return (.accepted, OpsgenieAlerts.accepted(requestID: requestID, took: took(started)))
    }

    static func opsgenieAction(_ action: String, _ request: Request, identifier: String, processor: EventProcessor) async -> Response {
        let typeName = request.uri.queryParameters.get("identifierType") ?? "id"
        return await opsgenie(request, processor: processor) { key, target, body, requestID in
            let started = ContinuousClock.now
            guard let type = OpsgenieAlerts.IdentifierType(rawValue: typeName) else {
                return (.unprocessableContent, OpsgenieAlerts.failure("Invalid identifierType [\(typeName)]: use id, alias or tiny", requestID: requestID))
            }
            let (object, problem) = OpsgenieAlerts.object(body, empty: true)
            guard let object else { return (.unprocessableContent, OpsgenieAlerts.failure(problem ?? "Invalid request", requestID: requestID)) }
            var problems: [String] = []
            let user = OpsgenieAlerts.text(object, "user", &problems)
            let note = OpsgenieAlerts.text(object, "note", &problems)
            let value = OpsgenieAlerts.text(object, action == "description" ? "description" : "message", &problems)
            switch action {
            case "notes" where note.isEmpty: problems.append("Note can not be empty.")
            case "message" where value.trimmingCharacters(in: .whitespaces).isEmpty: problems.append("Message can not be empty.")
            default: break
            }
            guard problems.isEmpty else { return (.unprocessableContent, OpsgenieAlerts.failure(problems.joined(separator: " "), requestID: requestID)) }
            let actor = EventProcessor.consumerActor
            let names = [
                "close": ("Close", "Closed alert"), "acknowledge": ("Acknowledge", "Acknowledged alert"),
                "unacknowledge": ("UnAcknowledge", "UnAcknowledged alert"), "notes": ("AddNote", "Added note"),
                "message": ("UpdateMessage", "Updated message"), "description": ("UpdateDescription", "Updated description"),
            ]
            let (actionName, done) = names[action]!
            let alert = try await processor.pool.withConnection { connection in
                try OpsgenieAlerts.find(connection, serviceID: target.serviceID, identifier: identifier, type: type)
            }
            var outcome = OpsgenieAlerts.Outcome(
                action: actionName, success: alert != nil, status: alert == nil ? "Alert does not exist" : done,
                alertID: alert.map { String($0.incidentID) } ?? "", alias: type == .alias ? identifier : alert?.dedupKey ?? "")
            // Acknowledge and close go through the one event path (rate limit, metrics, the rules),
            // the request's outcome written in the event's transaction.
            if let alert, action == "close" || action == "acknowledge" {
                if alert.resolved {
                    // Closing a closed alert is done already; acknowledging one is not possible.
                    if action == "acknowledge" { (outcome.success, outcome.status) = (false, "Alert is already closed") }
                } else {
                    let event = Event(routingKey: key, eventAction: action == "close" ? .resolve : .acknowledge, dedupKey: alert.dedupKey)
                    let decided = outcome
                    let followUp: TriggerFollowUp = { connection, _, now, rows in
                        if !note.isEmpty {
                            try Timeline.enqueue(connection, incidentID: alert.incidentID, TimelineEntry(
                                at: now, type: .note, actor: actor, details: ["text": String(note.prefix(OpsgenieAlerts.maxNote)), "user": user]))
                        }
                        try OpsgenieAlerts.record(connection, rows, requestID: requestID, serviceID: target.serviceID, decided, now: now)
                    }
                    let request = IngestRequest(event: event, encodedSize: event.wireBytes().count, dialect: .opsgenie, followUp: followUp)
                    if case let .failure(error) = await processor.process([request])[0] {
                        return opsgenieRefusal(error, requestID: requestID)
                    }
                    return (.accepted, OpsgenieAlerts.accepted(requestID: requestID, took: took(started)))
                }
            }
            let now = processor.clock.nowMs()
            let decided = outcome
            try await processor.pool.transaction { connection in
                var outcome = decided
                if let alert {
                    let id = alert.incidentID
                    switch action {
                    case "unacknowledge":
                        if alert.resolved {
                            (outcome.success, outcome.status) = (false, "Alert is already closed")
                        } else {
                            _ = try IncidentStore.run(.unacknowledge(actor: actor), incidentID: id, connection: connection, now: now)
                        }
                    case "notes":
                        try Timeline.append(connection, incidentID: id, TimelineEntry(
                            at: now, type: .note, actor: actor, details: ["text": String(note.prefix(OpsgenieAlerts.maxNote)), "user": user]))
                    case "message":
                        let title = String(value.prefix(OpsgenieAlerts.maxMessage))
                        try connection.query("UPDATE incidents SET title = $2, updated_at_ms = $3 WHERE id = $1", [id, title, now])
                        try Timeline.append(connection, incidentID: id, TimelineEntry(at: now, type: .note, actor: actor, details: ["message": title]))
                    case "description":
                        let text = String(value.prefix(OpsgenieAlerts.maxDescription))
                        try connection.query(
                            "UPDATE incidents SET details = jsonb_set(details, '{description}', to_jsonb($2::text)), updated_at_ms = $3 WHERE id = $1",
                            [id, text, now])
                        try Timeline.append(connection, incidentID: id, TimelineEntry(at: now, type: .note, actor: actor, details: ["description": text]))
                    default:
                        if !note.isEmpty {
                            try Timeline.append(connection, incidentID: id, TimelineEntry(
                                at: now, type: .note, actor: actor, details: ["text": String(note.prefix(OpsgenieAlerts.maxNote)), "user": user]))
                        }
                    }
                }
                let rows = BatchedRows()
                try OpsgenieAlerts.record(connection, rows, requestID: requestID, serviceID: target.serviceID, outcome, now: now)
                try rows.enqueue(connection)
            }
            return (.accepted, OpsgenieAlerts.accepted(requestID: requestID, took: took(started)))
        }
    }
}
