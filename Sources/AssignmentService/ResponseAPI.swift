import IncidentEngine
import KlaxonDomain
import NotifierService
import Shared

/// A major incident's response (issue 14, points 3–7): response plans, responder requests
/// (paged with reason `responder_request`; pending → joined | declined | no_answer), roles (one
/// commander at a time), the conference bridge, status updates to subscribers (paged with reason
/// `status_update`). Everything is timelined. Pages go through Notifier's outbox like any other,
/// so a person's own notification rules apply (minute zero included); the bridge, the role asked
/// and the update travel in the snapshot's details (`response.*`), which the webhook message
/// shows as its `response` object.
public struct ResponseAPI: Sendable {
    let pool: PostgresPool
    let clock: any WallClock
    let notifierOutbox: Waker

    public init(pool: PostgresPool, clock: any WallClock, notifierOutbox: Waker) {
        self.pool = pool
        self.clock = clock
        self.notifierOutbox = notifierOutbox
    }

    public static let roles: [String] = [
        "commander", "deputy", "scribe", "subject_matter_expert", "customer_liaison", "internal_liaison",
    ]
    static let defaultTimeoutSeconds: UInt32 = 300

    static func checkRole(_ role: String, field: String = "role", allowEmpty: Bool) throws {
        if role.isEmpty, allowEmpty { return }
        guard roles.contains(role) else {
            throw RPCError.invalidArgument([FieldViolation(field: field, description: "must be one of \(roles.joined(separator: ", "))")])
        }
    }

    /// Chat channel webhooks must be http(s) URLs (Slack-compatible incoming webhooks), at most 20.
    static func channelViolations(_ urls: [String], field: String = "channel_webhooks") -> [FieldViolation] {
        var violations: [FieldViolation] = []
        if urls.count > 20 { violations.append(FieldViolation(field: field, description: "at most 20")) }
        for (index, url) in urls.enumerated() {
            if url.count > 2048 {
                violations.append(FieldViolation(field: "\(field)[\(index)]", description: "at most 2048 characters"))
            } else if let problem = ChannelKind.slack.addressProblem(url) {
                violations.append(FieldViolation(field: "\(field)[\(index)]", description: problem))
            }
        }
        return violations
    }

    /// The major incident, locked; a clear refusal when it is not one.
    static func lockMajor(_ connection: PGConnection, _ id: UInt64) throws {
        let row = try connection.query("SELECT major, status FROM incidents WHERE id = $1 FOR UPDATE", [Int64(id)])
        guard row.count == 1 else { throw RPCError(.notFound, "incident \(id) does not exist") }
        guard row.bool(0, "major")! else {
            throw RPCError(.failedPrecondition, "incident \(id) is not a major incident: declare it first (klaxon incident declare \(id))")
        }
    }

    // MARK: Pages

    /// Queues one notify request per user (one outbox row), with the incident as it is now and
    /// the response's details (bridge, roles, `extra`).
    static func page(
        _ connection: PGConnection, incidentID: Int64, users: [Int64], reason: NotifyReason, extra: [String: String], now: Millis
    ) throws -> Int {
        guard !users.isEmpty else { return 0 }
        return try page(
            connection, incidentID: incidentID, users: users, reason: reason,
            snapshot: try snapshot(connection, incidentID: incidentID, extra: extra, now: now), now: now)
    }

    /// The same with the snapshot already made (a status update pages and posts one snapshot).
    static func page(
        _ connection: PGConnection, incidentID: Int64, users: [Int64], reason: NotifyReason, snapshot: IncidentSnapshot, now: Millis
    ) throws -> Int {
        guard !users.isEmpty else { return 0 }
        let messages = users.map { user in
            (Notifier.Notify.name, NotifyRequest(
                requestID: Outbox.newMessageID(), incidentID: UInt64(incidentID), userID: UInt64(user), reason: reason,
                snapshot: snapshot, requestedAtMs: now).wireBytes())
        }
        try Outbox.enqueueAll(connection, destination: Outbox.Destination.notifier, messages, now: now)
        return messages.count
    }

