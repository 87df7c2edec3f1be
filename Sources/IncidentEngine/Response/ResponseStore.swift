import KlaxonDomain
import Shared

/// A major incident's response, in PostgreSQL: loads it (locking the incident's row, so commands
/// on one incident are serialised with its actions), applies `ResponseCore`, and saves the
/// transition — requests, roles, subscribers, channels, the bridge, status updates, the timeline
/// and the pages — in the caller's transaction. The only writer of the response tables
/// (responder_requests, incident_roles, incident_subscribers, incident_channel_subscribers,
/// status_updates) and of an incident's bridge columns.
public enum ResponseStore {
    public struct Outcome: Sendable {
        public var transition: ResponseTransition
        /// Pages and channel posts queued for Notifier (poke its outbox relay after commit when > 0).
        public var queued: Int
    }

    /// One command: one load, one save. Throws NOT_FOUND for an unknown incident and the core's
    /// refusal (FAILED_PRECONDITION, INVALID_ARGUMENT) as an RPC status.
    @discardableResult
    public static func run(_ command: ResponseCommand, incidentID: Int64, connection: PGConnection, now: Millis) throws -> Outcome {
        try run(incidentID: incidentID, connection: connection, now: now) { _ in command }
    }

    /// The same, with the command made from the loaded state (a handler that must resolve
    /// targets first checks `ResponseCore.requireOpen` on it, so a closed response refuses
    /// before anything else is looked up).
    @discardableResult
    public static func run(
        incidentID: Int64, connection: PGConnection, now: Millis, command: (ResponseState) throws -> ResponseCommand
    ) throws -> Outcome {
        guard let state = try load(connection, incidentID: incidentID, forUpdate: true) else {
            throw RPCError(.notFound, "incident \(incidentID) does not exist")
        }
        let made = try command(state)
        let transition: ResponseTransition
        do {
            transition = try ResponseCore.apply(made, to: state, now: now)
        } catch {
            throw error.rpcError
        }
        let queued = try save(state, transition, connection: connection, now: now)
        return Outcome(transition: transition, queued: queued)
    }

    /// The response of incident `incidentID` (nil: no such incident).
    public static func load(_ connection: PGConnection, incidentID: Int64, forUpdate: Bool = false) throws -> ResponseState? {
        let row = try connection.query(
            """
            SELECT major, status, conference_url, conference_phone, chat_channel, response_plan_id FROM incidents WHERE id = $1
            \(forUpdate ? "FOR UPDATE" : "")
            """, [incidentID])
        guard row.count == 1 else { return nil }
        var state = ResponseState(
            incidentID: UInt64(incidentID), major: row.bool(0, "major")!,
            status: IncidentStatus(rawValue: row.string(0, "status")!) ?? .triggered,
            bridge: Bridge(
                conferenceURL: row.string(0, "conference_url")!, conferencePhone: row.string(0, "conference_phone")!,
                chatChannel: row.string(0, "chat_channel")!, planID: row.int64(0, "response_plan_id")))
        guard state.major else { return state }  // an ordinary incident has no response to load
        let requests = try connection.query(
            "SELECT * FROM responder_requests WHERE incident_id = $1 ORDER BY requested_at_ms, id", [incidentID])
        state.requests = (0..<requests.count).map { r in
            ResponderRequest(
                user: requests.uint64(r, "user_id")!, state: RequestState(rawValue: requests.string(r, "state")!) ?? .pending,
                role: requests.string(r, "role").flatMap(Role.init(rawValue:)), message: requests.string(r, "message")!,
                requestedBy: requests.string(r, "requested_by")!, requestedAt: requests.int64(r, "requested_at_ms")!,
                timeoutAt: requests.int64(r, "timeout_at_ms")!, answeredAt: requests.int64(r, "answered_at_ms"))
        }
        let roles = try connection.query(
            "SELECT * FROM incident_roles WHERE incident_id = $1 ORDER BY array_position($2::text[], role), assigned_at_ms, user_id",
            [incidentID, PGArray(Role.allCases.map(\.rawValue))])
        state.roles = (0..<roles.count).compactMap { r in
            Role(rawValue: roles.string(r, "role")!).map {
                RoleHolding(role: $0, user: roles.uint64(r, "user_id")!, assignedAt: roles.int64(r, "assigned_at_ms")!,
                            assignedBy: roles.string(r, "assigned_by")!)
            }
        }
        let subscribers = try connection.query("SELECT user_id FROM incident_subscribers WHERE incident_id = $1 ORDER BY user_id", [incidentID])
        state.subscribers = (0..<subscribers.count).map { subscribers.uint64($0, "user_id")! }
        let channels = try connection.query("SELECT url FROM incident_channel_subscribers WHERE incident_id = $1 ORDER BY url", [incidentID])
        state.channels = (0..<channels.count).map { channels.string($0, "url")! }
        return state
    }

