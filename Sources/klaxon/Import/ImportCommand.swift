import ArgumentParser
import Foundation
import KlaxonDomain

struct ImportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import", abstract: "Read another pager's configuration and write Klaxon's YAML (then klaxon apply -f).",
        subcommands: [PagerDuty.self])

    struct PagerDuty: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "pagerduty",
            abstract: "PagerDuty's users, contact methods, notification rules, schedules, escalation policies and services, as YAML.",
            discussion: """
                Reads PagerDuty's REST API (--api-url, --token or $PAGERDUTY_TOKEN) or a folder of its saved answers \
                (--from DIR, what --save DIR writes). Everything that does not map is listed on stderr, never dropped \
                silently or rounded. --plan compares who is on call for the next --days (90) by Klaxon's computation of \
                the YAML with PagerDuty's rendered final schedule, prints every interval that differs with both names, \
                and exits 2 if any does. Names Klaxon knows PagerDuty's objects by are kept in --state (next to -o), so \
                a second import after a rename changes nothing but what changed.
                """)
        @Option(help: "PagerDuty's REST API.") var apiURL = "https://api.pagerduty.com"
        @Option(help: "An API token (default $PAGERDUTY_TOKEN).") var token: String?
        @Option(help: "Read saved answers from this folder instead of the API.") var from: String?
        @Option(help: "Save the API's answers to this folder (for --from).") var save: String?
        @Option(name: .shortAndLong, help: "Write the YAML here (default: stdout).") var output: String?
        @Option(help: "The import state file (PagerDuty ids → names in Klaxon). Default: klaxon-import-pagerduty.json beside -o, or here.")
        var state: String?
        @Flag(help: "Compare who is on call, Klaxon's computation against PagerDuty's, and exit 2 on any difference.") var plan = false
        @Option(help: "How many days --plan compares.") var days = 90
        @Option(help: "Compare from this instant (RFC 3339; default now).") var since: String?

        func run() async throws {
            let data: PagerDutyData
            if let from {
                data = try PagerDutyData.load(from)
            } else {
                guard let token = token ?? ProcessInfo.processInfo.environment["PAGERDUTY_TOKEN"], !token.isEmpty else {
                    throw CLIError(code: CLIExit.usage, message: "give --token, $PAGERDUTY_TOKEN or --from DIR")
                }
                let start = try since.map { Date(timeIntervalSince1970: Double(try CLITime.parse($0)) / 1000) } ?? Date()
                data = try await PagerDutyData.fetch(base: apiURL, token: token, days: days, now: start)
            }
            if let save { try data.save(save) }
            let statePath = state ?? URL(fileURLWithPath: output ?? "klaxon.yaml").deletingLastPathComponent()
                .appendingPathComponent("klaxon-import-pagerduty.json").path
            let known = FileManager.default.contents(atPath: statePath).flatMap { try? JSONDecoder().decode(PagerDutyMapping.State.self, from: $0) }
            var mapping = PagerDutyMapping(data: data, state: known ?? PagerDutyMapping.State())
            let document = mapping.document()
            let yaml = "# Imported from PagerDuty by klaxon import pagerduty, \(PagerDutyData.instant(Date())).\n"
                + (try ConfigFile.yaml(fromJSON: String(decoding: try JSONSerialization.data(withJSONObject: document, options: [.sortedKeys]), as: UTF8.self)))
            if let output {
                try yaml.write(toFile: output, atomically: true, encoding: .utf8)
            } else {
                print(yaml, terminator: "")
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(mapping.state).write(to: URL(fileURLWithPath: statePath))

            var report: [String] = []
            let counts = ["users", "schedules", "escalation_policies", "services"].map { key in
                "\((document[key] as? [Any])?.count ?? 0) \(key.replacingOccurrences(of: "_", with: " "))"
            }
            report.append("imported \(counts.joined(separator: ", "))\(output.map { " to \($0)" } ?? "")")
            for line in mapping.notes { report.append("note: \(line)") }
            for line in mapping.notMapped { report.append("not mapped: \(line)") }
            var differing = 0
            if plan {
                let since = try self.since.map(CLITime.parse) ?? Millis((data.since.timeIntervalSince1970 * 1000).rounded())
                let until = min(Millis((data.until.timeIntervalSince1970 * 1000).rounded()), since + Millis(days) * 86_400_000)
                for entry in document["schedules"] as? [[String: Any]] ?? [] {
                    let name = entry["name"] as? String ?? ""
                    guard let id = mapping.state.schedules.first(where: { $0.value == name })?.key,
                          let source = data.schedules.first(where: { $0["id"] as? String == id }) else { continue }
                    let final = (source["final_schedule"] as? [String: Any])?["rendered_schedule_entries"] as? [[String: Any]] ?? []
                    let rendered = final.compactMap { item -> (start: Millis, end: Millis, who: String)? in
                        guard let start = OnCallDiff.millis(item["start"]), let end = OnCallDiff.millis(item["end"]) else { return nil }
                        let user = item["user"] as? [String: Any] ?? [:]
                        let id = user["id"] as? String ?? ""
                        return (start, end, mapping.emails[id] ?? "user \(id)")
                    }
                    var people: [String] = []
                    let schedule = OnCallDiff.schedule(entry, people: &people)
                    let differences = OnCallDiff.compare(schedule, people: people, rendered: rendered, since: since, until: until)
                    if differences.isEmpty {
                        report.append("on call, schedule \(name): the same as PagerDuty's for \(days) days from \(CLITime.text(since))")
                    } else {
                        differing += 1
                        report.append("on call, schedule \(name): \(counted(differences.count, "interval")) differ from PagerDuty's:")
                        for difference in differences.prefix(100) {
                            report.append("  \(CLITime.text(difference.start)) – \(CLITime.text(difference.end))  PagerDuty: \(difference.source)  Klaxon: \(difference.klaxon)")
                        }
                        if differences.count > 100 { report.append("  … and \(differences.count - 100) more") }
                    }
                }
            }
            FileHandle.standardError.write(Data((report.joined(separator: "\n") + "\n").utf8))
            if differing > 0 {
                throw CLIError(code: 2, message: "\(counted(differing, "schedule")) would put someone else on call than PagerDuty does (above)")
            }
        }
    }
}
