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
}