    /// Writes what changed and carries out the effects; returns how many pages and posts were queued.
    static func save(_ old: ResponseState, _ transition: ResponseTransition, connection: PGConnection, now: Millis) throws -> Int {
        let new = transition.state
        let id = Int64(new.incidentID)
        if new.bridge != old.bridge {
            try connection.enqueue(
                "UPDATE incidents SET response_plan_id = $2, conference_url = $3, conference_phone = $4, chat_channel = $5 WHERE id = $1",
                [id, new.bridge.planID, new.bridge.conferenceURL, new.bridge.conferencePhone, new.bridge.chatChannel])
        }
        let changed = new.requests.filter { request in old.request(of: request.user) != request }
        if !changed.isEmpty {
            try connection.enqueue(
                """
                INSERT INTO responder_requests (incident_id, user_id, state, role, message, requested_by, requested_at_ms, timeout_at_ms, answered_at_ms)
                SELECT $1, u, s, r, m, b, a, t, w::bigint
                FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::bigint[], $9::text[])
                     AS q(u, s, r, m, b, a, t, w)
                ON CONFLICT (incident_id, user_id) DO UPDATE
                    SET state = excluded.state, role = excluded.role, message = excluded.message, requested_by = excluded.requested_by,
                        requested_at_ms = excluded.requested_at_ms, timeout_at_ms = excluded.timeout_at_ms, answered_at_ms = excluded.answered_at_ms
                """,
                [id, PGArray(changed.map { Int64($0.user) }), PGArray(changed.map(\.state.rawValue)),
                 PGArray(changed.map { $0.role?.rawValue } as [String?]), PGArray(changed.map(\.message)), PGArray(changed.map(\.requestedBy)),
                 PGArray(changed.map(\.requestedAt)), PGArray(changed.map(\.timeoutAt)),
                 PGArray(changed.map { $0.answeredAt.map(String.init) } as [String?])])
        }
        // Outbound webhooks: a responder asked (again), a responder's answer.
        for request in changed {
            let before = old.request(of: request.user)
            if request.state == .pending, before?.state != .pending || before?.requestedAt != request.requestedAt {
                let (user, message, role) = (request.user, request.message, request.role?.rawValue)
                try WebhookEvents.enqueue(connection, incidentID: id, type: "incident.responder.added", actor: request.requestedBy, now: now) { json in
                    json.beginObject("responder")
                    json.field("id", String(user))
                    json.field("type", "user_reference")
                    json.endObject()
                    json.field("message", message)
                    if let role { json.field("role", role) }
                }
            } else if request.state.isAnswered, before?.state == .pending {
                let (user, state) = (request.user, request.state.rawValue)
                try WebhookEvents.enqueue(
                    connection, incidentID: id, type: "incident.responder.replied", actor: "user \(user)",
                    agentUser: [.joined, .declined].contains(request.state) ? user : nil, now: now
                ) { json in
                    json.beginObject("responder")
                    json.field("id", String(user))
                    json.field("type", "user_reference")
                    json.endObject()
                    json.field("response", state)
                }
            }
        }
        let oldRoles = Set(old.roles.map { RoleKey(role: $0.role, user: $0.user) })
        let newRoles = Set(new.roles.map { RoleKey(role: $0.role, user: $0.user) })
        let gone = oldRoles.subtracting(newRoles), added = new.roles.filter { !oldRoles.contains(RoleKey(role: $0.role, user: $0.user)) }
        if !gone.isEmpty {
            try connection.enqueue(
                """
                DELETE FROM incident_roles WHERE incident_id = $1
                  AND (role, user_id) IN (SELECT * FROM unnest($2::text[], $3::bigint[]))
                """, [id, PGArray(gone.map(\.role.rawValue)), PGArray(gone.map { Int64($0.user) })])
        }
        if !added.isEmpty {
            try connection.enqueue(
                """
                INSERT INTO incident_roles (incident_id, role, user_id, assigned_at_ms, assigned_by)
                SELECT $1, r, u, a, b FROM unnest($2::text[], $3::bigint[], $4::bigint[], $5::text[]) AS x(r, u, a, b)
                """,
                [id, PGArray(added.map(\.role.rawValue)), PGArray(added.map { Int64($0.user) }), PGArray(added.map(\.assignedAt)),
                 PGArray(added.map(\.assignedBy))])
        }
        let unsubscribed = old.subscribers.filter { !new.subscribers.contains($0) }
        let subscribed = new.subscribers.filter { !old.subscribers.contains($0) }
        if !unsubscribed.isEmpty {
            try connection.enqueue(
                "DELETE FROM incident_subscribers WHERE incident_id = $1 AND user_id = ANY($2::bigint[])", [id, PGArray(unsubscribed.map(Int64.init))])
        }
        if !subscribed.isEmpty {
            try connection.enqueue(
                """
                INSERT INTO incident_subscribers (incident_id, user_id, added_at_ms)
                SELECT $1, u, $3 FROM unnest($2::bigint[]) AS u ON CONFLICT DO NOTHING
                """, [id, PGArray(subscribed.map(Int64.init)), now])
        }
        let channelsGone = old.channels.filter { !new.channels.contains($0) }
        let channelsAdded = new.channels.filter { !old.channels.contains($0) }
        if !channelsGone.isEmpty {
            try connection.enqueue(
                "DELETE FROM incident_channel_subscribers WHERE incident_id = $1 AND url = ANY($2::text[])", [id, PGArray(channelsGone)])
        }
        if !channelsAdded.isEmpty {
            try connection.enqueue(
                """
                INSERT INTO incident_channel_subscribers (incident_id, url, added_at_ms)
                SELECT $1, u, $3 FROM unnest($2::text[]) AS u ON CONFLICT DO NOTHING
                """, [id, PGArray(channelsAdded), now])
        }
        var messages: [(method: String, body: [UInt8])] = []
        var snapshots: [[String: String]: IncidentSnapshot] = [:]
        func snapshot(_ details: [String: String]) throws -> IncidentSnapshot {
            if let made = snapshots[details] { return made }
            let made = try Self.snapshot(connection, state: new, extra: details, now: now)
            snapshots[details] = made
            return made
        }
        var entries: [(incidentID: Int64, entry: TimelineEntry)] = []
        for effect in transition.effects {
            switch effect {
            case let .timeline(entry):
                entries.append((id, entry))
            case let .recordStatusUpdate(author, text, at):
                try connection.enqueue("INSERT INTO status_updates (incident_id, author, body, at_ms) VALUES ($1, $2, $3, $4)", [id, author, text, at])
                try WebhookEvents.enqueue(connection, incidentID: id, type: "incident.status_update_published", actor: author, now: now) { json in
                    json.beginObject("status_update")
                    json.field("message", text)
                    json.field("author", author)
                    json.field("created_at", RFC3339.string(millis: at))
                    json.endObject()
                }
            case let .page(users, reason, details):
                let made = try snapshot(details)
                for user in users {
                    messages.append((Notifier.Notify.name, NotifyRequest(
                        requestID: Outbox.newMessageID(), incidentID: new.incidentID, userID: user, reason: reason,
                        snapshot: made, requestedAtMs: now).wireBytes()))
                }
            case let .postToChannels(reason, details):
                let made = try snapshot(details)
                for url in new.channels.sorted() {
                    messages.append((Notifier.PostToChannel.name, ChannelPost(
                        requestID: Outbox.newMessageID(), incidentID: new.incidentID, url: url, reason: reason,
                        snapshot: made, requestedAtMs: now).wireBytes()))
                }
            }
        }
        try Timeline.enqueueMany(connection, entries)
        try Outbox.enqueueAll(connection, destination: Outbox.Destination.notifier, messages, now: now)
        return messages.count
    }

