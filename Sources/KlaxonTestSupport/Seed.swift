import KlaxonDomain
import Shared

/// A test fixture: creates a service with a one-level escalation policy whose targets are the
/// given users, each with a webhook contact method and notification rules, straight in the test's
/// database. The product itself writes configuration only through the Admin and People APIs
/// (`klaxon apply -f`); `ConfigurationTests` covers those.
public enum Seed {
    public struct User: Sendable {
        public var name: String
        public var email: String
        public var webhookURL: String
        /// One rule per delay (0 = minute zero), all for `urgency`.
        public var ruleDelaysSeconds: [UInt32]
        public var urgency: Urgency

        public init(name: String, email: String, webhookURL: String, ruleDelaysSeconds: [UInt32] = [0], urgency: Urgency = .high) {
            self.name = name
            self.email = email
            self.webhookURL = webhookURL
            self.ruleDelaysSeconds = ruleDelaysSeconds
            self.urgency = urgency
        }
    }

    public struct Service: Sendable {
        public var serviceID: Int64
        public var routingKey: String
        public var policyID: Int64
        public var userIDs: [Int64]
    }

    /// `levels` lists, per escalation level, indexes into `users` (default: one level with everyone).
    public static func service(
        _ connection: PGConnection, name: String, routingKey: String, users: [User],
        levels: [[Int]]? = nil, escalationDelaySeconds: UInt32 = 300, urgencyRule: UrgencyRule = .high,
        ackTimeoutSeconds: UInt32 = 1800
    ) throws -> Service {
        var userIDs: [Int64] = []
        for user in users {
            let userID = try connection.query(
                "INSERT INTO users (name, email) VALUES ($1, $2) RETURNING id", [user.name, user.email]).int64(0, "id")!
            let methodID = try connection.query(
                "INSERT INTO contact_methods (user_id, type, address, label) VALUES ($1, 'webhook', $2, 'webhook') RETURNING id",
                [userID, user.webhookURL]).int64(0, "id")!
            for delay in user.ruleDelaysSeconds {
                try connection.query(
                    "INSERT INTO notification_rules (user_id, contact_method_id, start_delay_seconds, urgency) VALUES ($1, $2, $3, $4)",
                    [userID, methodID, delay, user.urgency.rawValue])
            }
            userIDs.append(userID)
        }
        let policyID = try connection.query(
            "INSERT INTO escalation_policies (name) VALUES ($1) RETURNING id", ["\(name) policy"]).int64(0, "id")!
        for (levelIndex, members) in (levels ?? [Array(users.indices)]).enumerated() {
            try connection.query(
                "INSERT INTO escalation_levels (policy_id, position, escalation_delay_seconds) VALUES ($1, $2, $3)",
                [policyID, levelIndex + 1, escalationDelaySeconds])
            for (position, userIndex) in members.enumerated() {
                try connection.query(
                    "INSERT INTO escalation_targets (policy_id, level_position, position, user_id) VALUES ($1, $2, $3, $4)",
                    [policyID, levelIndex + 1, position + 1, userIDs[userIndex]])
            }
        }
        let serviceID = try connection.query(
            "INSERT INTO services (name, escalation_policy_id, urgency_rule, ack_timeout_seconds) VALUES ($1, $2, $3, $4) RETURNING id",
            [name, policyID, urgencyRule.rawValue, ackTimeoutSeconds]).int64(0, "id")!
        try connection.query("INSERT INTO routing_keys (key, service_id) VALUES ($1, $2)", [routingKey, serviceID])
        return Service(serviceID: serviceID, routingKey: routingKey, policyID: policyID, userIDs: userIDs)
    }

    /// 32 random characters, the routing key format.
    public static func newRoutingKey() -> String { Secrets.routingKey() }

    /// A benchmark fixture (klaxon-bench's timer figures): `count` incidents, acknowledged by the
    /// first of `users` and assigned to all, whose ack timeouts fall due between `firstDue` and
    /// `firstDue + spreadMs` — in one statement, as tens of thousands of triggers and acks through
    /// the engine would take minutes. The product writes incidents only through IncidentEngine.
    public static func acknowledgedIncidents(
        _ connection: PGConnection, service: Int64, users: [Int64], prefix: String, count: Int, firstDue: Millis, spreadMs: Millis
    ) throws {
        try connection.query(
            """
            WITH made AS (
                INSERT INTO incidents (service_id, title, status, urgency, dedup_key, details, current_level, created_at_ms,
                                       updated_at_ms, ack_timeout_at_ms, trigger_applied)
                SELECT $1, 'timer ' || g, 'acknowledged', 'high', $2 || '-' || g,
                       jsonb_build_object('due', ($3::bigint + g * $4::bigint / $5::bigint)::text), 1, $6, $6,
                       $3::bigint + g * $4::bigint / $5::bigint, true
                FROM generate_series(0, $5::bigint - 1) AS g
                RETURNING id),
            assigned AS (
                INSERT INTO incident_assignments (incident_id, user_id, assigned_at_ms)
                SELECT made.id, u, $6 FROM made, unnest($7::bigint[]) AS u)
            INSERT INTO acknowledgements (incident_id, user_id, actor, at_ms)
            SELECT made.id, $8, 'user', $6 FROM made
            """, [service, prefix, firstDue, spreadMs, Int64(count), SystemWallClock().nowMs(), PGArray(users), users[0]])
    }
}
