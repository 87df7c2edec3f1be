import ArgumentParser
import Foundation
import KlaxonDomain
import Shared

/// A service by id or by name.
func serviceID(_ text: String, client: ClientOptions) async throws -> UInt64 {
    if let id = UInt64(text), id != 0 { return id }
    let services: ServiceListMessage = try await client.call(Admin.ListServices, Empty())
    guard let service = services.services.first(where: { $0.name == text }) else {
        throw CLIError(code: CLIExit.refused, message: "not found: no service is called \"\(text)\"")
    }
    return service.id
}

struct HeartbeatCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "heartbeat", abstract: "Heartbeat monitors: create, list, show, delete.",
        discussion: """
            A job pings its monitor's URL on Ingest's HTTP listener: GET|POST /heartbeat/{id} on success, \
            /heartbeat/{id}/start, /fail, /log or /{exit code}. No success by the deadline (period + grace, or the cron \
            schedule's next run + grace), a start without success within the start timeout, or a failure triggers the \
            incident heartbeat:{id} on its service; the next success resolves it.
            """,
        subcommands: [Create.self, List.self, Show.self, Delete.self])

    static func print(_ heartbeat: Heartbeat) {
        Swift.print("heartbeat \(heartbeat.name)")
        Swift.print("  ping URL:     /heartbeat/\(heartbeat.id)  (on Ingest's HTTP listener; also /start, /fail, /log, /{exit code})")
        Swift.print("  service:      \(heartbeat.serviceID)")
        Swift.print("  expects:      \(schedule(heartbeat)), grace \(heartbeat.graceSeconds) s\(heartbeat.startTimeoutSeconds > 0 ? ", start timeout \(heartbeat.startTimeoutSeconds) s" : "")")
        Swift.print("  status:       \(heartbeat.status)\(heartbeat.downReason.isEmpty ? "" : " (\(heartbeat.downReason))")")
        Swift.print("  deadline:     \(heartbeat.deadlineAtMs == 0 ? (heartbeat.status == "new" ? "none until the first ping" : "none") : CLITime.text(heartbeat.deadlineAtMs))")
        Swift.print("  last ping:    \(CLITime.text(heartbeat.lastPingAtMs)) \(heartbeat.lastPingKind)")
        if !heartbeat.lastPingBody.isEmpty { Swift.print("  last body:    \(heartbeat.lastPingBody.prefix(500))") }
    }

    static func schedule(_ heartbeat: Heartbeat) -> String {
        heartbeat.cron.isEmpty ? "every \(heartbeat.periodSeconds) s" : "cron \"\(heartbeat.cron)\" \(heartbeat.timeZone)"
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A new monitor; prints its ping URL.")
        @OptionGroup var client: ClientOptions
        @Option(help: "Its name (unique; Opsgenie's heartbeat ping uses it).") var name: String
        @Option(help: "Service id or name.") var service: String
        @Option(help: "Expected every: 5m, 1h, 1d (or --cron).") var period: String?
        @Option(help: "Or a cron schedule of five fields: \"0 3 * * *\".") var cron: String?
        @Option(help: "The cron schedule's time zone (IANA, default UTC).") var timeZone: String = "UTC"
        @Option(help: "Grace after the expected ping: 5m (default 0).") var grace: String = "0"
        @Option(help: "A start must be followed by a success within: 30m (default none).") var startTimeout: String = "0"
        func run() async throws {
            let id = try await serviceID(service, client: client)
            let request = Heartbeat(
                name: name, serviceID: id, periodSeconds: try period.map(CLITime.duration) ?? 0, cron: cron ?? "", timeZone: timeZone,
                graceSeconds: try CLITime.duration(grace), startTimeoutSeconds: try CLITime.duration(startTimeout))
            let created: Heartbeat = try await client.call(Admin.CreateHeartbeat, request)
            if client.json { return Swift.print(JSONOut.text(created)) }
            HeartbeatCommand.print(created)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every monitor, its status and deadline.")
        @OptionGroup var client: ClientOptions
        func run() async throws {
            let list: HeartbeatList = try await client.call(Admin.ListHeartbeats, Empty())
            if client.json { return Swift.print(JSONOut.text(list)) }
            var table = Table("NAME", "SERVICE", "STATUS", "EXPECTS", "DEADLINE", "LAST PING")
            for heartbeat in list.heartbeats {
                table.add(
                    heartbeat.name, String(heartbeat.serviceID), heartbeat.status, HeartbeatCommand.schedule(heartbeat),
                    CLITime.text(heartbeat.deadlineAtMs), "\(CLITime.text(heartbeat.lastPingAtMs)) \(heartbeat.lastPingKind)")
            }
            table.print(empty: "no heartbeat monitors")
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One monitor, with its ping URL and last ping.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "Name or id.") var name: String
        func run() async throws {
            let heartbeat: Heartbeat = try await client.call(Admin.GetHeartbeat, HeartbeatRequest(idOrName: name))
            if client.json { return Swift.print(JSONOut.text(heartbeat)) }
            HeartbeatCommand.print(heartbeat)
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a monitor (its incidents stay).")
        @OptionGroup var client: ClientOptions
        @Argument(help: "Name or id.") var name: String
        func run() async throws {
            let _: Empty = try await client.call(Admin.DeleteHeartbeat, HeartbeatRequest(idOrName: name))
            Swift.print("deleted heartbeat \(name)")
        }
    }
}

/// `field=value`, `field!=value`, `field=~regex`, `field!~regex`, `field exists`.
func condition(_ text: String) throws -> EventConditionInfo {
    if text.hasSuffix(" exists") { return EventConditionInfo(field: String(text.dropLast(7)).trimmingCharacters(in: .whitespaces), op: "exists") }
    for op in ["!=", "=~", "!~", "="] {
        if let range = text.range(of: op) {
            return EventConditionInfo(
                field: text[..<range.lowerBound].trimmingCharacters(in: .whitespaces), op: op,
                value: text[range.upperBound...].trimmingCharacters(in: .whitespaces))
        }
    }
    throw CLIError(code: CLIExit.usage, message: "\"\(text)\" is not a matcher: use field=value, field!=value, field=~regex, field!~regex or \"field exists\"")
}

struct MaintenanceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "maintenance", abstract: "Maintenance windows: start, schedule, list, end, cancel.",
        discussion: """
            hold (default): incidents are created and marked, nobody is paged and nothing escalates; resolves apply; when \
            the window ends the still-open ones page their level 1. drop: events are kept in the service's audit trail \
            (klaxon service audit) and open nothing. Overlapping windows hold until the last one ends.
            """,
        subcommands: [Start.self, List.self, End.self, Cancel.self])

    struct WindowOptions: ParsableArguments {
        @Option(name: .customLong("service"), help: "Service id or name (repeat for several).") var services: [String] = []
        @Option(help: "hold (default) or drop.") var mode: String = "hold"
        @Option(help: "Only events matching this (repeat: all must hold): severity!=critical, summary=~disk, custom_details.env=staging.")
        var match: [String] = []
        @Option(help: "What the window is for.") var description: String = ""
    }

    static func row(_ window: MaintenanceWindowInfo) -> [String] {
        [String(window.id), window.phase, window.mode, window.serviceIDs.map(String.init).joined(separator: ","),
         window.currentStartMs == 0 ? "-" : "\(CLITime.text(window.currentStartMs)) → \(CLITime.text(window.currentEndMs))",
         window.rrule.isEmpty ? "" : "\(window.rrule) \(window.timeZone)",
         (window.matchers.map { $0.op == "exists" ? "\($0.field) exists" : "\($0.field)\($0.op)\($0.value)" } + [window.description]).filter { !$0.isEmpty }.joined(separator: " ")]
    }

    static func print(_ windows: [MaintenanceWindowInfo], empty: String = "(none)") {
        var table = Table("ID", "PHASE", "MODE", "SERVICES", "WINDOW", "REPEATS", "MATCHERS / DESCRIPTION")
        table.rows = windows.map(row)
        table.print(empty: empty)
    }

    /// End or cancel: the window as it is after.
    static func act(_ method: RPCMethod<AdminIDRequest, MaintenanceWindowInfo>, _ id: UInt64, _ client: ClientOptions) async throws {
        let window: MaintenanceWindowInfo = try await client.call(method, AdminIDRequest(id: id))
        if client.json { return Swift.print(JSONOut.text(window)) }
        print([window])
    }

    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A window from now (--for 2h), or from --start to --end; --rrule repeats it in --time-zone.")
        @OptionGroup var client: ClientOptions
        @OptionGroup var window: WindowOptions
        @Option(name: .customLong("for"), help: "From now for this long: 30m, 2h.") var duration: String?
        @Option(help: "Starts at (RFC 3339).") var start: String?
        @Option(help: "Ends at (RFC 3339).") var end: String?
        @Option(help: "Repeats: FREQ=WEEKLY;BYDAY=SA (RFC 5545), from the first occurrence.") var rrule: String = ""
        @Option(help: "The recurrence's time zone (IANA, default UTC).") var timeZone: String = "UTC"
        func run() async throws {
            guard !window.services.isEmpty else { throw CLIError(code: CLIExit.usage, message: "name at least one --service") }
            var ids: [UInt64] = []
            for service in window.services { ids.append(try await serviceID(service, client: client)) }
            var request = MaintenanceWindowInfo(
                description: window.description, serviceIDs: ids, rrule: rrule, timeZone: timeZone, mode: window.mode,
                matchers: try window.match.map(condition))
            switch (duration, start, end) {
            case let (duration?, nil, nil): request.durationSeconds = try CLITime.duration(duration)
            case let (nil, start?, end?):
                request.startsAtMs = try CLITime.parse(start)
                request.endsAtMs = try CLITime.parse(end)
            default: throw CLIError(code: CLIExit.usage, message: "give --for DURATION, or --start and --end")
            }
            let created: MaintenanceWindowInfo = try await client.call(Admin.CreateMaintenance, request)
            if client.json { return Swift.print(JSONOut.text(created)) }
            MaintenanceCommand.print([created])
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Windows, newest first: past, ongoing and future.")
        @OptionGroup var client: ClientOptions
        @Option(help: "past, ongoing, future or cancelled.") var phase: String = ""
        @Option(help: "Only this service's (id or name).") var service: String?
        func run() async throws {
            var id: UInt64 = 0
            if let service { id = try await serviceID(service, client: client) }
            let list: MaintenanceList = try await client.call(Admin.ListMaintenance, ListMaintenanceRequest(phase: phase, serviceID: id))
            if client.json { return Swift.print(JSONOut.text(list)) }
            MaintenanceCommand.print(list.windows, empty: "no maintenance windows")
        }
    }

    struct End: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "End an ongoing window now: what it held pages its level 1.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "Window id.") var id: UInt64
        func run() async throws { try await MaintenanceCommand.act(Admin.EndMaintenance, id, client) }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Cancel a window that has not started.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "Window id.") var id: UInt64
        func run() async throws { try await MaintenanceCommand.act(Admin.CancelMaintenance, id, client) }
    }
}

