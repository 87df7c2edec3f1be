import IncidentEngine
import KlaxonDomain
import Shared

/// Services and their routing keys (`klaxon.assignment.v1.Admin`): what monitors send to, and
/// how its incidents behave. Routing keys are made by Klaxon (32 characters from the system
/// CSPRNG), shown in full once, masked afterwards; a service may have several (rotation).
public enum ServiceStore {
    static let maxAckTimeoutSeconds: UInt32 = 7 * 86_400
    static let maxAutoResolveSeconds: UInt32 = 30 * 86_400
    static let keyCharacters = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")

    /// The checks that need no database, with `prefix` before each field name (`services[2].`).
    static func violations(_ service: ServiceMessage, prefix: String = "") -> [FieldViolation] {
        var violations: [FieldViolation] = []
        func add(_ field: String, _ description: String) { violations.append(FieldViolation(field: prefix + field, description: description)) }
        if service.name.isEmpty || service.name.unicodeScalars.count > 255 { add("name", "must be 1–255 characters") }
        if service.escalationPolicyID == 0 { add("escalation_policy_id", "is required") }
        if !["high", "low", "severity"].contains(service.urgencyRule) { add("urgency_rule", "must be high, low or severity, got \"\(service.urgencyRule)\"") }
        if service.ackTimeoutSeconds > maxAckTimeoutSeconds { add("ack_timeout_seconds", "must be at most \(maxAckTimeoutSeconds) (7 days); 0 = off") }
        if service.autoResolveTimeoutSeconds > maxAutoResolveSeconds {
            add("auto_resolve_timeout_seconds", "must be at most \(maxAutoResolveSeconds) (30 days); 0 = off")
        }
        if service.eventsBurst < 1 { add("events_burst", "must be at least 1") }
        if !["", "live", "shadow"].contains(service.mode) { add("mode", "must be live or shadow, got \"\(service.mode)\"") }
        var names = Set<String>()
        for (index, key) in service.routingKeys.enumerated() {
            if let problem = keyNameProblem(key.name) { add("routing_keys[\(index)].name", problem) }
            if !names.insert(key.name).inserted { add("routing_keys[\(index)].name", "\"\(key.name)\" is used twice") }
            if !key.key.isEmpty, let problem = keyProblem(key.key) { add("routing_keys[\(index)].key", problem) }
        }
        return violations
    }

    static func keyNameProblem(_ name: String) -> String? {
        name.isEmpty || name.count > 64 ? "must be 1–64 characters" : nil
    }

    /// Why `key` cannot be a routing key (nil: it can): also what `klaxon import` checks moved-in keys with.
    public static func keyProblem(_ key: String) -> String? {
        if key.count != 32 { return "must be 32 characters, got \(key.count)" }
        if !key.allSatisfy({ keyCharacters.contains($0) }) { return "may contain only letters, digits, _ and -" }
        return nil
    }

    static func checkReferences(_ connection: PGConnection, _ service: ServiceMessage, excluding id: Int64?, prefix: String = "") throws {
        var violations: [FieldViolation] = []
        if service.escalationPolicyID != 0,
            try connection.query("SELECT 1 FROM escalation_policies WHERE id = $1", [Int64(service.escalationPolicyID)]).isEmpty
        {
            violations.append(FieldViolation(
                field: prefix + "escalation_policy_id", description: "escalation policy \(service.escalationPolicyID) does not exist"))
        }
        let clash = try connection.query(
            "SELECT id FROM services WHERE name = $1 AND deleted_at_ms IS NULL AND id <> $2", [service.name, id ?? 0])
        if !clash.isEmpty {
            violations.append(FieldViolation(field: prefix + "name", description: "service \(clash.int64(0, "id")!) is already called \"\(service.name)\""))
        }
        guard violations.isEmpty else { throw RPCError.invalidArgument(violations) }
    }

    /// Creates the service and its routing keys (none asked for: one named "default"); the reply
    /// holds the keys in full, the only time they are shown.
    static func create(_ connection: PGConnection, _ service: ServiceMessage, now: Millis, defaultKey: Bool = true) throws -> ServiceMessage {
        let id = try connection.query(
            """
            INSERT INTO services (name, escalation_policy_id, ack_timeout_seconds, auto_resolve_timeout_seconds, urgency_rule,
                                  events_per_minute, events_burst, mode)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id
            """,
            [service.name, Int64(service.escalationPolicyID), service.ackTimeoutSeconds, service.autoResolveTimeoutSeconds,
             service.urgencyRule, service.eventsPerMinute, service.eventsBurst, service.mode.isEmpty ? "live" : service.mode]).int64(0, "id")!
        var created = service
        if created.mode.isEmpty { created.mode = "live" }
        created.id = UInt64(id)
        let wanted = service.routingKeys.isEmpty && defaultKey ? [RoutingKey(name: "default")] : service.routingKeys
        created.routingKeys = try wanted.enumerated().map { index, key in
            try addKey(connection, serviceID: id, name: key.name, key: key.key, now: now, field: "routing_keys[\(index)].key")
        }
        return created
    }

