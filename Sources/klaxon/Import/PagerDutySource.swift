import Foundation

/// PagerDuty's REST API answers an import reads (or the saved copies of them): every list
/// paginated by limit/offset/more, and each schedule's detail with its final schedule over the
/// diff's window. `--save DIR` writes exactly what `--from DIR` reads.
struct PagerDutyData {
    var users: [[String: Any]] = []
    var schedules: [[String: Any]] = []
    /// Shift-based schedules (`/v3/schedules`): empty when PagerDuty does not answer it (an account
    /// without them).
    var schedulesV3: [[String: Any]] = []
    /// What the fetch could not read, said in the report.
    var notices: [String] = []
    var overrides: [String: [[String: Any]]] = [:]  // by schedule id
    var escalationPolicies: [[String: Any]] = []
    var services: [[String: Any]] = []
    /// The window the schedules were rendered over.
    var since: Date = Date()
    var until: Date = Date()

    static let files = ["users", "schedules", "overrides", "escalation_policies", "services", "window"]

    /// Reads PagerDuty's API at `base` with `token` (`Authorization: Token token=…`).
    static func fetch(base: String, token: String, days: Int, now: Date) async throws -> PagerDutyData {
        var data = PagerDutyData()
        data.since = now
        data.until = now.addingTimeInterval(Double(days) * 86_400)
        let client = PagerDutyClient(base: base, token: token)
        data.users = try await client.list("users", key: "users", query: ["include[]=contact_methods", "include[]=notification_rules"])
        let summaries = try await client.list("schedules", key: "schedules")
        let window = ["since=\(Self.instant(data.since))", "until=\(Self.instant(data.until))"]
        for summary in summaries {
            guard let id = summary["id"] as? String else { continue }
            let detail = try await client.get("schedules/\(id)", query: window + ["time_zone=UTC"])
            if let schedule = detail["schedule"] as? [String: Any] { data.schedules.append(schedule) }
            let overrides = try await client.get("schedules/\(id)/overrides", query: window)
            data.overrides[id] = overrides["overrides"] as? [[String: Any]] ?? []
        }
        do {
            for summary in try await client.list("v3/schedules", key: "schedules") {
                guard let id = summary["id"] as? String else { continue }
                if let schedule = try await client.get("v3/schedules/\(id)")["schedule"] as? [String: Any] { data.schedulesV3.append(schedule) }
            }
        } catch let error as CLIError where error.code == CLIExit.refused || error.code == CLIExit.notAllowed {
            // No shift-based schedules on this account (or no early access): the v2 ones are all there is.
            data.schedulesV3 = []
            data.notices.append("shift-based (v3) schedules not read: \(error.message)")
        }
        data.escalationPolicies = try await client.list("escalation_policies", key: "escalation_policies")
        data.services = try await client.list("services", key: "services", query: ["include[]=integrations"])
        return data
    }

    static func instant(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: date)
    }

    func save(_ directory: String) throws {
        try SavedAnswers.write([
            "users": users, "schedules": schedules, "schedules_v3": schedulesV3, "overrides": overrides, "escalation_policies": escalationPolicies,
            "services": services, "window": ["since": Self.instant(since), "until": Self.instant(until)],
        ], to: directory)
    }

    static func load(_ directory: String) throws -> PagerDutyData {
        func read(_ name: String) throws -> Any { try SavedAnswers.read(name, in: directory) }
        var data = PagerDutyData()
        data.users = try read("users") as? [[String: Any]] ?? []
        data.schedules = try read("schedules") as? [[String: Any]] ?? []
        // Saved before shift-based schedules were read: none.
        let v3 = URL(fileURLWithPath: directory).appendingPathComponent("schedules_v3.json").path
        data.schedulesV3 = FileManager.default.fileExists(atPath: v3) ? try read("schedules_v3") as? [[String: Any]] ?? [] : []
        data.overrides = try read("overrides") as? [String: [[String: Any]]] ?? [:]
        data.escalationPolicies = try read("escalation_policies") as? [[String: Any]] ?? []
        data.services = try read("services") as? [[String: Any]] ?? []
        let window = try read("window") as? [String: String] ?? [:]
        let formatter = ISO8601DateFormatter()
        data.since = window["since"].flatMap(formatter.date(from:)) ?? Date()
        data.until = window["until"].flatMap(formatter.date(from:)) ?? data.since.addingTimeInterval(90 * 86_400)
        return data
    }
}

/// GETs against PagerDuty's REST API v2.
struct PagerDutyClient {
    let client: SourceClient
    static let pageSize = 100

    init(base: String, token: String) {
        client = SourceClient(
            pager: "PagerDuty", base: base,
            headers: [
                ("Authorization", "Token token=\(token)"), ("Accept", "application/vnd.pagerduty+json;version=2"),
                // Shift-based schedules (/v3/schedules) are behind this early-access flag.
                ("X-Early-Access", "flexible-schedules-early-access"),
            ])
    }

    func get(_ path: String, query: [String] = []) async throws -> [String: Any] {
        try await client.get(path, query: query)
    }

    /// Every page of a list (`limit`, `offset`, until `more` is false).
    func list(_ path: String, key: String, query: [String] = []) async throws -> [[String: Any]] {
        var items: [[String: Any]] = []
        var offset = 0
        for _ in 0..<10_000 {
            let page = try await get(path, query: query + ["limit=\(Self.pageSize)", "offset=\(offset)"])
            let found = page[key] as? [[String: Any]] ?? []
            items += found
            guard page["more"] as? Bool == true, !found.isEmpty else { break }
            offset += found.count
        }
        return items
    }
}
