import Foundation

/// Opsgenie's REST API answers an import reads (or the saved copies of them). Lists are read
/// page by page (limit/offset, while `paging.next` is given); each user's contacts and
/// notification rules (with their steps), each schedule's overrides and final timeline over the
/// diff's window, each team's routing rules and each integration's detail (its API key, where
/// Opsgenie exposes it) are kept inside the objects they belong to, under `_`-prefixed keys.
struct OpsgenieData {
    var users: [[String: Any]] = []  // + "_contacts", "_notification_rules" (details with steps)
    var schedules: [[String: Any]] = []  // expanded rotations; + "_overrides", "_timeline"
    var escalations: [[String: Any]] = []
    var teams: [[String: Any]] = []  // + "_routing_rules"
    var services: [[String: Any]] = []
    var integrations: [[String: Any]] = []  // details
    var since: Date = Date()
    var until: Date = Date()

    static func fetch(base: String, key: String, days: Int, now: Date) async throws -> OpsgenieData {
        var data = OpsgenieData()
        data.since = now
        data.until = now.addingTimeInterval(Double(days) * 86_400)
        let client = OpsgenieClient(base: base, key: key)
        for var user in try await client.list("v2/users") {
            guard let id = user["id"] as? String else { continue }
            user["_contacts"] = try await client.get("v2/users/\(id)/contacts")["data"] as? [[String: Any]] ?? []
            var rules: [[String: Any]] = []
            for summary in try await client.get("v2/users/\(id)/notification-rules")["data"] as? [[String: Any]] ?? [] {
                guard let ruleID = summary["id"] as? String else { continue }
                if let rule = try await client.get("v2/users/\(id)/notification-rules/\(ruleID)")["data"] as? [String: Any] { rules.append(rule) }
            }
            user["_notification_rules"] = rules
            data.users.append(user)
        }
        for var schedule in try await client.list("v2/schedules", query: ["expand=rotation"]) {
            guard let id = schedule["id"] as? String else { continue }
            schedule["_overrides"] = try await client.get("v2/schedules/\(id)/overrides")["data"] as? [[String: Any]] ?? []
            schedule["_timeline"] = try await client.get(
                "v2/schedules/\(id)/timeline",
                query: ["date=\(SourceClient.escape(PagerDutyData.instant(data.since)))", "interval=\(days)", "intervalUnit=days"])["data"] ?? [:]
            data.schedules.append(schedule)
        }
        data.escalations = try await client.list("v2/escalations")
        for var team in try await client.list("v2/teams") {
            guard let id = team["id"] as? String else { continue }
            team["_routing_rules"] = try await client.get("v2/teams/\(id)/routing-rules")["data"] as? [[String: Any]] ?? []
            data.teams.append(team)
        }
        data.services = try await client.list("v1/services")
        for summary in try await client.list("v2/integrations") {
            guard let id = summary["id"] as? String else { continue }
            if let detail = try await client.get("v2/integrations/\(id)")["data"] as? [String: Any] { data.integrations.append(detail) }
        }
        return data
    }

    func save(_ directory: String) throws {
        try SavedAnswers.write([
            "users": users, "schedules": schedules, "escalations": escalations, "teams": teams, "services": services,
            "integrations": integrations, "window": ["since": PagerDutyData.instant(since), "until": PagerDutyData.instant(until)],
        ], to: directory)
    }

    static func load(_ directory: String) throws -> OpsgenieData {
        func read(_ name: String) throws -> [[String: Any]] { try SavedAnswers.read(name, in: directory) as? [[String: Any]] ?? [] }
        var data = OpsgenieData()
        data.users = try read("users")
        data.schedules = try read("schedules")
        data.escalations = try read("escalations")
        data.teams = try read("teams")
        data.services = try read("services")
        data.integrations = try read("integrations")
        let window = try SavedAnswers.read("window", in: directory) as? [String: String] ?? [:]
        let formatter = ISO8601DateFormatter()
        data.since = window["since"].flatMap(formatter.date(from:)) ?? Date()
        data.until = window["until"].flatMap(formatter.date(from:)) ?? data.since.addingTimeInterval(90 * 86_400)
        return data
    }
}

/// GETs against Opsgenie's REST API (`Authorization: GenieKey …`).
struct OpsgenieClient {
    let client: SourceClient
    static let pageSize = 100

    init(base: String, key: String) {
        client = SourceClient(pager: "Opsgenie", base: base, headers: [("Authorization", "GenieKey \(key)")])
    }

    func get(_ path: String, query: [String] = []) async throws -> [String: Any] {
        try await client.get(path, query: query)
    }

    /// Every page of a list: `data`, read while `paging.next` is given.
    func list(_ path: String, query: [String] = []) async throws -> [[String: Any]] {
        var items: [[String: Any]] = []
        var offset = 0
        for _ in 0..<10_000 {
            let page = try await get(path, query: query + ["limit=\(Self.pageSize)", "offset=\(offset)"])
            let found = page["data"] as? [[String: Any]] ?? []
            items += found
            guard let paging = page["paging"] as? [String: Any], paging["next"] is String, !found.isEmpty else { break }
            offset += found.count
        }
        return items
    }
}
