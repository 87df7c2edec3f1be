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
            abstract: "The pages a shadow-mode service would have sent; beside PagerDuty's or Opsgenie's, compared person by person.",
            discussion: """
                Lists every page the service recorded instead of delivering (instant, person, channel, reason). With \
                PagerDuty's REST API (--pagerduty-token or $PAGERDUTY_TOKEN) or saved answers (--pagerduty-from DIR: \
                log_entries.json and users.json), its notify log entries are set beside them by incident key (Klaxon's \
                dedup key, PagerDuty's incident_key) and person (email), and every difference is marked: someone one \
                pager reached and the other did not, or reached more than --tolerance later. Exits 2 if any. \
                With Opsgenie instead (--opsgenie-key or $OPSGENIE_API_KEY, or --opsgenie-from DIR: alerts.json and \
                users.json), each alert's log (the alias is the incident key) is read: a log line about a \
                notification that names a user's username and a channel (SMS, voice, email, mobile/push) is a page.
                """)
        @OptionGroup var client: ClientOptions
        @Option(help: "Service id or name.") var service: String
        @Option(help: "How far back: 7d, 24h, … (default 7d).") var since = "7d"
        @Option(help: "PagerDuty's REST API.") var pagerdutyApiURL = "https://api.pagerduty.com"
        @Option(help: "A PagerDuty API token (default $PAGERDUTY_TOKEN); without one (or --pagerduty-from), Klaxon's pages alone.")
        var pagerdutyToken: String?
        @Option(help: "Read PagerDuty's saved answers (log_entries.json, users.json) from this folder.") var pagerdutyFrom: String?
        @Option(help: "Opsgenie's REST API.") var opsgenieApiURL = "https://api.opsgenie.com"
        @Option(help: "An Opsgenie API key (default $OPSGENIE_API_KEY) that may read alerts and users.") var opsgenieKey: String?
        @Option(help: "Read Opsgenie's saved answers (alerts.json with their logs, users.json) from this folder.") var opsgenieFrom: String?
        @Option(help: "Save the source's answers to this folder.") var save: String?
        @Option(help: "Later than this counts as a difference (default 60s).") var tolerance = "60s"

        func run() async throws {
            let id = try await serviceID(service, client: client)
            let sinceMs = Millis(Date().timeIntervalSince1970 * 1000) - Millis(try CLITime.duration(since)) * 1000
            let reply: ListShadowPagesReply = try await client.call(
                Admin.ListShadowPages, ListShadowPagesRequest(serviceID: id, sinceMs: sinceMs, limit: 10_000))
            let ours = reply.pages.map {
                ShadowComparison.Page(incidentKey: $0.dedupKey, person: $0.userEmail, channel: $0.channel, at: $0.atMs)
            }
            var source: [ShadowComparison.Page]?
            var pager = "PagerDuty"
            let environment = ProcessInfo.processInfo.environment
            if opsgenieFrom != nil || opsgenieKey != nil || (pagerdutyFrom == nil && pagerdutyToken == nil && environment["PAGERDUTY_TOKEN"] == nil
                                                             && environment["OPSGENIE_API_KEY"] != nil) {
                pager = "Opsgenie"
                var alerts: [[String: Any]]
                var users: [[String: Any]]
                if let folder = opsgenieFrom {
                    alerts = try SavedAnswers.read("alerts", in: folder) as? [[String: Any]] ?? []
                    users = try SavedAnswers.read("users", in: folder) as? [[String: Any]] ?? []
                } else {
                    let api = OpsgenieClient(base: opsgenieApiURL, key: opsgenieKey ?? environment["OPSGENIE_API_KEY"] ?? "")
                    alerts = try await api.list("v2/alerts", query: ["query=\(SourceClient.escape("createdAt>=\(sinceMs)"))", "sort=createdAt", "order=asc"])
                    for index in alerts.indices {
                        guard let id = alerts[index]["id"] as? String else { continue }
                        alerts[index]["_logs"] = try await api.list("v2/alerts/\(id)/logs", query: ["identifierType=id"])
                    }
                    users = try await api.list("v2/users")
                    if let save { try SavedAnswers.write(["alerts": alerts, "users": users], to: save) }
                }
                source = ShadowCommand.opsgenieNotifications(alerts: alerts, users: users)
            } else if let folder = pagerdutyFrom {
                source = try ShadowCommand.notifications(
                    entries: SavedAnswers.read("log_entries", in: folder) as? [[String: Any]] ?? [],
                    users: SavedAnswers.read("users", in: folder) as? [[String: Any]] ?? [])
            } else if let token = pagerdutyToken ?? environment["PAGERDUTY_TOKEN"], !token.isEmpty {
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
                        ["incident_key": row.incidentKey, "person": row.person, "verdict": ShadowCommand.text(row.verdict, pager: pager),
                         "klaxon": row.klaxon.map { "\(CLITime.text($0.at)) \($0.channel)" }, pager.lowercased(): row.source.map { "\(CLITime.text($0.at)) \($0.channel)" }]
                    }))
                }
                var table = Table("INCIDENT KEY", "PERSON", "KLAXON (SHADOW)", pager.uppercased(), "")
                for row in rows {
                    table.add(
                        row.incidentKey, row.person, row.klaxon.map { "\(CLITime.text($0.at)) \($0.channel)" }.joined(separator: ", "),
                        row.source.map { "\(CLITime.text($0.at)) \($0.channel)" }.joined(separator: ", "), ShadowCommand.text(row.verdict, pager: pager))
                }
                table.print(empty: "no pages in either pager since \(since) ago")
                let differing = rows.filter(\.verdict.isDifference).count
                print(differing == 0 ? "no differences" : "\(counted(differing, "difference"))")
                if differing > 0 { throw CLIError(code: 2, message: "Klaxon and \(pager) would not have paged the same people at the same time (above)") }
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

    static func text(_ verdict: ShadowComparison.Verdict, pager: String) -> String {
        switch verdict {
        case .same: "same"
        case .onlyKlaxon: "DIFFERENT: only Klaxon would page"
        case .onlySource: "DIFFERENT: only \(pager) paged"
        case let .klaxonLater(ms): "DIFFERENT: Klaxon \((ms + 500) / 1000) s later"
        case let .sourceLater(ms): "DIFFERENT: \(pager) \((ms + 500) / 1000) s later"
        }
    }

    static let opsgenieChannels: [(word: String, channel: String)] = [
        ("sms", "sms"), ("voice", "phone"), ("call", "phone"), ("email", "email"), ("e-mail", "email"), ("mobile", "push"), ("push", "push"),
    ]

    /// Opsgenie's alert logs as pages: the alert's alias is the incident key; a log line that
    /// speaks of a notification and names a user (by username) and a channel is one page to them.
    static func opsgenieNotifications(alerts: [[String: Any]], users: [[String: Any]]) -> [ShadowComparison.Page] {
        let usernames = users.compactMap { $0["username"] as? String }.filter { !$0.isEmpty }
        var pages: [ShadowComparison.Page] = []
        for alert in alerts {
            guard let key = alert["alias"] as? String else { continue }
            for entry in alert["_logs"] as? [[String: Any]] ?? [] {
                let text = entry["log"] as? String ?? ""
                let lower = text.lowercased()
                guard lower.contains("notif"), let at = OnCallDiff.millis(entry["createdAt"]),
                      let person = usernames.first(where: { lower.contains($0.lowercased()) }),
                      let channel = opsgenieChannels.first(where: { lower.replacingOccurrences(of: person.lowercased(), with: "").contains($0.word) })?.channel
                else { continue }
                pages.append(ShadowComparison.Page(incidentKey: key, person: person, channel: channel, at: at))
            }
        }
        return pages
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
