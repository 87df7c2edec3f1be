import HTTPOperations
import IncidentEngine
import Hummingbird
import Logging
import NIOConcurrencyHelpers
import NIOCore
import Shared

/// Ingest's HTTP listener: PagerDuty Events API v2 (`POST /v2/enqueue`, alias `/v2/events`) and
/// the health endpoints.
public enum IngestHTTP {
    /// Bodies above this are refused before parsing (the event limit itself is 512 KiB).
    public static let maxBodyBytes = 1024 * 1024

    public static func application(
        processor: EventProcessor, readiness: Readiness, listen: HostPort, logger: Logger,
        onRunning: @escaping @Sendable (Int) async -> Void = { _ in }, tls: ServerTLS? = nil
    ) -> some ApplicationProtocol {
        let router = Router()
        let enqueue: @Sendable (Request, BasicRequestContext) async throws -> Response = { request, _ in
            try await Self.enqueue(request, processor: processor)
        }
        router.post("/v2/enqueue", use: enqueue)
        router.post("/v2/events", use: enqueue)
        // PagerDuty's Change Events API: deploys and configuration changes, per service.
        router.post("/v2/change/enqueue") { request, _ in try await Self.changeEvent(request, processor: processor) }
        // Alertmanager's own webhook: the routing key in the path, or as a bearer token.
        router.post("/alertmanager/:key") { request, context in
            try await Self.alertmanager(request, routingKey: context.parameters.get("key"), processor: processor)
        }
        router.post("/alertmanager") { request, _ in
            try await Self.alertmanager(request, routingKey: Self.bearer(request), processor: processor)
        }
        // The Opsgenie Alert API (OpsgenieHTTP.swift).
        Self.addOpsgenie(to: router, processor: processor)
        // Heartbeat pings (HeartbeatHTTP.swift).
        Self.addHeartbeats(to: router, processor: processor)
        // /healthz, /readyz and /metrics: the same shape as every other listener (README, Operations).
        OperationsRoutes.add(to: router, readiness: readiness)
        return Application(
            router: router, server: OperationsRoutes.server(tls, logger: logger), configuration: .init(address: .hostname(listen.host, port: listen.port), serverName: "klaxon-ingest"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? 0) }, logger: logger)
    }

    /// The request's body, or nil when it is over `limit` bytes (the caller says so in its own shape).
    static func body(_ request: Request, limit: Int) async -> [UInt8]? {
        var request = request
        guard let body = try? await request.collectBody(upTo: limit) else { return nil }
        return Array(body.readableBytesView)
    }

    static func tooLarge(_ what: String) -> Response {
        json(.contentTooLarge, PagerDutyEvents.invalid(
            [FieldViolation(field: "event", description: "body exceeds \(maxBodyBytes) bytes")], message: "\(what) is too large"))
    }

    static func enqueue(_ request: Request, processor: EventProcessor) async throws -> Response {
        guard let bytes = await body(request, limit: maxBodyBytes) else { return tooLarge("Event object") }
        let parsed = PagerDutyEvents.parse(bytes)
        guard parsed.violations.isEmpty, let event = parsed.event else {
            // Report the limits too, so one answer names everything to fix.
            let limits = parsed.event.map { EventValidation.violations(of: $0, encodedSize: bytes.count) } ?? []
            let shape = Set(parsed.violations.map(\.field))
            return json(.badRequest, PagerDutyEvents.invalid(parsed.violations + limits.filter { !shape.contains($0.field) }))
        }
        let result = await processor.process([IngestRequest(event: event, encodedSize: bytes.count, customDetailsJSON: parsed.customDetailsJSON, dialect: .pagerduty)])[0]
        switch result {
        case let .success(outcome):
            return json(.accepted, PagerDutyEvents.accepted(dedupKey: outcome.dedupKey))
        case let .failure(error):
            switch error.code {
            case .invalidArgument:
                return json(.badRequest, PagerDutyEvents.invalid(error.status.violations))
            case .resourceExhausted:
                var response = json(.tooManyRequests, PagerDutyEvents.throttled(error.message))
                if let retryMs = error.status.violations.first(where: { $0.field == "retry_after_ms" }).flatMap({ Int($0.description) }) {
                    response.headers[.retryAfter] = String(max(1, (retryMs + 999) / 1000))
                }
                return response
            case .unavailable, .aborted:
                return json(.serviceUnavailable, PagerDutyEvents.failed(error.message))
            default:
                return json(.internalServerError, PagerDutyEvents.failed(error.message))
            }
        }
    }

    /// `POST /v2/change/enqueue` (PagerDuty's Change Events API): 202 once stored; PagerDuty's 400
    /// shape naming every problem, 429 when the key's rate limit is spent.
    static func changeEvent(_ request: Request, processor: EventProcessor) async throws -> Response {
        guard let bytes = await body(request, limit: maxBodyBytes) else { return tooLarge("Change event") }
        let parsed = PagerDutyEvents.parseChange(bytes)
        guard let change = parsed.change else {
            KlaxonMetrics.event(outcome: "invalid_argument", dialect: IngestRequest.Dialect.pagerduty.rawValue)
            return json(.badRequest, PagerDutyEvents.invalid(parsed.violations, message: "Change event object is invalid"))
        }
        let now = processor.clock.nowMs()
        do {
            guard let target = try await processor.directory.target(for: change.routingKey, now: now) else {
                KlaxonMetrics.event(outcome: "invalid_argument", dialect: IngestRequest.Dialect.pagerduty.rawValue)
                return json(.badRequest, PagerDutyEvents.invalid(
                    [FieldViolation(field: "routing_key", description: "unknown routing key")], message: "Change event object is invalid"))
            }
            if let retryMs = processor.limiter.admit(routingKey: change.routingKey, target: target, now: now) {
                KlaxonMetrics.event(outcome: "resource_exhausted", dialect: IngestRequest.Dialect.pagerduty.rawValue)
                var response = json(.tooManyRequests, PagerDutyEvents.throttled("rate limit exceeded for this routing key"))
                response.headers[.retryAfter] = String(max(1, (retryMs + 999) / 1000))
                return response
            }
            try await processor.pool.withConnection { connection in
                try ChangeStore.insert(
                    connection, serviceID: target.serviceID, summary: change.summary, source: change.source,
                    atMs: change.timestampMs ?? now, receivedAtMs: now, customDetailsJSON: change.customDetailsJSON, linksJSON: change.linksJSON)
            }
        } catch {
            return json(.serviceUnavailable, PagerDutyEvents.failed("the change event could not be stored; send it again"))
        }
        KlaxonMetrics.event(outcome: "change", dialect: IngestRequest.Dialect.pagerduty.rawValue)
        return json(.accepted, PagerDutyEvents.body(["status": "success", "message": "Change event processed"]))
    }

    /// Alertmanager notifications can hold many alerts: a larger body than one event's.
    public static let maxAlertmanagerBodyBytes = 8 * 1024 * 1024

    static func bearer(_ request: Request) -> String? {
        guard let value = request.headers[.authorization] else { return nil }
        let parts = value.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        return String(parts[1]).trimmingCharacters(in: .whitespaces)
    }

    /// `POST /alertmanager/{routing key}` (or the key as a bearer token): 200 once committed;
    /// 503 (with Retry-After when rate limited) for what may pass on a retry — Alertmanager
    /// retries only 5xx and drops every 4xx — and 4xx only for a bad key or a bad body.
    static func alertmanager(_ request: Request, routingKey: String?, processor: EventProcessor) async throws -> Response {
        guard let routingKey, !routingKey.isEmpty else {
            return json(.unauthorized, PagerDutyEvents.body([
                "status": "unauthorized", "message": "no routing key: POST /alertmanager/{routing key}, or send it as a bearer token"]))
        }
        guard let bytes = await body(request, limit: maxAlertmanagerBodyBytes) else {
            return json(.contentTooLarge, PagerDutyEvents.body([
                "status": "invalid", "message": "body exceeds \(maxAlertmanagerBodyBytes) bytes: set max_alerts in the webhook config"]))
        }
        let parsed = AlertmanagerWebhook.parse(bytes)
        guard let notification = parsed.notification else {
            return json(.badRequest, PagerDutyEvents.body([
                "status": "invalid", "message": "not an Alertmanager webhook notification",
                "errors": parsed.violations.map { "\($0.field): \($0.description)" }]))
        }
        let (event, details) = AlertmanagerWebhook.event(notification, routingKey: routingKey)
        // The alerts are written in the event's own transaction (its group commit).
        let recorded = NIOLockedValueBox(AlertmanagerWebhook.Recorded())
        let followUp: TriggerFollowUp = { connection, result, now, _ in
            guard result.incidentID != 0 else { return }
            let done = try AlertmanagerWebhook.record(
                connection, incidentID: Int64(result.incidentID), notification: notification, created: result.outcome == .created, now: now)
            recorded.withLockedValue { $0 = done }
        }
        var ingestRequest = IngestRequest(
            // The event's size, not the notification's (many alerts make a large body, one event).
            event: event, encodedSize: details.utf8.count + (event.payload?.summary.utf8.count ?? 0) + 256, customDetailsJSON: details,
            dialect: .alertmanager, followUp: followUp)
        ingestRequest.labels = notification.commonLabels.merging(notification.groupLabels) { common, _ in common }
        // A new incident's first alert is the notification's first, written with the trigger.
        if let first = notification.alerts.first {
            ingestRequest.alertFingerprint = first.fingerprint
            ingestRequest.alertStatus = first.status.isEmpty ? notification.status : first.status
            ingestRequest.alertEventJSON = first.json
        }
        let result = await processor.process([ingestRequest])[0]
        let outcome: EventResult
        switch result {
        case let .success(value):
            outcome = value
        case let .failure(error):
            switch error.code {
            case .invalidArgument where error.status.violations.contains { $0.field == "routing_key" }:
                return json(.unauthorized, PagerDutyEvents.body(["status": "unauthorized", "message": "unknown routing key"]))
            case .invalidArgument:
                return json(.badRequest, PagerDutyEvents.invalid(error.status.violations))
            case .resourceExhausted:
                // Not 429: Alertmanager would drop it. 503 with Retry-After is retried.
                var response = json(.serviceUnavailable, PagerDutyEvents.throttled(error.message))
                if let retryMs = error.status.violations.first(where: { $0.field == "retry_after_ms" }).flatMap({ Int($0.description) }) {
                    response.headers[.retryAfter] = String(max(1, (retryMs + 999) / 1000))
                }
                return response
            default:
                return json(.serviceUnavailable, PagerDutyEvents.failed(error.message))
            }
        }
        guard outcome.incidentID != 0 else {
            // A resolved group with no open incident (its first notification, say): nothing to do.
            return json(.ok, PagerDutyEvents.body(["status": "ignored", "message": outcome.message, "dedup_key": outcome.dedupKey]))
        }
        let counts = recorded.withLockedValue { $0 }
        return json(.ok, PagerDutyEvents.body([
            "status": "success", "message": outcome.message, "dedup_key": outcome.dedupKey, "incident_id": outcome.incidentID,
            "alerts_added": counts.added, "alerts_resolved": counts.resolved]))
    }

    static func json(_ status: HTTPResponse.Status, _ body: [UInt8]) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}