    /// Queues one post per chat channel subscribed to the incident (Notifier's PostToChannel).
    static func postToChannels(
        _ connection: PGConnection, incidentID: Int64, reason: NotifyReason, snapshot: IncidentSnapshot, now: Millis
    ) throws -> Int {
        let channels = try connection.query("SELECT url FROM incident_channel_subscribers WHERE incident_id = $1 ORDER BY url", [incidentID])
        guard channels.count > 0 else { return 0 }
        let messages = (0..<channels.count).map { row in
            (Notifier.PostToChannel.name, ChannelPost(
                requestID: Outbox.newMessageID(), incidentID: UInt64(incidentID), url: channels.string(row, "url")!, reason: reason,
                snapshot: snapshot, requestedAtMs: now).wireBytes())
        }
        try Outbox.enqueueAll(connection, destination: Outbox.Destination.notifier, messages, now: now)
        return messages.count
    }

    /// The incident as it is now, with the response's details (bridge, roles, `extra`).
    static func snapshot(_ connection: PGConnection, incidentID: Int64, extra: [String: String], now: Millis) throws -> IncidentSnapshot {
        let row = try connection.query(
            """
            SELECT i.number, i.title, i.status, i.urgency, i.service_id, s.name AS service_name, i.severity, i.dedup_key,
                   i.created_at_ms, i.details::text AS details, i.conference_url, i.conference_phone, i.chat_channel, i.priority
            FROM incidents i JOIN services s ON s.id = i.service_id WHERE i.id = $1
            """, [incidentID])
        var details = JSON.stringMap(row.string(0, "details") ?? "{}")
        for (key, column) in [("response.conference_url", "conference_url"), ("response.conference_phone", "conference_phone"),
                              ("response.chat_channel", "chat_channel"), ("response.priority", "priority")] {
            if let value = row.string(0, column), !value.isEmpty { details[key] = value }
        }
        let roles = try connection.query(
            "SELECT role, string_agg(user_id::text, ',' ORDER BY user_id) AS users FROM incident_roles WHERE incident_id = $1 GROUP BY role",
            [incidentID])
        for r in 0..<roles.count { details["response.role.\(roles.string(r, "role")!)"] = roles.string(r, "users")! }
        details.merge(extra) { _, new in new }
        return IncidentSnapshot(
            incidentID: UInt64(incidentID), number: row.uint64(0, "number")!, title: row.string(0, "title")!,
            status: IncidentStatus(rawValue: row.string(0, "status")!), urgency: Urgency(rawValue: row.string(0, "urgency")!),
            serviceID: row.uint64(0, "service_id")!, serviceName: row.string(0, "service_name")!, severity: row.string(0, "severity")!,
            dedupKey: row.string(0, "dedup_key")!, createdAtMs: row.int64(0, "created_at_ms")!, atMs: now, details: details)
    }

    // MARK: Requests

    /// Users behind the targets: users as given, whoever is on call on each schedule, a policy's
    /// first level (schedules resolved) — at `now`, duplicates removed, in order.
    static func resolveTargets(
        _ connection: PGConnection, users: [UInt64], schedules: [UInt64], policies: [UInt64], now: Millis
    ) throws -> [Int64] {
        var result: [Int64] = []
        func add(_ ids: [UInt64]) { for id in ids where !result.contains(Int64(id)) { result.append(Int64(id)) } }
        if !users.isEmpty {
            let found = try connection.query("SELECT id FROM users WHERE id = ANY($1::bigint[])", [PGArray(users.map(Int64.init))])
            let known = Set((0..<found.count).map { found.uint64($0, "id")! })
            if let missing = users.first(where: { !known.contains($0) }) {
                throw RPCError.invalidArgument([FieldViolation(field: "user_ids", description: "user \(missing) does not exist")])
            }
            add(users)
        }
        if !schedules.isEmpty {
            let loaded = try ScheduleStore.load(connection, ids: schedules.map(Int64.init))
            for id in schedules {
                guard let found = loaded[Int64(id)] else {
                    throw RPCError.invalidArgument([FieldViolation(field: "schedule_ids", description: "schedule \(id) does not exist")])
                }
                add(found.schedule.onCall(at: now))
            }
        }
        for id in policies {
            guard let policy = try IncidentStore.policy(connection, id: Int64(id)) else {
                throw RPCError.invalidArgument([FieldViolation(field: "policy_ids", description: "escalation policy \(id) does not exist")])
            }
            let core = IncidentCore(policy: policy, settings: IncidentSettings(), schedules: try ScheduleStore.schedules(connection, for: policy))
            add(core.assignees(ofLevel: 1, at: now))
        }
        return result
    }

