import Foundation
import IncidentEngine
import KlaxonDomain
import Shared

/// Outbound webhook subscriptions and their delivery log (`klaxon.assignment.v1.Admin`, issue 28,
/// point 5). The secret is made by Klaxon and shown once, in CreateWebhook's reply.
extension AdminAPI {
    static let reservedHeaders: Set<String> = [
        "content-type", "content-length", "host", "x-pagerduty-signature", "webhook-id", "webhook-timestamp", "webhook-signature",
        "idempotency-key", "user-agent",
    ]

    static func webhookViolations(_ request: WebhookSubscription) async -> [FieldViolation] {
        var violations: [FieldViolation] = []
        func add(_ field: String, _ description: String) { violations.append(FieldViolation(field: field, description: description)) }
        if let url = URL(string: request.url), ["http", "https"].contains(url.scheme ?? ""), let host = url.host, !host.isEmpty {
            if let why = await OutboundGuard.refusal(host: host) {
                add("url", "\(why); KLAXON_ALLOW_LINK_LOCAL_DESTINATIONS=true allows it")
            }
        } else {
            add("url", "must be an http or https URL")
        }
        if request.url.count > 2048 { add("url", "at most 2048 characters") }
        for (index, type) in request.eventTypes.enumerated() where !WebhookEvents.types.contains(type) {
            add("event_types[\(index)]", "\"\(type)\" is not one of \(WebhookEvents.types.joined(separator: ", "))")
        }
        if request.headers.count > 20 { add("headers", "at most 20") }
        for name in request.headers.keys.sorted() {
            if Self.reservedHeaders.contains(name.lowercased()) { add("headers.\(name)", "is set by Klaxon") }
            if name.isEmpty || !name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) {
                add("headers.\(name)", "is not a header name")
            }
        }
        return violations
    }

    static func webhook(_ rows: PGResult, _ row: Int) -> WebhookSubscription {
        WebhookSubscription(
            id: rows.uint64(row, "id")!, url: rows.string(row, "url")!, description: rows.string(row, "description")!,
            eventTypes: PGTextArray.parse(rows.string(row, "event_types") ?? "{}"),
            serviceIDs: PGTextArray.parse(rows.string(row, "service_ids") ?? "{}").compactMap { UInt64($0) },
            headers: JSON.stringMap(rows.string(row, "headers") ?? "{}"), enabled: rows.bool(row, "enabled")!,
            consecutiveDrops: UInt32(rows.int(row, "consecutive_drops")!), disabledReason: rows.string(row, "disabled_reason")!,
            createdAtMs: rows.int64(row, "created_at_ms")!, pending: UInt32(rows.int(row, "pending") ?? 0),
            ownerUserID: rows.uint64(row, "owner_user_id") ?? 0)
    }

    static let webhookColumns = """
        w.id, w.url, w.description, w.event_types::text AS event_types, w.service_ids::text AS service_ids, w.headers::text AS headers,
        w.enabled, w.consecutive_drops, w.disabled_reason, w.created_at_ms, w.owner_user_id,
        (SELECT count(*) FROM webhook_deliveries d WHERE d.subscription_id = w.id AND d.status = 'pending') AS pending
        """

    static func delivery(_ rows: PGResult, _ row: Int) -> WebhookDelivery {
        WebhookDelivery(
            id: rows.uint64(row, "id")!, subscriptionID: rows.uint64(row, "subscription_id")!, eventID: rows.string(row, "event_id")!,
            eventType: rows.string(row, "event_type")!, incidentID: rows.uint64(row, "incident_id") ?? 0, status: rows.string(row, "status")!,
            attempts: UInt32(rows.int(row, "attempts")!), lastStatus: UInt32(rows.int(row, "last_status")!), lastError: rows.string(row, "last_error")!,
            createdAtMs: rows.int64(row, "created_at_ms")!, finishedAtMs: rows.int64(row, "finished_at_ms") ?? 0,
            nextAttemptAtMs: rows.int64(row, "next_attempt_at_ms")!)
    }

    func registerWebhooks(into router: inout RPCRouter) {
        let pool = self.pool
        let clock = self.clock
        router.register(Admin.CreateWebhook) { (request: WebhookSubscription, _) in
            let violations = await Self.webhookViolations(request)
            guard violations.isEmpty else { throw RPCError.invalidArgument(violations) }
            let now = clock.nowMs()
            let secret = WebhookEvents.newSecret()
            let created = try await pool.transaction { connection -> WebhookSubscription in
                for (index, id) in request.serviceIDs.enumerated() { try MonitorChecks.service(connection, id, field: "service_ids[\(index)]") }
                if request.ownerUserID != 0, !(try UserStore.exists(connection, id: Int64(request.ownerUserID))) {
                    throw RPCError.invalidArgument([FieldViolation(field: "owner_user_id", description: "user \(request.ownerUserID) does not exist")])
                }
                let id = try connection.query(
                    """
                    INSERT INTO webhook_subscriptions (url, description, event_types, service_ids, headers, secret, created_at_ms, owner_user_id)
                    VALUES ($1, $2, $3::text[], $4::bigint[], $5::jsonb, $6, $7, nullif($8, 0)) RETURNING id
                    """,
                    [request.url, request.description, PGArray(request.eventTypes), PGArray(request.serviceIDs.map(Int64.init)),
                     JSON.object(request.headers), secret, now, Int64(request.ownerUserID)]).int64(0, "id")!
                let rows = try connection.query("SELECT \(Self.webhookColumns) FROM webhook_subscriptions w WHERE w.id = $1", [id])
                var created = Self.webhook(rows, 0)
                created.secret = secret
                return created
            }
            WebhookEvents.subscribed()
            return created
        }
        router.register(Admin.ListWebhooks) { (_: Empty, _) in
            try await pool.withConnection { connection in
                let rows = try connection.query("SELECT \(Self.webhookColumns) FROM webhook_subscriptions w ORDER BY w.id")
                return WebhookList(webhooks: (0..<rows.count).map { Self.webhook(rows, $0) })
            }
        }
        router.register(Admin.DeleteWebhook) { (request: AdminIDRequest, _) in
            try await pool.transaction { connection in
                guard try connection.query("DELETE FROM webhook_subscriptions WHERE id = $1", [Int64(request.id)]).affectedRows == 1 else {
                    throw RPCError(.notFound, "webhook subscription \(request.id) does not exist")
                }
            }
            return Empty()
        }
        router.register(Admin.EnableWebhook) { (request: AdminIDRequest, _) in
            let enabled = try await pool.transaction { connection -> WebhookSubscription in
                guard try connection.query(
                    "UPDATE webhook_subscriptions SET enabled = true, consecutive_drops = 0, disabled_reason = '' WHERE id = $1", [Int64(request.id)]
                ).affectedRows == 1 else { throw RPCError(.notFound, "webhook subscription \(request.id) does not exist") }
                return Self.webhook(try connection.query("SELECT \(Self.webhookColumns) FROM webhook_subscriptions w WHERE w.id = $1", [Int64(request.id)]), 0)
            }
            WebhookEvents.subscribed()
            return enabled
        }
        router.register(Admin.ListWebhookDeliveries) { (request: ListWebhookDeliveriesRequest, _) in
            guard request.limit <= 500 else { throw RPCError.invalidArgument([FieldViolation(field: "limit", description: "must be at most 500")]) }
            return try await pool.withConnection { connection in
                let rows = try connection.query(
                    "SELECT * FROM webhook_deliveries WHERE subscription_id = $1 ORDER BY id DESC LIMIT $2",
                    [Int64(request.subscriptionID), Int64(request.limit == 0 ? 20 : request.limit)])
                return ListWebhookDeliveriesReply(deliveries: (0..<rows.count).map { Self.delivery(rows, $0) })
            }
        }
        router.register(Admin.RedeliverWebhook) { (request: AdminIDRequest, _) in
            let now = clock.nowMs()
            return try await pool.transaction { connection in
                // The same event (its id kept), due now, with a new 48 h of retries.
                let rows = try connection.query(
                    """
                    UPDATE webhook_deliveries SET status = 'pending', next_attempt_at_ms = $2, lease_until_ms = 0, attempts = 0,
                           finished_at_ms = NULL, created_at_ms = $2, last_error = ''
                    WHERE id = $1 AND status <> 'pending' RETURNING *
                    """, [Int64(request.id), now])
                guard !rows.isEmpty else {
                    throw RPCError(.failedPrecondition, "webhook delivery \(request.id) does not exist or is still pending")
                }
                return Self.delivery(rows, 0)
            }
        }
    }
}
