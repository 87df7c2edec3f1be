import ArgumentParser
import Foundation
import KlaxonDomain

struct ImportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import", abstract: "Read another pager's configuration and write Klaxon's YAML (then klaxon apply -f).",
        subcommands: [PagerDuty.self, Opsgenie.self])

    /// What both importers share: where the YAML goes, the state file, the plan's window.
    struct Output: ParsableArguments {
        @Option(help: "Read saved answers from this folder instead of the API.") var from: String?
        @Option(help: "Save the API's answers to this folder (for --from).") var save: String?
        @Option(name: .shortAndLong, help: "Write the YAML here (default: stdout).") var output: String?
        @Option(help: "The import state file (the other pager's ids → names in Klaxon). Default: klaxon-import-<pager>.json beside -o, or here.")
        var state: String?
        @Flag(help: "Compare who is on call, Klaxon's computation against the other pager's, and exit 2 on any difference.") var plan = false
        @Option(help: "How many days --plan compares.") var days = 90
        @Option(help: "Compare from this instant (RFC 3339; default now).") var since: String?

        func start() throws -> Date {
            try since.map { Date(timeIntervalSince1970: Double(try CLITime.parse($0)) / 1000) } ?? Date()
        }

        func statePath(_ pager: String) -> String {
            state ?? URL(fileURLWithPath: output ?? "klaxon.yaml").deletingLastPathComponent().appendingPathComponent("klaxon-import-\(pager).json").path
        }

        func readState<State: Decodable>(_ pager: String) -> State? {
            FileManager.default.contents(atPath: statePath(pager)).flatMap { try? JSONDecoder().decode(State.self, from: $0) }
        }

        /// Writes the YAML and the state, reports what maps and what does not, and runs the plan:
        /// `rendered` gives the other pager's final schedule of each imported schedule.
        func finish<State: Encodable>(
            pager: String, command: String, document: [String: Any], state: State, notes: [String], notMapped: [String],
            window: (since: Date, until: Date), rendered: (String) -> [(start: Millis, end: Millis, who: String)]?
        ) throws {
            let yaml = "# Imported from \(pager) by klaxon import \(command), \(PagerDutyData.instant(Date())).\n"
                + (try ConfigFile.yaml(fromJSON: String(decoding: try JSONSerialization.data(withJSONObject: document, options: [.sortedKeys]), as: UTF8.self)))
            if let output {
                try yaml.write(toFile: output, atomically: true, encoding: .utf8)
            } else {
                print(yaml, terminator: "")
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(state).write(to: URL(fileURLWithPath: statePath(command)))

            var report: [String] = []
            let counts = ["users", "schedules", "escalation_policies", "services"].map { key in
                "\((document[key] as? [Any])?.count ?? 0) \(key.replacingOccurrences(of: "_", with: " "))"
            }
            report.append("imported \(counts.joined(separator: ", "))\(output.map { " to \($0)" } ?? "")")
            for line in notes { report.append("note: \(line)") }
            for line in notMapped { report.append("not mapped: \(line)") }
            var differing = 0
            if plan {
                let since = try self.since.map(CLITime.parse) ?? Millis((window.since.timeIntervalSince1970 * 1000).rounded())
                let until = min(Millis((window.until.timeIntervalSince1970 * 1000).rounded()), since + Millis(days) * 86_400_000)
                for entry in document["schedules"] as? [[String: Any]] ?? [] {
                    let name = entry["name"] as? String ?? ""
                    guard let source = rendered(name) else { continue }
                    var people: [String] = []
                    let schedule = OnCallDiff.schedule(entry, people: &people)
                    let differences = OnCallDiff.compare(schedule, people: people, rendered: source, since: since, until: until)
                    if differences.isEmpty {
                        report.append("on call, schedule \(name): the same as \(pager)'s for \(days) days from \(CLITime.text(since))")
                    } else {
                        differing += 1
                        report.append("on call, schedule \(name): \(counted(differences.count, "interval")) differ from \(pager)'s:")
                        for difference in differences.prefix(100) {
                            report.append("  \(CLITime.text(difference.start)) – \(CLITime.text(difference.end))  \(pager): \(difference.source)  Klaxon: \(difference.klaxon)")
                        }
                        if differences.count > 100 { report.append("  … and \(differences.count - 100) more") }
                    }
                }
            }
            FileHandle.standardError.write(Data((report.joined(separator: "\n") + "\n").utf8))
            if differing > 0 {
                throw CLIError(code: 2, message: "\(counted(differing, "schedule")) would put someone else on call than \(pager) does (above)")
            }
        }
    }

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
        @OptionGroup var options: Output

        func run() async throws {
            let data: PagerDutyData
            if let from = options.from {
                data = try PagerDutyData.load(from)
            } else {
                guard let token = token ?? ProcessInfo.processInfo.environment["PAGERDUTY_TOKEN"], !token.isEmpty else {
                    throw CLIError(code: CLIExit.usage, message: "give --token, $PAGERDUTY_TOKEN or --from DIR")
                }
                data = try await PagerDutyData.fetch(base: apiURL, token: token, days: options.days, now: try options.start())
            }
            if let save = options.save { try data.save(save) }
            var mapping = PagerDutyMapping(data: data, state: options.readState("pagerduty") ?? PagerDutyMapping.State())
            let document = mapping.document()
            let names = mapping.emails
            let state = mapping.state
            try options.finish(
                pager: "PagerDuty", command: "pagerduty", document: document, state: state, notes: mapping.notes, notMapped: mapping.notMapped,
                window: (data.since, data.until)
            ) { name in
                guard let id = state.schedules.first(where: { $0.value == name })?.key,
                      let source = data.schedules.first(where: { $0["id"] as? String == id }) else { return nil }
                let final = (source["final_schedule"] as? [String: Any])?["rendered_schedule_entries"] as? [[String: Any]] ?? []
                return final.compactMap { item in
                    guard let start = OnCallDiff.millis(item["start"]), let end = OnCallDiff.millis(item["end"]) else { return nil }
                    let id = (item["user"] as? [String: Any])?["id"] as? String ?? ""
                    return (start, end, names[id] ?? "user \(id)")
                }
            }
        }
    }

    struct Opsgenie: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "opsgenie",
            abstract: "Opsgenie's users, contacts, notification rules, schedules, escalations and teams' services, as YAML.",
            discussion: """
                Reads Opsgenie's REST API (--api-url, --key or $OPSGENIE_API_KEY, a GenieKey that may read the \
                configuration) or a folder of its saved answers (--from DIR, what --save DIR writes). Each rotation \
                becomes a schedule (Opsgenie's rotations are on call together), each team with integrations a service \
                (its default routing rule's escalation; its integrations' API keys as routing keys, so monitors only \
                change the host). Everything that does not map is listed on stderr. --plan compares who is on call \
                with Opsgenie's final timeline, every rotation, and exits 2 on any difference.
                """)
        @Option(help: "Opsgenie's REST API (api.eu.opsgenie.com for the EU instance).") var apiURL = "https://api.opsgenie.com"
        @Option(help: "An API key (default $OPSGENIE_API_KEY).") var key: String?
        @OptionGroup var options: Output

        func run() async throws {
            let data: OpsgenieData
            if let from = options.from {
                data = try OpsgenieData.load(from)
            } else {
                guard let key = key ?? ProcessInfo.processInfo.environment["OPSGENIE_API_KEY"], !key.isEmpty else {
                    throw CLIError(code: CLIExit.usage, message: "give --key, $OPSGENIE_API_KEY or --from DIR")
                }
                data = try await OpsgenieData.fetch(base: apiURL, key: key, days: options.days, now: try options.start())
            }
            if let save = options.save { try data.save(save) }
            var mapping = OpsgenieMapping(data: data, state: options.readState("opsgenie") ?? OpsgenieMapping.State())
            let document = mapping.document()
            let finished = mapping
            try options.finish(
                pager: "Opsgenie", command: "opsgenie", document: document, state: mapping.state, notes: mapping.notes,
                notMapped: mapping.notMapped, window: (data.since, data.until)
            ) { finished.rendered($0) }
        }
    }
}