    /// Records requests for `users` (one per person per incident: asking again re-opens a
    /// declined or unanswered one) and pages them. Returns how many were paged.
    static func request(
        _ connection: PGConnection, incidentID: Int64, users: [Int64], message: String, role: String, timeoutSeconds: UInt32,
        by actor: String, now: Millis
    ) throws -> Int {
        guard !users.isEmpty else { return 0 }
        let timeoutAt = now + Millis(timeoutSeconds) * 1000
        let asked = try connection.query(
            """
            INSERT INTO responder_requests (incident_id, user_id, requested_by, message, role, requested_at_ms, timeout_at_ms)
            SELECT $1, u, $3, $4, nullif($5, ''), $6, $7 FROM unnest($2::bigint[]) AS u
            ON CONFLICT (incident_id, user_id) DO UPDATE
                SET state = 'pending', requested_by = $3, message = $4, role = nullif($5, ''), requested_at_ms = $6,
                    timeout_at_ms = $7, answered_at_ms = NULL
                WHERE responder_requests.state <> 'joined'
            RETURNING user_id
            """, [incidentID, PGArray(users), actor, message, role, now, timeoutAt])
        let paged = (0..<asked.count).map { asked.int64($0, "user_id")! }
        for user in paged {
            try Timeline.append(connection, incidentID: incidentID, TimelineEntry(
                at: now, type: .responderRequested, actor: actor,
                details: ["user": String(user), "role": role, "message": message, "timeout_seconds": String(timeoutSeconds)]))
        }
        var extra = ["response.message": message]
        if !role.isEmpty { extra["response.requested_role"] = role }
        return try page(connection, incidentID: incidentID, users: paged, reason: .responderRequest, extra: extra, now: now)
    }

    /// Pending requests past their timeout become no_answer (run every second by the surge loop).
    static func expireRequests(_ connection: PGConnection, now: Millis) throws {
        let expired = try connection.query(
            """
            UPDATE responder_requests SET state = 'no_answer'
            WHERE id IN (SELECT id FROM responder_requests WHERE state = 'pending' AND timeout_at_ms <= $1 FOR UPDATE SKIP LOCKED)
            RETURNING incident_id, user_id, timeout_at_ms
            """, [now])
        for row in 0..<expired.count {
            try Timeline.append(connection, incidentID: expired.int64(row, "incident_id")!, TimelineEntry(
                at: expired.int64(row, "timeout_at_ms")!, type: .responderNoAnswer, actor: "klaxon",
                details: ["user": expired.string(row, "user_id")!]))
        }
    }

    // MARK: Plans

    /// Applies a plan to a major incident: its bridge and chat channel, its subscribers, and a
    /// request to each of its responders (with the role the plan gives them).
    static func applyPlan(_ connection: PGConnection, incidentID: Int64, planName: String, actor: String, now: Millis) throws -> Int {
        let plan = try connection.query("SELECT * FROM response_plans WHERE name = $1", [planName])
        guard plan.count == 1 else {
            throw RPCError.invalidArgument([FieldViolation(field: "response_plan", description: "response plan \"\(planName)\" does not exist")])
        }
        let planID = plan.int64(0, "id")!
        try connection.query(
            """
            UPDATE incidents SET response_plan_id = $2, conference_url = $3, conference_phone = $4, chat_channel = $5 WHERE id = $1
            """, [incidentID, planID, plan.string(0, "conference_url")!, plan.string(0, "conference_phone")!, plan.string(0, "chat_channel")!])
        try connection.query(
            """
            INSERT INTO incident_subscribers (incident_id, user_id, added_at_ms)
            SELECT $1, user_id, $3 FROM response_plan_subscribers WHERE plan_id = $2 ON CONFLICT DO NOTHING
            """, [incidentID, planID, now])
        try connection.query(
            """
            INSERT INTO incident_channel_subscribers (incident_id, url, added_at_ms)
            SELECT $1, url, $3 FROM response_plan_channels WHERE plan_id = $2 ON CONFLICT DO NOTHING
            """, [incidentID, planID, now])
        try Timeline.append(connection, incidentID: incidentID, TimelineEntry(
            at: now, type: .responsePlanApplied, actor: actor,
            details: ["plan": planName, "conference_url": plan.string(0, "conference_url")!, "conference_phone": plan.string(0, "conference_phone")!]))
        let responders = try connection.query(
            "SELECT user_id, schedule_id, policy_id, coalesce(role, '') AS role FROM response_plan_responders WHERE plan_id = $1 ORDER BY position",
            [planID])
        // One request per person: the first role the plan gives them.
        var byRole: [(role: String, users: [Int64])] = []
        var seen = Set<Int64>()
        for row in 0..<responders.count {
            let users = try resolveTargets(
                connection, users: responders.uint64(row, "user_id").map { [$0] } ?? [],
                schedules: responders.uint64(row, "schedule_id").map { [$0] } ?? [],
                policies: responders.uint64(row, "policy_id").map { [$0] } ?? [], now: now)
            let fresh = users.filter { seen.insert($0).inserted }
            byRole.append((responders.string(row, "role")!, fresh))
        }
        var paged = 0
        for (role, users) in byRole {
            paged += try request(
                connection, incidentID: incidentID, users: users, message: plan.string(0, "message")!, role: role,
                timeoutSeconds: UInt32(plan.int(0, "request_timeout_seconds")!), by: actor, now: now)
        }
        return paged
    }

