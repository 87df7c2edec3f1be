import Foundation
import KlaxonDomain
import Shared

/// Response plans in PostgreSQL: validation, create, replace, delete, list, and a plan resolved
/// to people at an instant for `ResponseCore`. The API and `klaxon apply` both come here, so
/// a plan is checked and written one way.
public enum PlanStore {
    public static let maxResponders = 50
    public static let maxChannels = 20

    /// Chat channel webhooks must be http(s) URLs (Slack-compatible incoming webhooks), at most 20.
    public static func channelViolations(_ urls: [String], field: String = "channel_webhooks") -> [FieldViolation] {
        var violations: [FieldViolation] = []
        if urls.count > maxChannels { violations.append(FieldViolation(field: field, description: "at most \(maxChannels)")) }
        for (index, url) in urls.enumerated() {
            if url.count > 2048 {
                violations.append(FieldViolation(field: "\(field)[\(index)]", description: "at most 2048 characters"))
            } else if let problem = AddressRules.httpURLProblem(url) {
                violations.append(FieldViolation(field: "\(field)[\(index)]", description: problem))
            }
        }
        return violations
    }

    /// What is wrong with a plan's fields (not its references), each naming its field.
    public static func violations(_ plan: ResponsePlan) -> [FieldViolation] {
        var violations: [FieldViolation] = []
        let name = plan.name.trimmingCharacters(in: .whitespaces)
        if name.isEmpty || name.count > 255 { violations.append(FieldViolation(field: "name", description: "is required (1–255 characters)")) }
        if plan.responders.count > maxResponders { violations.append(FieldViolation(field: "responders", description: "at most \(maxResponders)")) }
        for (index, responder) in plan.responders.enumerated() {
            let set = [responder.userID, responder.scheduleID, responder.policyID].filter { $0 != 0 }.count
            if set != 1 {
                violations.append(FieldViolation(field: "responders[\(index)]", description: "set exactly one of user_id, schedule_id, policy_id"))
            }
            if !responder.role.isEmpty, Role(rawValue: responder.role) == nil {
                violations.append(FieldViolation(field: "responders[\(index)].role", description: "must be one of \(Role.listed)"))
            }
        }
        for (field, value) in [("conference_url", plan.conferenceURL), ("conference_phone", plan.conferencePhone), ("chat_channel", plan.chatChannel)]
        where value.count > 1024 {
            violations.append(FieldViolation(field: field, description: "at most 1024 characters"))
        }
        if !plan.conferenceURL.isEmpty, !(plan.conferenceURL.hasPrefix("https://") || plan.conferenceURL.hasPrefix("http://")) {
            violations.append(FieldViolation(field: "conference_url", description: "must be an http(s) URL"))
        }
        if plan.requestTimeoutSeconds != 0, !ResponseCore.timeoutRange.contains(plan.requestTimeoutSeconds) {
            violations.append(FieldViolation(field: "request_timeout_seconds", description: "must be 5 to 86400"))
        }
        violations += channelViolations(plan.channelWebhooks)
        return violations
    }

    public static func create(_ connection: PGConnection, _ plan: ResponsePlan, now: Millis) throws -> ResponsePlan {
        let violations = violations(plan)
        guard violations.isEmpty else { throw RPCError.invalidArgument(violations) }
        let name = plan.name.trimmingCharacters(in: .whitespaces)
        guard try id(connection, named: name) == nil else { throw RPCError(.alreadyExists, "a response plan named \"\(name)\" exists") }
        let id = try connection.query(
            "INSERT INTO response_plans (name, created_at_ms) VALUES ($1, $2) RETURNING id", [name, now]).int64(0, "id")!
        try replace(connection, plan, id: id)
        return try all(connection, id: id).first!
    }

    /// Writes a (validated) plan's fields over plan `id`, its responders, subscribers and
    /// channels replaced by the plan's.
    public static func replace(_ connection: PGConnection, _ plan: ResponsePlan, id: Int64) throws {
        try connection.query(
            """
            UPDATE response_plans SET conference_url = $2, conference_phone = $3, chat_channel = $4, message = $5, request_timeout_seconds = $6
            WHERE id = $1
            """, [id, plan.conferenceURL, plan.conferencePhone, plan.chatChannel, plan.message,
                  Int(plan.requestTimeoutSeconds == 0 ? ResponseCore.defaultTimeoutSeconds : plan.requestTimeoutSeconds)])
        for table in ["response_plan_responders", "response_plan_subscribers", "response_plan_channels"] {
            try connection.query("DELETE FROM \(table) WHERE plan_id = $1", [id])
        }
        do {
            if !plan.responders.isEmpty {
                try connection.query(
                    """
                    INSERT INTO response_plan_responders (plan_id, position, user_id, schedule_id, policy_id, role)
                    SELECT $1::bigint, p, nullif(u, 0), nullif(s, 0), nullif(q, 0), nullif(r, '')
                    FROM unnest($2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::text[]) AS x(p, u, s, q, r)
                    """,
                    [id, PGArray(plan.responders.indices.map { Int64($0 + 1) }), PGArray(plan.responders.map { Int64($0.userID) }),
                     PGArray(plan.responders.map { Int64($0.scheduleID) }), PGArray(plan.responders.map { Int64($0.policyID) }),
                     PGArray(plan.responders.map(\.role))])
            }
            try connection.query(
                "INSERT INTO response_plan_subscribers (plan_id, user_id) SELECT DISTINCT $1::bigint, u FROM unnest($2::bigint[]) AS u",
                [id, PGArray(plan.subscriberIDs.map(Int64.init))])
            try connection.query(
                "INSERT INTO response_plan_channels (plan_id, url) SELECT DISTINCT $1::bigint, u FROM unnest($2::text[]) AS u",
                [id, PGArray(plan.channelWebhooks)])
        } catch let error as PostgresError where error.sqlState == "23503" {
            throw RPCError.invalidArgument([FieldViolation(field: "responders", description: "a user, schedule or policy named does not exist")])
        }
    }