    static func update(_ connection: PGConnection, _ service: ServiceMessage) throws {
        guard try connection.query(
            """
            UPDATE services SET name = $2, escalation_policy_id = $3, ack_timeout_seconds = $4, auto_resolve_timeout_seconds = $5,
                urgency_rule = $6, events_per_minute = $7, events_burst = $8,
                mode = CASE WHEN $9 = '' THEN mode ELSE $9 END
            WHERE id = $1 AND deleted_at_ms IS NULL
            """,
            // An empty mode (a client that predates it) keeps the service's.
            [Int64(service.id), service.name, Int64(service.escalationPolicyID), service.ackTimeoutSeconds,
             service.autoResolveTimeoutSeconds, service.urgencyRule, service.eventsPerMinute, service.eventsBurst, service.mode]
        ).affectedRows == 1 else { throw RPCError(.notFound, "service \(service.id) does not exist") }
    }

    static func addKey(
        _ connection: PGConnection, serviceID: Int64, name: String, key: String, now: Millis, field: String = "key"
    ) throws -> RoutingKey {
        let value = key.isEmpty ? Secrets.routingKey() : key
        if !(try connection.query("SELECT 1 FROM routing_keys WHERE key = $1", [value]).isEmpty) {
            throw RPCError(.alreadyExists, "\(field): this routing key is already in use")
        }
        if !(try connection.query("SELECT 1 FROM routing_keys WHERE service_id = $1 AND name = $2", [serviceID, name]).isEmpty) {
            throw RPCError(.alreadyExists, "service \(serviceID) already has a routing key named \"\(name)\"")
        }
        try connection.query(
            "INSERT INTO routing_keys (key, service_id, name, created_at_ms) VALUES ($1, $2, $3, $4)", [value, serviceID, name, now])
        return RoutingKey(key: value, name: name, serviceID: UInt64(serviceID), createdAtMs: now)
    }

    /// A service with open incidents cannot be deleted (FAILED_PRECONDITION naming them).
    /// Deleting keeps its incidents' history; its routing keys stop working at once here and
    /// within Ingest's cache time (5 s) elsewhere.
    static func delete(_ connection: PGConnection, id: Int64, now: Millis) throws {
        let found = try connection.query("SELECT name FROM services WHERE id = $1 AND deleted_at_ms IS NULL FOR UPDATE", [id])
        guard !found.isEmpty, let name = found.string(0, "name") else { throw RPCError(.notFound, "service \(id) does not exist") }
        let open = try connection.query(
            "SELECT number FROM incidents WHERE service_id = $1 AND status <> 'resolved' ORDER BY number", [id])
        if !open.isEmpty {
            let numbers = (0..<min(open.count, 10)).map { "#" + open.string($0, "number")! }
            let more = open.count > 10 ? " and \(open.count - 10) more" : ""
            throw RPCError(.failedPrecondition, "service \(id) \"\(name)\" has open incidents \(numbers.joined(separator: ", "))\(more): resolve them first")
        }
        try connection.query("DELETE FROM routing_keys WHERE service_id = $1", [id])
        try connection.query("UPDATE services SET deleted_at_ms = $2, escalation_policy_id = NULL WHERE id = $1", [id, now])
    }

    /// Services not deleted, with their keys masked; Klaxon's own (`system`, e.g. "Major
    /// incidents") only when asked for by id, so they are never listed, exported or pruned.
    static func load(_ connection: PGConnection, id: Int64? = nil) throws -> [ServiceMessage] {
        let rows = try connection.query(
            """
            SELECT id, name, escalation_policy_id, ack_timeout_seconds, auto_resolve_timeout_seconds, urgency_rule, events_per_minute, events_burst,
                   mode
            FROM services WHERE deleted_at_ms IS NULL AND ($1::bigint IS NULL AND NOT system OR id = $1) ORDER BY id
            """, [id])
        let keys = try connection.query(
            """
            SELECT key, name, service_id, created_at_ms FROM routing_keys k
            WHERE ($1::bigint IS NULL OR service_id = $1) ORDER BY service_id, created_at_ms, name
            """, [id])
        var keysByService: [Int64: [RoutingKey]] = [:]
        for row in 0..<keys.count {
            let serviceID = keys.int64(row, "service_id")!
            keysByService[serviceID, default: []].append(RoutingKey(
                key: Secrets.mask(keys.string(row, "key")!), name: keys.string(row, "name")!, serviceID: UInt64(serviceID),
                createdAtMs: keys.int64(row, "created_at_ms")!))
        }
        return (0..<rows.count).map { row in
            let id = rows.int64(row, "id")!
            return ServiceMessage(
                id: UInt64(id), name: rows.string(row, "name")!, escalationPolicyID: rows.uint64(row, "escalation_policy_id") ?? 0,
                ackTimeoutSeconds: UInt32(rows.int(row, "ack_timeout_seconds")!),
                autoResolveTimeoutSeconds: UInt32(rows.int(row, "auto_resolve_timeout_seconds")!),
                urgencyRule: rows.string(row, "urgency_rule")!, eventsPerMinute: UInt32(rows.int(row, "events_per_minute")!),
                eventsBurst: UInt32(rows.int(row, "events_burst")!), routingKeys: keysByService[id] ?? [], mode: rows.string(row, "mode")!)
        }
    }
}