    // MARK: Roles

    static func assignRole(_ connection: PGConnection, incidentID: Int64, role: String, user: Int64, actor: String, now: Millis) throws {
        if role == "commander" {
            let previous = try connection.query(
                "DELETE FROM incident_roles WHERE incident_id = $1 AND role = 'commander' AND user_id <> $2 RETURNING user_id", [incidentID, user])
            if previous.count == 1 {
                try Timeline.append(connection, incidentID: incidentID, TimelineEntry(
                    at: now, type: .roleHandedOver, actor: actor,
                    details: ["role": role, "from": previous.string(0, "user_id")!, "to": String(user)]))
            }
        }
        let added = try connection.query(
            """
            INSERT INTO incident_roles (incident_id, role, user_id, assigned_at_ms, assigned_by) VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT DO NOTHING RETURNING user_id
            """, [incidentID, role, user, now, actor])
        if added.count == 1 {
            try Timeline.append(connection, incidentID: incidentID, TimelineEntry(
                at: now, type: .roleAssigned, actor: actor, details: ["role": role, "user": String(user)]))
        }
    }

    static func response(_ connection: PGConnection, incidentID: Int64) throws -> IncidentResponse {
        let row = try connection.query(
            """
            SELECT i.conference_url, i.conference_phone, i.chat_channel, coalesce(p.name, '') AS plan
            FROM incidents i LEFT JOIN response_plans p ON p.id = i.response_plan_id WHERE i.id = $1
            """, [incidentID])
        let requests = try connection.query(
            "SELECT * FROM responder_requests WHERE incident_id = $1 ORDER BY requested_at_ms, id", [incidentID])
        let roles = try connection.query(
            "SELECT * FROM incident_roles WHERE incident_id = $1 ORDER BY array_position($2::text[], role), assigned_at_ms, user_id",
            [incidentID, PGArray(roles)])
        let updates = try connection.query("SELECT * FROM status_updates WHERE incident_id = $1 ORDER BY id", [incidentID])
        let subscribers = try connection.query("SELECT user_id FROM incident_subscribers WHERE incident_id = $1 ORDER BY user_id", [incidentID])
        let channels = try connection.query("SELECT url FROM incident_channel_subscribers WHERE incident_id = $1 ORDER BY url", [incidentID])
        return IncidentResponse(
            incidentID: UInt64(incidentID), responsePlan: row.string(0, "plan")!, conferenceURL: row.string(0, "conference_url")!,
            conferencePhone: row.string(0, "conference_phone")!, chatChannel: row.string(0, "chat_channel")!,
            requests: (0..<requests.count).map { r in
                ResponderRequestView(
                    userID: requests.uint64(r, "user_id")!, state: requests.string(r, "state")!, role: requests.string(r, "role") ?? "",
                    message: requests.string(r, "message")!, requestedBy: requests.string(r, "requested_by")!,
                    requestedAtMs: requests.int64(r, "requested_at_ms")!, answeredAtMs: requests.int64(r, "answered_at_ms") ?? 0,
                    timeoutAtMs: requests.int64(r, "timeout_at_ms")!)
            },
            roles: (0..<roles.count).map { r in
                RoleHolder(
                    role: roles.string(r, "role")!, userID: roles.uint64(r, "user_id")!, assignedAtMs: roles.int64(r, "assigned_at_ms")!,
                    assignedBy: roles.string(r, "assigned_by")!)
            },
            updates: (0..<updates.count).map { r in
                StatusUpdateView(author: updates.string(r, "author")!, text: updates.string(r, "body")!, atMs: updates.int64(r, "at_ms")!)
            },
            subscriberIDs: (0..<subscribers.count).map { subscribers.uint64($0, "user_id")! },
            channelWebhooks: (0..<channels.count).map { AddressMask.mask(channels.string($0, "url")!, channel: "slack") })
    }

