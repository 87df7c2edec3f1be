import ArgumentParser
import Foundation
import KlaxonDomain
import Shared

struct ShadowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shadow",
        abstract: "Shadow mode (a service's `mode: shadow`): the pages Klaxon would have sent, beside what the old pager sent.",
        subcommands: [Report.self])

    struct Report: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The pages a shadow-mode service would have sent; with PagerDuty as source, compared person by person.",
            discussion: """
                Lists every page the service recorded instead of delivering (instant, person, channel, reason). With \
                PagerDuty's REST API (--pagerduty-token or $PAGERDUTY_TOKEN) or saved answers (--pagerduty-from DIR: \
                log_entries.json and users.json), its notify log entries are set beside them by incident key (Klaxon's \
                dedup key, PagerDuty's incident_key) and person (email), and every difference is marked: someone one \
                pager reached and the other did not, or reached more than --tolerance later. Exits 2 if any.
                """)
        @OptionGroup var client: ClientOptions
        @Option(help: "Service id or name.") var service: String
        @Option(help: "How far back: 7d, 24h, … (default 7d).") var since = "7d"
        @Option(help: "PagerDuty's REST API.") var pagerdutyApiURL = "https://api.pagerduty.com"
        @Option(help: "A PagerDuty API token (default $PAGERDUTY_TOKEN); without one (or --pagerduty-from), Klaxon's pages alone.")
        var pagerdutyToken: String?
        @Option(help: "Read PagerDuty's saved answers (log_entries.json, users.json) from this folder.") var pagerdutyFrom: String?
        @Option(help: "Save PagerDuty's answers to this folder.") var save: String?
        @Option(help: "Later than this counts as a difference (default 60s).") var tolerance = "60s"

        func run() async throws {
            let serviceID = try await ShadowCommand.resolve(service, client: client)
            let sinceMs = Millis(Date().timeIntervalSince1970 * 1000) - Millis(try CLITime.duration(since)) * 1000
            let reply: ListShadowPagesReply = try await client.call(
                Admin.ListShadowPages, ListShadowPagesRequest(serviceID: serviceID, sinceMs: sinceMs, limit: 10_000))
            let ours = reply.pages.map {
                ShadowComparison.Page(incidentKey: $0.dedupKey, person: $0.userEmail, channel: $0.channel, at: $0.atMs)
            }
            var source: [ShadowComparison.Page]?
            if let folder = pagerdutyFrom {
                source = try ShadowCommand.notifications(
                    entries: SavedAnswers.read("log_entries", in: folder) as? [[String: Any]] ?? [],
                    users: SavedAnswers.read("users", in: folder) as? [[String: Any]] ?? [])
            } else if let token = pagerdutyToken ?? ProcessInfo.processInfo.environment["PAGERDUTY_TOKEN"], !token.isEmpty {
                let api = PagerDutyClient(base: pagerdutyApiURL, token: token)
                let window = [
                    "since=\(SourceClient.escape(PagerDutyData.instant(Date(timeIntervalSince1970: Double(sinceMs) / 1000))))",
                    "until=\(SourceClient.escape(PagerDutyData.instant(Date())))",
                ]
                let entries = try await api.list("log_entries", key: "log_entries", query: window + ["is_overview=false", "include[]=incidents"])
                let users = try await api.list("users", key: "users")
                if let save { try SavedAnswers.write(["log_entries": entries, "users": users], to: save) }
                source = ShadowCommand.notifications(entries: entries, users: users)
            }
            if let source {
                // Only the incidents this service saw (by key): the old pager pages for other services too.
                let keys = Set(ours.map(\.incidentKey))
                let rows = ShadowComparison.compare(
                    klaxon: ours, source: source.filter { keys.contains($0.incidentKey) }, toleranceMs: Millis(try CLITime.duration(tolerance)) * 1000)
                if client.json {
                    return print(JSONOut.text(rows.map { row in
                        ["incident_key": row.incidentKey, "person": row.person, "verdict": ShadowCommand.text(row.verdict),
                         "klaxon": row.klaxon.map { "\(CLITime.text($0.at)) \($0.channel)" }, "pagerduty": row.source.map { "\(CLITime.text($0.at)) \($0.channel)" }]
                    }))
                }
                var table = Table("INCIDENT KEY", "PERSON", "KLAXON (SHADOW)", "PAGERDUTY", "")
                for row in rows {
                    table.add(
                        row.incidentKey, row.person, row.klaxon.map { "\(CLITime.text($0.at)) \($0.channel)" }.joined(separator: ", "),
                        row.source.map { "\(CLITime.text($0.at)) \($0.channel)" }.joined(separator: ", "), ShadowCommand.text(row.verdict))
                }
                table.print(empty: "no pages in either pager since \(since) ago")
                let differing = rows.filter(\.verdict.isDifference).count
                print(differing == 0 ? "no differences" : "\(counted(differing, "difference"))")
                if differing > 0 { throw CLIError(code: 2, message: "Klaxon and PagerDuty would not have paged the same people at the same time (above)") }
                return
            }
            if client.json { return print(JSONOut.text(reply)) }
            var table = Table("AT", "INCIDENT", "KEY", "PERSON", "CHANNEL", "REASON")
            for page in reply.pages {
                table.add(
                    CLITime.text(page.atMs), "#\(page.incidentNumber)", page.dedupKey, page.userEmail, page.channel,
                    page.reason + (page.minuteZero ? " (minute zero)" : ""))
            }
            table.print(empty: "no pages recorded since \(since) ago")
        }
    }

    static func resolve(_ text: String, client: ClientOptions) async throws -> UInt64 {
        try await serviceID(text, client: client)
    }

    static func text(_ verdict: ShadowComparison.Verdict) -> String {
        switch verdict {
        case .same: "same"
        case .onlyKlaxon: "DIFFERENT: only Klaxon would page"
        case .onlySource: "DIFFERENT: only PagerDuty paged"
        case let .klaxonLater(ms): "DIFFERENT: Klaxon \((ms + 500) / 1000) s later"
        case let .sourceLater(ms): "DIFFERENT: PagerDuty \((ms + 500) / 1000) s later"
        }
    }

    /// PagerDuty's notify log entries (`notify_log_entry`) as pages: the incident's key (with
    /// `include[]=incidents`), the user's email, the notification's channel, the instant.
    static func notifications(entries: [[String: Any]], users: [[String: Any]]) -> [ShadowComparison.Page] {
        var emails: [String: String] = [:]
        for user in users { if let id = user["id"] as? String, let email = user["email"] as? String { emails[id] = email } }
        return entries.compactMap { entry in
            guard entry["type"] as? String == "notify_log_entry", let at = OnCallDiff.millis(entry["created_at"]) else { return nil }
            let user = entry["user"] as? [String: Any] ?? [:]
            let incident = entry["incident"] as? [String: Any] ?? [:]
            guard let key = incident["incident_key"] as? String else { return nil }
            let notification = entry["notification"] as? [String: Any] ?? [:]
            let channel = (notification["type"] as? String ?? (entry["channel"] as? [String: Any])?["type"] as? String ?? "?")
                .replacingOccurrences(of: "_notification", with: "")
            return ShadowComparison.Page(
                incidentKey: key, person: emails[user["id"] as? String ?? ""] ?? user["email"] as? String ?? user["summary"] as? String ?? "?",
                channel: channel, at: at)
        }
    }
}
