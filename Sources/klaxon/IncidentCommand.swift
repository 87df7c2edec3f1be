import ArgumentParser
import Foundation
import KlaxonDomain
import Shared

/// Responders' commands over the binary protocol (Assignment's actions and queries).
struct IncidentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "incident", abstract: "List, show and act on incidents.",
        subcommands: [
            List.self, Show.self, Timeline.self, Ack.self, Resolve.self, Note.self, Reassign.self, Escalate.self, Snooze.self,
            Priority.self, Declare.self, Link.self, Responders.self, Join.self, Decline.self, Role.self, Status.self, Subscribe.self,
            Response.self, Postmortem.self,
        ])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Open incidents, newest first (--all for every status).")
        @OptionGroup var connection: ClientOptions
        @Flag(help: "Include resolved incidents.") var all = false

        func run() async throws {
            let reply: ListIncidentsReply = try await connection.call(
                Assignment.ListIncidents, ListIncidentsRequest(statuses: all ? [] : [.triggered, .acknowledged]))
            connection.output(reply.incidents) {
                var table = Table("ID", "NUMBER", "STATUS", "URGENCY", "PRIORITY", "SERVICE", "LEVEL", "ASSIGNED", "TITLE")
                for incident in reply.incidents {
                    let state = incident.state
                    let commander = incident.roles.first { $0.role == "commander" }.map { " cmdr \($0.userID)" } ?? ""
                    let priority = (incident.priority.isEmpty ? "-" : incident.priority) + (incident.major ? " MAJOR" : "") + commander
                        + (incident.majorIncidentID != 0 ? " → \(incident.majorIncidentID)" : "")
                    table.add(
                        "\(incident.id)", "#\(incident.number)", state?.status?.rawValue ?? "?", incident.urgency?.rawValue ?? "?", priority,
                        incident.serviceName, "\(state?.level ?? 0)", state?.assigneeIDs.map(String.init).joined(separator: ",") ?? "",
                        incident.title)
                }
                table.print(empty: all ? "no incidents" : "no open incidents")
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One incident: state, assignees, acknowledgements, timers.")
        @OptionGroup var connection: ClientOptions
        @Argument(help: "Incident id.") var id: UInt64

        func run() async throws {
            let incident: IncidentInfo = try await connection.call(Assignment.GetIncident, GetIncidentRequest(incidentID: id))
            let state = incident.state
            if connection.json { return print(JSONOut.text(incident)) }
            print("""
                #\(incident.number) \(incident.title)
                  service \(incident.serviceName), urgency \(incident.urgency?.rawValue ?? "?"), status \(state?.status?.rawValue ?? "?")
                  dedup key \(incident.dedupKey), alerts \(incident.alertCount), created \(CLITime.text(incident.createdAtMs))
                  level \(state?.level ?? 0) loop \(state?.loop ?? 0)\(state?.exhausted == true ? " (escalation path exhausted)" : ""), assigned \(state?.assigneeIDs.map(String.init).joined(separator: ", ") ?? "")
                  acknowledged by \(state?.acknowledgements.map { "\($0.actor) at \(CLITime.text($0.atMs))\($0.closedAtMs != 0 ? " (closed)" : "")" }.joined(separator: "; ") ?? "")
                  escalates at \(CLITime.text(state?.escalateAtMs ?? 0)), ack timeout at \(CLITime.text(state?.ackTimeoutAtMs ?? 0)), auto-resolve at \(CLITime.text(state?.autoResolveAtMs ?? 0))
                  priority \(incident.priority.isEmpty ? "none" : incident.priority)\(incident.major ? ", MAJOR incident with \(incident.childCount) linked" : "")\(incident.majorIncidentID != 0 ? ", linked to major incident \(incident.majorIncidentID)" : "")
                """)
            if let held = state?.heldUntilMs, held != 0 {
                print("  in maintenance until \(CLITime.text(held)): nobody is paged before then; level 1 is paged when it ends")
            }
            if !incident.roles.isEmpty {
                print("  roles " + incident.roles.map { "\($0.role) user \($0.userID)" }.joined(separator: ", "))
            }
            if !incident.conferenceURL.isEmpty || !incident.conferencePhone.isEmpty {
                print("  bridge " + [incident.conferenceURL, incident.conferencePhone].filter { !$0.isEmpty }.joined(separator: " · "))
            }
            if !incident.recentChanges.isEmpty {
                print("  recent changes (before it opened)")
                for change in incident.recentChanges {
                    print("    " + [CLITime.text(change.atMs), change.source.isEmpty ? nil : change.source, change.summary,
                                    change.links.first?.href].compactMap { $0 }.joined(separator: "  "))
                }
            }
            if !incident.alerts.isEmpty {
                print("  alerts")
                for alert in incident.alerts {
                    let labels = alert.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
                    let since = CLITime.text(alert.startsAtMs != 0 ? alert.startsAtMs : alert.firstAtMs)
                    print("    " + [
                        alert.status.isEmpty ? nil : alert.status, alert.summary, alert.fingerprint.isEmpty ? nil : "[\(alert.fingerprint)]",
                        labels.isEmpty ? nil : "{\(labels)}", "since \(since)", alert.endsAtMs != 0 && alert.status == "resolved" ? "ended \(CLITime.text(alert.endsAtMs))" : nil,
                        alert.count > 1 ? "×\(alert.count)" : nil, alert.generatorURL.isEmpty ? nil : alert.generatorURL,
                    ].compactMap { $0 }.joined(separator: "  "))
                }
            }
        }
    }

    struct Timeline: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "An incident's timeline (text, json or markdown).")
        @OptionGroup var connection: ClientOptions
        @Argument(help: "Incident id.") var id: UInt64
        @Option(help: "text, json or markdown.") var format = "text"

        func run() async throws {
            let reply: GetTimelineReply = try await connection.call(Assignment.GetTimeline, GetIncidentRequest(incidentID: id))
            switch format {
            case "json":
                let entries = reply.entries.map { ["at": CLITime.text($0.atMs), "type": $0.type, "actor": $0.actor, "details": $0.details] as [String: Any] }
                let data = try JSONSerialization.data(withJSONObject: entries, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
                print(String(decoding: data, as: UTF8.self))
            case "markdown":
                print("| at | type | actor | details |\n|---|---|---|---|")
                for entry in reply.entries {
                    let details = entry.details.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")
                    print("| \(CLITime.text(entry.atMs)) | \(entry.type) | \(entry.actor) | \(details.replacingOccurrences(of: "|", with: "\\|")) |")
                }
            case "text":
                for entry in reply.entries {
                    let details = entry.details.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
                    print("\(CLITime.text(entry.atMs))  \(entry.type.padding(toLength: 20, withPad: " ", startingAt: 0)) \(entry.actor)  \(details)")
                }
            default:
                throw ValidationError("--format must be text, json or markdown")
            }
        }
    }

    struct Ack: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Acknowledge an incident as a user.")
        @OptionGroup var connection: ClientOptions
        @Argument(help: "Incident id.") var id: UInt64
        @Option(help: "Act as this user (admin tokens only; a responder token acts as its own user).") var user: UInt64 = 0

        func run() async throws {
            let view: IncidentView = try await connection.call(
                Assignment.Acknowledge, IncidentActionRequest(incidentID: id, userID: user))
            connection.output(view) { print("acknowledged; ack timeout at \(CLITime.text(view.ackTimeoutAtMs))") }
        }
    }

    struct Resolve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Resolve an incident as a user.")
        @OptionGroup var connection: ClientOptions
        @Argument(help: "Incident id.") var id: UInt64
        @Option(help: "Act as this user (admin tokens only; a responder token acts as its own user).") var user: UInt64 = 0
        @Option(help: "Why (recorded in the timeline).") var reason = ""

        func run() async throws {
            let _: IncidentView = try await connection.call(
                Assignment.Resolve, IncidentActionRequest(incidentID: id, userID: user, text: reason))
            print("resolved")
        }
    }

    struct Note: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a note to an incident's timeline.")
        @OptionGroup var connection: ClientOptions
        @Argument(help: "Incident id.") var id: UInt64
        @Option(help: "Act as this user (admin tokens only; a responder token acts as its own user).") var user: UInt64 = 0
        @Argument(help: "The note.") var text: String

        func run() async throws {
            let _: IncidentView = try await connection.call(
                Assignment.AddNote, IncidentActionRequest(incidentID: id, userID: user, text: text))
            print("noted")
        }
    }

    struct Reassign: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Reassign an incident to users, or to an escalation policy from its level 1.")
        @OptionGroup var connection: ClientOptions
        @Argument(help: "Incident id.") var id: UInt64
        @Option(help: "The new assignees: user ids, comma-separated (1–10).") var users: String?
        @Option(help: "Reassign to this escalation policy (the incident follows it from now on).") var policy: UInt64?
        @Flag(help: "Restart the incident's own escalation policy at level 1.") var restart = false
        @Option(help: "Act as this user (admin tokens only).") var user: UInt64 = 0

        func run() async throws {
            guard [users != nil, policy != nil, restart].filter({ $0 }).count == 1 else {
                throw CLIError(code: CLIExit.usage, message: "give exactly one of --users, --policy and --restart")
            }
            let request = IncidentActionRequest(
                incidentID: id, userID: user, userIDs: try users.map { try idList($0, "--users") } ?? [], toPolicy: restart,
                policyID: policy ?? 0)
            let view: IncidentView = try await connection.call(Assignment.Reassign, request)
            connection.output(view) { print("reassigned; assigned \(view.assigneeIDs.map(String.init).joined(separator: ", "))") }
        }
    }

    struct Escalate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Escalate an incident to a level of its policy by hand.")
        @OptionGroup var connection: ClientOptions
        @Argument(help: "Incident id.") var id: UInt64
        @Option(help: "The level to move to (1-based).") var level: UInt32
        @Option(help: "Act as this user (admin tokens only).") var user: UInt64 = 0

        func run() async throws {
            let view: IncidentView = try await connection.call(Assignment.Escalate, IncidentActionRequest(incidentID: id, userID: user, level: level))
            connection.output(view) { print("escalated to level \(view.level); assigned \(view.assigneeIDs.map(String.init).joined(separator: ", "))") }
        }
    }

    struct Snooze: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Snooze an acknowledged incident (1 s – 7 days).")
        @OptionGroup var connection: ClientOptions
        @Argument(help: "Incident id.") var id: UInt64
        @Option(name: .customLong("for"), help: "How long: seconds or 30s, 15m, 4h, 2d.") var duration: String
        @Option(help: "Act as this user (admin tokens only).") var user: UInt64 = 0

        func run() async throws {
            let seconds = try CLITime.duration(duration)
            let view: IncidentView = try await connection.call(
                Assignment.Snooze, IncidentActionRequest(incidentID: id, userID: user, durationSeconds: seconds))
            connection.output(view) { print("snoozed until \(CLITime.text(view.snoozedUntilMs))") }
        }
    }

    struct Priority: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set an incident's priority: P1–P5, or none.")
        @OptionGroup var connection: ClientOptions
        @Argument(help: "Incident id.") var id: UInt64
        @Argument(help: "P1, P2, P3, P4, P5 or none.") var priority: String

        func run() async throws {
            let value = priority.lowercased() == "none" ? "" : priority.uppercased()
            let incident: IncidentInfo = try await connection.call(Assignment.SetPriority, SetPriorityRequest(incidentID: id, priority: value))
            connection.output(incident) { print("incident \(incident.id): priority \(incident.priority.isEmpty ? "none" : incident.priority)") }
        }
    }

    struct Declare: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Declare a major incident: an existing incident (ID), or a new one (--title).")
        @OptionGroup var connection: ClientOptions
        @Argument(help: "Incident id (leave out with --title).") var id: UInt64?
        @Option(help: "Title of a new major incident.") var title: String?
        @Option(help: "P1–P5 (default P1).") var priority = "P1"
        @Option(help: "A response plan to run at once (responders paged, bridge set, subscribers added).") var plan = ""

        func validate() throws {
            if (id == nil) == (title == nil) { throw ValidationError("give an incident id, or --title for a new major incident (not both)") }
        }

        func run() async throws {
            let incident: IncidentInfo = try await connection.call(
                Assignment.DeclareMajor, DeclareMajorRequest(incidentID: id ?? 0, title: title ?? "", priority: priority.uppercased(), responsePlan: plan))
            connection.output(incident) { print("major incident \(incident.id) (#\(incident.number), \(incident.priority)): \(incident.title)") }
        }
    }

    struct Link: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Link incidents to a major incident (--merge: move their alerts to it and resolve them).")
        @OptionGroup var connection: ClientOptions
        @Argument(help: "The major incident's id.") var major: UInt64
        @Argument(help: "Incident ids to link.") var ids: [UInt64]
        @Flag(help: "Move their alerts to the major incident and resolve them.") var merge = false

        func run() async throws {
            let incident: IncidentInfo = try await connection.call(
                Assignment.LinkIncidents, LinkIncidentsRequest(majorIncidentID: major, incidentIDs: ids, merge: merge))
            connection.output(incident) {
                print("\(merge ? "merged" : "linked") \(ids.count) into major incident \(incident.id) (\(incident.childCount) linked, \(incident.alertCount) alerts)")
            }
        }
    }
}