    // MARK: Handlers

    public func register(into router: inout RPCRouter) {
        let pool = self.pool, clock = self.clock, outbox = self.notifierOutbox
        /// Runs `body` in a transaction on a major incident, pokes Notifier's outbox when pages
        /// were queued, and answers with the response.
        @Sendable func onMajor(_ id: UInt64, _ body: @escaping @Sendable (PGConnection, Millis) throws -> Int) async throws -> IncidentResponse {
            let now = clock.nowMs()
            let (paged, response) = try await pool.transaction { connection in
                try Self.lockMajor(connection, id)
                let paged = try body(connection, now)
                return (paged, try Self.response(connection, incidentID: Int64(id)))
            }
            if paged > 0 { outbox.poke() }
            return response
        }
        router.register(Assignment.RequestResponders) { (request: RequestRespondersRequest, context) in
            try Self.checkRole(request.role, allowEmpty: true)
            let timeout = request.timeoutSeconds == 0 ? Self.defaultTimeoutSeconds : request.timeoutSeconds
            guard (5...86_400).contains(timeout) else {
                throw RPCError.invalidArgument([FieldViolation(field: "timeout_seconds", description: "must be 5 to 86400")])
            }
            guard !(request.userIDs.isEmpty && request.scheduleIDs.isEmpty && request.policyIDs.isEmpty) else {
                throw RPCError.invalidArgument([FieldViolation(field: "user_ids", description: "name at least one user, schedule or policy")])
            }
            let actor = MajorIncidentsAPI.actor(context)
            return try await onMajor(request.incidentID) { connection, now in
                let users = try Self.resolveTargets(
                    connection, users: request.userIDs, schedules: request.scheduleIDs, policies: request.policyIDs, now: now)
                return try Self.request(
                    connection, incidentID: Int64(request.incidentID), users: users, message: request.message, role: request.role,
                    timeoutSeconds: timeout, by: actor, now: now)
            }
        }
        router.register(Assignment.AnswerResponderRequest) { (request: ResponderAnswer, context) in
            let user = Int64(try context.actingUser(requested: request.userID))
            let actor = MajorIncidentsAPI.actor(context)
            return try await onMajor(request.incidentID) { connection, now in
                let id = Int64(request.incidentID)
                let found = try connection.query(
                    "SELECT state, coalesce(role, '') AS role FROM responder_requests WHERE incident_id = $1 AND user_id = $2 FOR UPDATE", [id, user])
                guard found.count == 1 else {
                    throw RPCError(.failedPrecondition, "user \(user) was not asked to join incident \(request.incidentID)")
                }
                let state = request.join ? "joined" : "declined"
                guard found.string(0, "state") != state else { return 0 }
                try connection.query(
                    "UPDATE responder_requests SET state = $3, answered_at_ms = $4 WHERE incident_id = $1 AND user_id = $2",
                    [id, user, state, now])
                try Timeline.append(connection, incidentID: id, TimelineEntry(
                    at: now, type: request.join ? .responderJoined : .responderDeclined, actor: actor, details: ["user": String(user)]))
                let role = found.string(0, "role")!
                if request.join, !role.isEmpty {
                    try Self.assignRole(connection, incidentID: id, role: role, user: user, actor: actor, now: now)
                }
                return 0
            }
        }
        router.register(Assignment.AssignRole) { (request: AssignRoleRequest, context) in
            try Self.checkRole(request.role, allowEmpty: false)
            guard request.userID != 0 else { throw RPCError.invalidArgument([FieldViolation(field: "user_id", description: "is required")]) }
            let actor = MajorIncidentsAPI.actor(context)
            return try await onMajor(request.incidentID) { connection, now in
                let id = Int64(request.incidentID), user = Int64(request.userID)
                guard !(try connection.query("SELECT 1 FROM users WHERE id = $1", [user]).isEmpty) else {
                    throw RPCError.invalidArgument([FieldViolation(field: "user_id", description: "user \(user) does not exist")])
                }
                if request.relinquish {
                    let removed = try connection.query(
                        "DELETE FROM incident_roles WHERE incident_id = $1 AND role = $2 AND user_id = $3 RETURNING user_id", [id, request.role, user])
                    guard removed.count == 1 else {
                        throw RPCError(.failedPrecondition, "user \(user) does not hold the role \(request.role) on incident \(id)")
                    }
                    try Timeline.append(connection, incidentID: id, TimelineEntry(
                        at: now, type: .roleRelinquished, actor: actor, details: ["role": request.role, "user": String(user)]))
                } else {
                    try Self.assignRole(connection, incidentID: id, role: request.role, user: user, actor: actor, now: now)
                }
                return 0
            }
        }
        router.register(Assignment.PostStatusUpdate) { (request: PostStatusUpdateRequest, context) in
            let text = request.text.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !text.isEmpty, text.count <= 4000 else {
                throw RPCError.invalidArgument([FieldViolation(field: "text", description: "must be 1 to 4000 characters")])
            }
            let actor = MajorIncidentsAPI.actor(context)
            return try await onMajor(request.incidentID) { connection, now in
                let id = Int64(request.incidentID)
                try connection.query("INSERT INTO status_updates (incident_id, author, body, at_ms) VALUES ($1, $2, $3, $4)", [id, actor, text, now])
                try Timeline.append(connection, incidentID: id, TimelineEntry(at: now, type: .statusUpdate, actor: actor, details: ["text": text]))
                let subscribers = try connection.query("SELECT user_id FROM incident_subscribers WHERE incident_id = $1 ORDER BY user_id", [id])
                let snapshot = try Self.snapshot(connection, incidentID: id, extra: ["response.status_update": text], now: now)
                let paged = try Self.page(
                    connection, incidentID: id, users: (0..<subscribers.count).map { subscribers.int64($0, "user_id")! }, reason: .statusUpdate,
                    snapshot: snapshot, now: now)
                return paged + (try Self.postToChannels(connection, incidentID: id, reason: .statusUpdate, snapshot: snapshot, now: now))
            }
        }
        router.register(Assignment.Subscribe) { (request: SubscribeRequest, context) in
            guard !request.userIDs.isEmpty || !request.channelWebhooks.isEmpty else {
                throw RPCError.invalidArgument([FieldViolation(field: "user_ids", description: "name at least one user or channel webhook")])
            }
            if !request.remove {
                let violations = Self.channelViolations(request.channelWebhooks)
                guard violations.isEmpty else { throw RPCError.invalidArgument(violations) }
            }
            let actor = MajorIncidentsAPI.actor(context)
            return try await onMajor(request.incidentID) { connection, now in
                let id = Int64(request.incidentID)
                let users = try Self.resolveTargets(connection, users: request.userIDs, schedules: [], policies: [], now: now)
                if request.remove {
                    try connection.query("DELETE FROM incident_subscribers WHERE incident_id = $1 AND user_id = ANY($2::bigint[])", [id, PGArray(users)])
                } else {
                    try connection.query(
                        """
                        INSERT INTO incident_subscribers (incident_id, user_id, added_at_ms)
                        SELECT $1, u, $3 FROM unnest($2::bigint[]) AS u ON CONFLICT DO NOTHING
                        """, [id, PGArray(users), now])
                }
                if request.remove {
                    try connection.query(
                        "DELETE FROM incident_channel_subscribers WHERE incident_id = $1 AND url = ANY($2::text[])", [id, PGArray(request.channelWebhooks)])
                } else {
                    try connection.query(
                        """
                        INSERT INTO incident_channel_subscribers (incident_id, url, added_at_ms)
                        SELECT $1, u, $3 FROM unnest($2::text[]) AS u ON CONFLICT DO NOTHING
                        """, [id, PGArray(request.channelWebhooks), now])
                }
                var details: [String: String] = [:]
                if !users.isEmpty { details[request.remove ? "unsubscribed" : "subscribed"] = users.map(String.init).joined(separator: ",") }
                if !request.channelWebhooks.isEmpty {
                    details[request.remove ? "unsubscribed_channels" : "subscribed_channels"] = request.channelWebhooks.map { AddressMask.mask($0, channel: "slack") }.joined(separator: ",")
                }
                try Timeline.append(connection, incidentID: id, TimelineEntry(at: now, type: .note, actor: actor, details: details))
                return 0
            }
        }
        router.register(Assignment.GetResponse) { (request: GetIncidentRequest, _) in
            try await pool.withConnection { connection in
                let row = try connection.query("SELECT major FROM incidents WHERE id = $1", [Int64(request.incidentID)])
                guard row.count == 1 else { throw RPCError(.notFound, "incident \(request.incidentID) does not exist") }
                return try Self.response(connection, incidentID: Int64(request.incidentID))
            }
        }
    }
}