extension AdminAPI {
    func registerServices(into router: inout RPCRouter) {
        let pool = self.pool
        let clock = self.clock
        router.register(Admin.CreateService) { (request: ServiceMessage, _) in
            let violations = ServiceStore.violations(request)
            guard violations.isEmpty else { throw RPCError.invalidArgument(violations) }
            let now = clock.nowMs()
            return try await pool.transaction { connection in
                try ServiceStore.checkReferences(connection, request, excluding: nil)
                return try ServiceStore.create(connection, request, now: now)
            }
        }
        router.register(Admin.UpdateService) { (request: ServiceMessage, _) in
            var violations = ServiceStore.violations(request)
            if request.id == 0 { violations.append(FieldViolation(field: "id", description: "is required")) }
            if !request.routingKeys.isEmpty {
                violations.append(FieldViolation(field: "routing_keys", description: "are changed with CreateRoutingKey and DeleteRoutingKey"))
            }
            guard violations.isEmpty else { throw RPCError.invalidArgument(violations) }
            return try await pool.transaction { connection in
                try ServiceStore.checkReferences(connection, request, excluding: Int64(request.id))
                try ServiceStore.update(connection, request)
                return try ServiceStore.load(connection, id: Int64(request.id))[0]
            }
        }
        router.register(Admin.GetService) { (request: AdminIDRequest, _) in
            guard let found = try await pool.withConnection({ try ServiceStore.load($0, id: Int64(request.id)).first }) else {
                throw RPCError(.notFound, "service \(request.id) does not exist")
            }
            return found
        }
        router.register(Admin.ListServices) { (_: Empty, _) in
            ServiceListMessage(services: try await pool.withConnection { try ServiceStore.load($0) })
        }
        router.register(Admin.ListChanges) { (request: ListChangesRequest, _) in
            guard request.limit <= 500 else {
                throw RPCError.invalidArgument([FieldViolation(field: "limit", description: "must be at most 500")])
            }
            return try await pool.withConnection { connection in
                guard !(try connection.query("SELECT 1 FROM services WHERE id = $1 AND NOT canary", [Int64(request.serviceID)])).isEmpty else {
                    throw RPCError(.notFound, "service \(request.serviceID) does not exist")
                }
                return ListChangesReply(changes: try ChangeStore.list(
                    connection, serviceID: Int64(request.serviceID), before: request.beforeMs == 0 ? nil : request.beforeMs,
                    limit: Int(request.limit == 0 ? 20 : request.limit)))
            }
        }
        router.register(Admin.DeleteService) { (request: AdminIDRequest, _) in
            let now = clock.nowMs()
            try await pool.transaction { connection in try ServiceStore.delete(connection, id: Int64(request.id), now: now) }
            return Empty()
        }
        router.register(Admin.CreateRoutingKey) { (request: CreateRoutingKeyRequest, _) in
            var violations: [FieldViolation] = []
            if request.serviceID == 0 { violations.append(FieldViolation(field: "service_id", description: "is required")) }
            if let problem = ServiceStore.keyNameProblem(request.name) { violations.append(FieldViolation(field: "name", description: problem)) }
            if !request.key.isEmpty, let problem = ServiceStore.keyProblem(request.key) {
                violations.append(FieldViolation(field: "key", description: problem))
            }
            guard violations.isEmpty else { throw RPCError.invalidArgument(violations) }
            let now = clock.nowMs()
            return try await pool.transaction { connection in
                guard !(try connection.query(
                    "SELECT 1 FROM services WHERE id = $1 AND deleted_at_ms IS NULL FOR UPDATE", [Int64(request.serviceID)]).isEmpty)
                else { throw RPCError(.notFound, "service \(request.serviceID) does not exist") }
                return try ServiceStore.addKey(connection, serviceID: Int64(request.serviceID), name: request.name, key: request.key, now: now)
            }
        }
        router.register(Admin.DeleteRoutingKey) { (request: DeleteRoutingKeyRequest, _) in
            try await pool.transaction { connection in
                guard try connection.query(
                    "DELETE FROM routing_keys WHERE service_id = $1 AND name = $2", [Int64(request.serviceID), request.name]
                ).affectedRows == 1 else {
                    throw RPCError(.notFound, "service \(request.serviceID) has no routing key named \"\(request.name)\"")
                }
            }
            return Empty()
        }
    }
}
