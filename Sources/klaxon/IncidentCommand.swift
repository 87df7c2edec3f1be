import ArgumentParser
import Foundation
import KlaxonDomain
import Shared

/// Responders' commands over the binary protocol (Assignment's actions and queries).
struct IncidentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "incident", abstract: "List, show and act on incidents.",
        subcommands: [List.self, Show.self, Timeline.self, Ack.self, Resolve.self, Note.self])

    struct Connection: ParsableArguments {
        @Option(help: "Assignment's binary protocol address.")
        var address = "127.0.0.1:7402"

        func client() throws -> RPCClient {
            guard let hostPort = HostPort(address) else { throw ValidationError("--address must be host:port") }
            return RPCClient(host: hostPort.host, port: hostPort.port)
        }
    }

    /// Runs one call, printing an RPC error the way a person reads it.
    static func call<Request, Reply>(_ connection: Connection, _ method: RPCMethod<Request, Reply>, _ request: Request) async throws -> Reply {
        let client = try connection.client()
        defer { Task { await client.close() } }
        do {
            return try await client.call(method, request)
        } catch let error as RPCError {
            print("error: \(error)")
            throw ExitCode(2)
        }
    }

    static func time(_ millis: Int64) -> String {
        millis == 0 ? "-" : ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(millis) / 1000))
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Open incidents, newest first (--all for every status).")
        @OptionGroup var connection: Connection
        @Flag(help: "Include resolved incidents.") var all = false

        func run() async throws {
            let reply: ListIncidentsReply = try await IncidentCommand.call(
                connection, Assignment.ListIncidents, ListIncidentsRequest(statuses: all ? [] : [.triggered, .acknowledged]))
            for incident in reply.incidents {
                let state = incident.state
                print("#\(incident.number) [\(state?.status?.rawValue ?? "?")] \(incident.title) — \(incident.serviceName), "
                    + "level \(state?.level ?? 0), assigned \(state?.assigneeIDs.map(String.init).joined(separator: ",") ?? "")  (id \(incident.id))")
            }
            if reply.incidents.isEmpty { print(all ? "no incidents" : "no open incidents") }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One incident: state, assignees, acknowledgements, timers.")
        @OptionGroup var connection: Connection
        @Argument(help: "Incident id.") var id: UInt64

        func run() async throws {
            let incident: IncidentInfo = try await IncidentCommand.call(connection, Assignment.GetIncident, GetIncidentRequest(incidentID: id))
            let state = incident.state
            print("""
                #\(incident.number) \(incident.title)
                  service \(incident.serviceName), urgency \(incident.urgency?.rawValue ?? "?"), status \(state?.status?.rawValue ?? "?")
                  dedup key \(incident.dedupKey), alerts \(incident.alertCount), created \(IncidentCommand.time(incident.createdAtMs))
                  level \(state?.level ?? 0) loop \(state?.loop ?? 0)\(state?.exhausted == true ? " (escalation path exhausted)" : ""), assigned \(state?.assigneeIDs.map(String.init).joined(separator: ", ") ?? "")
                  acknowledged by \(state?.acknowledgements.map { "\($0.actor) at \(IncidentCommand.time($0.atMs))\($0.closedAtMs != 0 ? " (closed)" : "")" }.joined(separator: "; ") ?? "")
                  escalates at \(IncidentCommand.time(state?.escalateAtMs ?? 0)), ack timeout at \(IncidentCommand.time(state?.ackTimeoutAtMs ?? 0)), auto-resolve at \(IncidentCommand.time(state?.autoResolveAtMs ?? 0))
                """)
        }
    }

    struct Timeline: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "An incident's timeline (text, json or markdown).")
        @OptionGroup var connection: Connection
        @Argument(help: "Incident id.") var id: UInt64
        @Option(help: "text, json or markdown.") var format = "text"

        func run() async throws {
            let reply: GetTimelineReply = try await IncidentCommand.call(connection, Assignment.GetTimeline, GetIncidentRequest(incidentID: id))
            switch format {
            case "json":
                let entries = reply.entries.map { ["at": IncidentCommand.time($0.atMs), "type": $0.type, "actor": $0.actor, "details": $0.details] as [String: Any] }
                let data = try JSONSerialization.data(withJSONObject: entries, options: [.prettyPrinted, .sortedKeys])
                print(String(decoding: data, as: UTF8.self))
            case "markdown":
                print("| at | type | actor | details |\n|---|---|---|---|")
                for entry in reply.entries {
                    let details = entry.details.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")
                    print("| \(IncidentCommand.time(entry.atMs)) | \(entry.type) | \(entry.actor) | \(details.replacingOccurrences(of: "|", with: "\\|")) |")
                }
            case "text":
                for entry in reply.entries {
                    let details = entry.details.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
                    print("\(IncidentCommand.time(entry.atMs))  \(entry.type.padding(toLength: 20, withPad: " ", startingAt: 0)) \(entry.actor)  \(details)")
                }
            default:
                throw ValidationError("--format must be text, json or markdown")
            }
        }
    }

    struct Ack: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Acknowledge an incident as a user.")
        @OptionGroup var connection: Connection
        @Argument(help: "Incident id.") var id: UInt64
        @Option(help: "The acknowledging user's id.") var user: UInt64

        func run() async throws {
            let view: IncidentView = try await IncidentCommand.call(
                connection, Assignment.Acknowledge, IncidentActionRequest(incidentID: id, userID: user))
            print("acknowledged; ack timeout at \(IncidentCommand.time(view.ackTimeoutAtMs))")
        }
    }

    struct Resolve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Resolve an incident as a user.")
        @OptionGroup var connection: Connection
        @Argument(help: "Incident id.") var id: UInt64
        @Option(help: "The resolving user's id.") var user: UInt64
        @Option(help: "Why (recorded in the timeline).") var reason = ""

        func run() async throws {
            let _: IncidentView = try await IncidentCommand.call(
                connection, Assignment.Resolve, IncidentActionRequest(incidentID: id, userID: user, text: reason))
            print("resolved")
        }
    }

    struct Note: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a note to an incident's timeline.")
        @OptionGroup var connection: Connection
        @Argument(help: "Incident id.") var id: UInt64
        @Option(help: "The author's user id.") var user: UInt64
        @Argument(help: "The note.") var text: String

        func run() async throws {
            let _: IncidentView = try await IncidentCommand.call(
                connection, Assignment.AddNote, IncidentActionRequest(incidentID: id, userID: user, text: text))
            print("noted")
        }
    }
}