    public static func delete(_ connection: PGConnection, id: Int64) throws {
        let deleted = try connection.query("DELETE FROM response_plans WHERE id = $1 RETURNING id", [id])
        guard deleted.count == 1 else { throw RPCError(.notFound, "response plan \(id) does not exist") }
    }

    public static func id(_ connection: PGConnection, named name: String) throws -> Int64? {
        try connection.query("SELECT id FROM response_plans WHERE name = $1", [name]).int64(0, "id")
    }

    /// Every plan (or plan `id` alone), in id order (channel webhooks masked when asked: their
    /// path is a secret).
    public static func all(_ connection: PGConnection, id only: Int64? = nil, maskChannels: Bool = false) throws -> [ResponsePlan] {
        let filter = "$1::bigint IS NULL OR"
        let rows = try connection.query("SELECT * FROM response_plans WHERE \(filter) id = $1 ORDER BY id", [only])
        let channels = try connection.query("SELECT * FROM response_plan_channels WHERE \(filter) plan_id = $1 ORDER BY plan_id, url", [only])
        let responders = try connection.query("SELECT * FROM response_plan_responders WHERE \(filter) plan_id = $1 ORDER BY plan_id, position", [only])
        let subscribers = try connection.query("SELECT * FROM response_plan_subscribers WHERE \(filter) plan_id = $1 ORDER BY plan_id, user_id", [only])
        return (0..<rows.count).map { row in
            let id = rows.int64(row, "id")!
            return ResponsePlan(
                id: UInt64(id), name: rows.string(row, "name")!,
                responders: (0..<responders.count).filter { responders.int64($0, "plan_id") == id }.map { r in
                    ResponsePlanResponder(
                        userID: responders.uint64(r, "user_id") ?? 0, scheduleID: responders.uint64(r, "schedule_id") ?? 0,
                        policyID: responders.uint64(r, "policy_id") ?? 0, role: responders.string(r, "role") ?? "")
                },
                subscriberIDs: (0..<subscribers.count).filter { subscribers.int64($0, "plan_id") == id }.map { subscribers.uint64($0, "user_id")! },
                conferenceURL: rows.string(row, "conference_url")!, conferencePhone: rows.string(row, "conference_phone")!,
                chatChannel: rows.string(row, "chat_channel")!, message: rows.string(row, "message")!,
                requestTimeoutSeconds: UInt32(rows.int(row, "request_timeout_seconds")!),
                channelWebhooks: (0..<channels.count).filter { channels.int64($0, "plan_id") == id }.map { r in
                    let url = channels.string(r, "url")!
                    return maskChannels ? Masking.url(url) : url
                })
        }
    }

    /// The plan named `name`, its responders resolved to people at `now` (on call, a policy's
    /// first level), for `ResponseCommand.applyPlan`.
    public static func resolved(_ connection: PGConnection, named name: String, now: Millis) throws -> ResolvedPlan {
        guard let id = try id(connection, named: name), let plan = try resolved(connection, id: id, now: now) else {
            throw RPCError.invalidArgument([FieldViolation(field: "response_plan", description: "response plan \"\(name)\" does not exist")])
        }
        return plan
    }

    /// Plan `id` resolved to people at `now` (nil: no such plan).
    public static func resolved(_ connection: PGConnection, id: Int64, now: Millis) throws -> ResolvedPlan? {
        guard let plan = try all(connection, id: id).first else { return nil }
        var responders: [(role: Role?, users: [UInt64])] = []
        for responder in plan.responders {
            let users = try ResponseStore.resolveTargets(
                connection, users: responder.userID == 0 ? [] : [responder.userID],
                schedules: responder.scheduleID == 0 ? [] : [responder.scheduleID],
                policies: responder.policyID == 0 ? [] : [responder.policyID], now: now)
            responders.append((Role(rawValue: responder.role), users))
        }
        return ResolvedPlan(
            id: Int64(plan.id), name: plan.name,
            bridge: Bridge(conferenceURL: plan.conferenceURL, conferencePhone: plan.conferencePhone, chatChannel: plan.chatChannel),
            message: plan.message, timeoutSeconds: plan.requestTimeoutSeconds, responders: responders, subscribers: plan.subscriberIDs,
            channels: plan.channelWebhooks)
    }
}