struct RulesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rules", abstract: "A service's event rules: show, set, test.",
        discussion: """
            Rules run in Ingest on every event of the service, in order, before dedup: conditions over any field \
            (summary, source, severity, component, group, class, dedup_key, custom_details.<key>, labels.<name>, tags; \
            =, !=, =~, !~, exists), actions suppress, severity, urgency, priority, dedup_key (a template: \
            "{{labels.alertname}}-{{source}}"), route (a service name), note. The first matching rule wins unless it \
            says continue: true. Every Ingest applies a change within 5 s.
            """,
        subcommands: [Show.self, Set.self, Test.self])

    static func load(_ client: ClientOptions, _ service: String) async throws -> (UInt64, [EventRule]) {
        let id = try await serviceID(service, client: client)
        let set: EventRuleSet = try await client.call(Admin.GetEventRules, AdminIDRequest(id: id))
        return (id, (try? EventRules.parse(json: set.rulesJson).get()) ?? [])
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The service's rules, in order.")
        @OptionGroup var client: ClientOptions
        @Option(help: "Service id or name.") var service: String
        func run() async throws {
            let (_, rules) = try await RulesCommand.load(client, service)
            if client.json { return Swift.print(EventRules.json(rules)) }
            if rules.isEmpty { return Swift.print("no event rules") }
            for (index, rule) in rules.enumerated() { Swift.print(EventRules.describe(rule, position: index + 1)) }
        }
    }

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Replace the service's rules with a file's (YAML or JSON: a list, or event_rules: [...]).")
        @OptionGroup var client: ClientOptions
        @Option(help: "Service id or name.") var service: String
        @Option(name: .shortAndLong, help: "The rules file.") var file: String
        func run() async throws {
            let id = try await serviceID(service, client: client)
            let document = try ConfigFile.load(file)
            var json = document.json
            if let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any], let rules = object["event_rules"] {
                json = String(decoding: try JSONSerialization.data(withJSONObject: rules), as: UTF8.self)
            }
            let set: EventRuleSet = try await client.call(Admin.SetEventRules, EventRuleSet(serviceID: id, rulesJson: json))
            let rules = (try? EventRules.parse(json: set.rulesJson).get()) ?? []
            Swift.print("service \(id): \(counted(rules.count, "event rule")) (every Ingest applies them within 5 s)")
            for (index, rule) in rules.enumerated() { Swift.print(EventRules.describe(rule, position: index + 1)) }
        }
    }

    struct Test: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Which rule an event (PagerDuty Events v2 JSON) matches and the event after the rules; writes nothing.")
        @OptionGroup var client: ClientOptions
        @Option(help: "Service id or name.") var service: String
        @Argument(help: "The event's JSON file (- for stdin).") var event: String
        @Option(help: "Alertmanager labels the event would carry: name=value (repeat).") var label: [String] = []
        func run() async throws {
            let data: Data
            if event == "-" {
                data = FileHandle.standardInput.readDataToEndOfFile()
            } else {
                guard let read = FileManager.default.contents(atPath: event) else {
                    throw CLIError(code: CLIExit.failed, message: "\(event): cannot read the file")
                }
                data = read
            }
            guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
                throw CLIError(code: CLIExit.failed, message: "\(event): not a JSON object")
            }
            var labels: [String: String] = [:]
            for item in label {
                let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
                guard parts.count == 2 else { throw CLIError(code: CLIExit.usage, message: "--label \(item): use name=value") }
                labels[parts[0]] = parts[1]
            }
            let (_, rules) = try await RulesCommand.load(client, service)
            let payload = object["payload"] as? [String: Any] ?? [:]
            var details: [String: String] = [:]
            if let custom = payload["custom_details"], let json = try? JSONSerialization.data(withJSONObject: custom) {
                details = EventFields.flatten(json: String(decoding: json, as: UTF8.self))
            }
            let fields = EventFields.of(
                summary: payload["summary"] as? String ?? "", source: payload["source"] as? String ?? "",
                severity: payload["severity"] as? String ?? "", component: payload["component"] as? String ?? "",
                group: payload["group"] as? String ?? "", eventClass: payload["class"] as? String ?? "",
                dedupKey: object["dedup_key"] as? String ?? "", action: object["event_action"] as? String ?? "trigger",
                client: object["client"] as? String ?? "", dialect: "pagerduty", customDetails: details, labels: labels)
            let outcome = EventRules.evaluate(rules, fields)
            if client.json {
                var out: [String: Any] = ["matched": outcome.matched, "suppressed": outcome.suppressed, "fields": outcome.fields]
                if let value = outcome.urgency { out["urgency"] = value }
                if let value = outcome.priority { out["priority"] = value }
                if let value = outcome.route { out["route"] = value }
                if !outcome.notes.isEmpty { out["notes"] = outcome.notes }
                return Swift.print(JSONOut.text(out))
            }
            if outcome.matched.isEmpty { Swift.print("no rule matched: the event goes on as it is") }
            for position in outcome.matched { Swift.print("matched " + EventRules.describe(rules[position - 1], position: position)) }
            if let position = outcome.suppressedBy {
                return Swift.print("suppressed by rule \(position): no incident; kept in the service's audit trail")
            }
            Swift.print("the event after the rules:")
            for (key, value) in outcome.fields.sorted(by: { $0.key < $1.key }) { Swift.print("  \(key): \(value)") }
            if let value = outcome.urgency { Swift.print("  urgency: \(value)") }
            if let value = outcome.priority { Swift.print("  priority: \(value)") }
            if let value = outcome.route { Swift.print("  routed to service: \(value)") }
            for note in outcome.notes { Swift.print("  note: \(note)") }
        }
    }
}