    private struct RoleKey: Hashable {
        var role: Role
        var user: UInt64
    }

    /// The incident as it is now, with the response's details (bridge, priority, roles) and `extra`.
    static func snapshot(_ connection: PGConnection, state: ResponseState, extra: [String: String], now: Millis) throws -> IncidentSnapshot {
        let row = try connection.query(
            """
            SELECT i.number, i.title, i.status, i.urgency, i.service_id, s.name AS service_name, i.severity, i.dedup_key,
                   i.created_at_ms, i.details::text AS details, i.priority
            FROM incidents i JOIN services s ON s.id = i.service_id WHERE i.id = $1
            """, [Int64(state.incidentID)])
        var details = JSON.stringMap(row.string(0, "details") ?? "{}")
        for (key, value) in [("response.conference_url", state.bridge.conferenceURL), ("response.conference_phone", state.bridge.conferencePhone),
                             ("response.chat_channel", state.bridge.chatChannel), ("response.priority", row.string(0, "priority") ?? "")]
        where !value.isEmpty {
            details[key] = value
        }
        for role in Role.allCases {
            let holders = state.holders(of: role).sorted()
            if !holders.isEmpty { details["response.role.\(role.rawValue)"] = holders.map(String.init).joined(separator: ",") }
        }
        details.merge(extra) { _, new in new }
        return IncidentSnapshot(
            incidentID: state.incidentID, number: row.uint64(0, "number")!, title: row.string(0, "title")!,
            status: IncidentStatus(rawValue: row.string(0, "status")!), urgency: Urgency(rawValue: row.string(0, "urgency")!),
            serviceID: row.uint64(0, "service_id")!, serviceName: row.string(0, "service_name")!, severity: row.string(0, "severity")!,
            dedupKey: row.string(0, "dedup_key")!, createdAtMs: row.int64(0, "created_at_ms")!, atMs: now, details: details)
    }