/// `klaxon surge show|set`: surge detection's settings and state.
struct SurgeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "surge", abstract: "Surge detection: show or change its settings.", subcommands: [Show.self, Set.self])

    static func print(_ settings: SurgeSettingsMessage) {
        Swift.print("""
            surge detection \(settings.enabled ? "on" : "off"): ≥ \(settings.minIncidents) new incidents\(settings.rateFactor > 0 ? " and ≥ \(settings.rateFactor)× the trailing hour's rate" : ""), \
            in \(settings.windowSeconds) s across ≥ \(settings.minServices) services; ends after \(settings.quietPeriodSeconds) s below
            \(settings.responsePlan.isEmpty ? "no response plan" : "response plan \(settings.responsePlan)"); \(settings.surging ? "surging since \(CLITime.text(settings.surgeSinceMs)): major incident \(settings.majorIncidentID)" : "no surge now")
            """)
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Settings and whether a surge is going on.")
        @OptionGroup var connection: ClientOptions

        func run() async throws {
            let settings: SurgeSettingsMessage = try await connection.call(Admin.GetSurgeSettings, Empty())
            connection.output(settings) { SurgeCommand.print(settings) }
        }
    }

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Change settings (those not given stay).")
        @OptionGroup var connection: ClientOptions
        @Option(help: "on or off.") var enabled: String?
        @Option(help: "Window, seconds (10–3600).") var window: UInt32?
        @Option(name: .customLong("min-incidents"), help: "N: new incidents in the window, the floor every surge needs (≥ 1).") var minIncidents: UInt32?
        @Option(name: .customLong("rate-factor"), help: "K: the window must also reach K times the trailing hour's rate (0: N alone decides).") var rateFactor: UInt32?
        @Option(name: .customLong("min-services"), help: "S: services the incidents must span.") var minServices: UInt32?
        @Option(name: .customLong("quiet-period"), help: "Seconds below the threshold before a surge ends.") var quietPeriod: UInt32?
        @Option(help: "The response plan a surge runs (\"\" for none).") var plan: String?

        func run() async throws {
            var settings: SurgeSettingsMessage = try await connection.call(Admin.GetSurgeSettings, Empty())
            if let enabled {
                switch enabled.lowercased() {
                case "on", "true", "yes": settings.enabled = true
                case "off", "false", "no": settings.enabled = false
                default: throw CLIError(code: CLIExit.usage, message: "--enabled takes on or off, not \"\(enabled)\"")
                }
            }
            if let window { settings.windowSeconds = window }
            if let minIncidents { settings.minIncidents = minIncidents }
            if let rateFactor { settings.rateFactor = rateFactor }
            if let minServices { settings.minServices = minServices }
            if let quietPeriod { settings.quietPeriodSeconds = quietPeriod }
            if let plan { settings.responsePlan = plan }
            let updated: SurgeSettingsMessage = try await connection.call(Admin.UpdateSurgeSettings, settings)
            connection.output(updated) { SurgeCommand.print(updated) }
        }
    }
}