    // MARK: Due work

    /// Pending requests past their timeout become no_answer, incident by incident (each locked;
    /// one another replica or an action holds is skipped and taken on the next step). Returns
    /// how many incidents changed.
    public static func expireDue(_ connection: PGConnection, now: Millis, limit: Int = 100) throws -> Int {
        let due = try connection.query(
            """
            SELECT i.id FROM incidents i
            WHERE i.id IN (SELECT incident_id FROM responder_requests WHERE state = 'pending' AND timeout_at_ms <= $1)
            ORDER BY i.id LIMIT $2 FOR UPDATE SKIP LOCKED
            """, [now, limit])
        var changed = 0
        for row in 0..<due.count {
            let outcome = try run(.expireRequests, incidentID: due.int64(row, "id")!, connection: connection, now: now)
            if !outcome.transition.effects.isEmpty { changed += 1 }
        }
        return changed
    }

    /// When the next pending request times out (the due-work loop sleeps until then).
    public static func nextTimeout(_ connection: PGConnection) throws -> Millis? {
        try connection.query("SELECT min(timeout_at_ms) AS next FROM responder_requests WHERE state = 'pending'").int64(0, "next")
    }

    // MARK: Reading

    /// The response as the API shows it (channel webhooks masked: their path is a secret).
    public static func view(_ connection: PGConnection, incidentID: Int64) throws -> IncidentResponse {
        guard let state = try load(connection, incidentID: incidentID) else { throw RPCError(.notFound, "incident \(incidentID) does not exist") }
        let plan = try state.bridge.planID.flatMap { try connection.query("SELECT name FROM response_plans WHERE id = $1", [$0]).string(0, "name") }
        let updates = try connection.query("SELECT * FROM status_updates WHERE incident_id = $1 ORDER BY id", [incidentID])
        return IncidentResponse(
            incidentID: state.incidentID, responsePlan: plan ?? "", conferenceURL: state.bridge.conferenceURL,
            conferencePhone: state.bridge.conferencePhone, chatChannel: state.bridge.chatChannel,
            requests: state.requests.map { request in
                ResponderRequestView(
                    userID: request.user, state: request.state.rawValue, role: request.role?.rawValue ?? "", message: request.message,
                    requestedBy: request.requestedBy, requestedAtMs: request.requestedAt,
                    answeredAtMs: request.answeredAt ?? 0, timeoutAtMs: request.timeoutAt)
            },
            roles: state.roles.map { RoleHolder(role: $0.role.rawValue, userID: $0.user, assignedAtMs: $0.assignedAt, assignedBy: $0.assignedBy) },
            updates: (0..<updates.count).map { r in
                StatusUpdateView(author: updates.string(r, "author")!, text: updates.string(r, "body")!, atMs: updates.int64(r, "at_ms")!)
            },
            subscriberIDs: state.subscribers, channelWebhooks: state.channels.map(Masking.url))
    }

    // MARK: Targets

    /// Users behind the targets: users as given, whoever is on call on each schedule, a policy's
    /// first level (schedules resolved) — at `now`, duplicates removed, in order.
    public static func resolveTargets(
        _ connection: PGConnection, users: [UInt64], schedules: [UInt64], policies: [UInt64], now: Millis
    ) throws -> [UInt64] {
        var result: [UInt64] = []
        func add(_ ids: [UInt64]) { for id in ids where !result.contains(id) { result.append(id) } }
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
}
