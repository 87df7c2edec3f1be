import ArgumentParser
import Foundation
import Shared

/// `klaxon incident postmortem ID --format markdown|json` (issue 14, point 9): the major incident
/// and its children in one record — response figures first (time to first acknowledgement, until
/// the plan's responders joined, to resolve), then roles and hand-overs, responder requests (who
/// joined, who declined, who never answered), pages per person with channel and timing,
/// escalations and why, status updates, notes. Composed from the read APIs, so an observer token
/// can produce it.
extension IncidentCommand {
    struct Postmortem: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The postmortem record of a major incident (markdown or json).")
        @OptionGroup var connection: ClientOptions
        @Argument(help: "Major incident id.") var id: UInt64
        @Option(help: "markdown or json.") var format = "markdown"

        func validate() throws {
            guard ["markdown", "json"].contains(format) else { throw ValidationError("--format is markdown or json") }
        }

        func run() async throws {
            let incident: IncidentInfo = try await connection.call(Assignment.GetIncident, GetIncidentRequest(incidentID: id))
            guard incident.major else {
                throw CLIError(code: CLIExit.refused, message: "incident \(id) is not a major incident (klaxon incident declare \(id))")
            }
            let response: IncidentResponse = try await connection.call(Assignment.GetResponse, GetIncidentRequest(incidentID: id))
            let timeline: GetTimelineReply = try await connection.call(Assignment.GetTimeline, GetIncidentRequest(incidentID: id))
            var children: [IncidentInfo] = []
            var before: UInt64 = 0
            repeat {
                let page: ListIncidentsReply = try await connection.call(
                    Assignment.ListIncidents, ListIncidentsRequest(pageSize: 500, beforeID: before, majorIncidentID: id))
                children += page.incidents
                before = page.nextBeforeID
            } while before != 0
            let pages: NotificationListMessage = try await connection.call(People.ListIncidentNotifications, IDRequest(id: id))
            let users: UserListMessage = try await connection.call(People.ListUsers, Empty())
            // The linked incidents' services' change events in the window before the major incident opened.
            var changes: [ChangeEventInfo] = []
            for service in Set(children.map(\.serviceID)).sorted() {
                let reply: ListChangesReply = try await connection.call(
                    Admin.ListChanges, ListChangesRequest(serviceID: service, limit: 10, beforeMs: incident.createdAtMs))
                changes += reply.changes
            }
            var record = PostmortemRecord(
                incident: incident, response: response, timeline: timeline.entries, children: children.sorted { $0.id < $1.id },
                pages: pages.notifications, names: Dictionary(users.users.map { ($0.id, $0.name) }) { first, _ in first })
            record.changes = changes.sorted { ($0.atMs, $0.id) > ($1.atMs, $1.id) }
            print(format == "json" ? record.json() : record.markdown())
        }
    }
}

/// The record itself: a pure function of what the APIs returned.
struct PostmortemRecord {
    let incident: IncidentInfo
    let response: IncidentResponse
    let timeline: [TimelineEntryView]
    let children: [IncidentInfo]
    let pages: [NotificationMessage]
    let names: [UInt64: String]
    /// The change events (deploys, config changes) of the linked incidents' services just before it.
    var changes: [ChangeEventInfo] = []

    func name(_ id: UInt64) -> String { names[id].map { "\($0) (user \(id))" } ?? "user \(id)" }

    static func duration(_ ms: Int64?) -> String {
        guard let ms, ms >= 0 else { return "—" }
        let seconds = ms / 1000
        if seconds < 60 { return "\(seconds) s" }
        if seconds < 3600 { return "\(seconds / 60) min \(seconds % 60) s" }
        return "\(seconds / 3600) h \(seconds % 3600 / 60) min"
    }

    var created: Int64 { incident.createdAtMs }
    /// The first acknowledgement of the major incident, else of any child.
    var firstAckMs: Int64? {
        let acks = (incident.state?.acknowledgements ?? []) + children.flatMap { $0.state?.acknowledgements ?? [] }
        return acks.map(\.atMs).min().map { $0 - created }
    }
    /// When the last of those asked by the plan had joined (nil while any has not).
    var assembledMs: Int64? {
        let asked = response.requests
        guard !asked.isEmpty, asked.allSatisfy({ $0.state == "joined" }) else { return nil }
        return asked.map(\.answeredAtMs).max().map { $0 - created }
    }
    var resolvedMs: Int64? { incident.resolvedAtMs == 0 ? nil : incident.resolvedAtMs - created }

    var notResponded: [ResponderRequestView] { response.requests.filter { $0.state == "no_answer" || $0.state == "pending" } }

    func markdown() -> String {
        var out: [String] = []
        out.append("# Postmortem: #\(incident.number) \(incident.title)")
        out.append("")
        out.append("Major incident \(incident.id), \(incident.priority.isEmpty ? "no priority" : incident.priority), opened \(CLITime.text(created))"
            + (incident.resolvedAtMs != 0 ? ", resolved \(CLITime.text(incident.resolvedAtMs))" : ", still open")
            + (response.responsePlan.isEmpty ? "" : ", response plan \(response.responsePlan)") + ".")
        if !response.conferenceURL.isEmpty || !response.conferencePhone.isEmpty {
            out.append("Bridge: \([response.conferenceURL, response.conferencePhone].filter { !$0.isEmpty }.joined(separator: ", ")).")
        }
        out.append("")
        out.append("## Response figures")
        out.append("")
        out.append("| figure | value |")
        out.append("|---|---|")
        out.append("| time to first acknowledgement | \(Self.duration(firstAckMs)) |")
        let joined = response.requests.filter { $0.state == "joined" }.count
        out.append("| time until the responders joined | \(assembledMs.map { Self.duration($0) } ?? "not all joined (\(joined) of \(response.requests.count))") |")
        out.append("| time to resolve | \(Self.duration(resolvedMs)) |")
        out.append("| linked incidents | \(children.count) |")
        out.append("")
        if !changes.isEmpty {
            let services = Dictionary(children.map { ($0.serviceID, $0.serviceName) }) { first, _ in first }
            out.append("## Changes before it")
            out.append("")
            out.append("| at | service | source | change |")
            out.append("|---|---|---|---|")
            for change in changes {
                let link = change.links.first.map { " ([\($0.text.isEmpty ? "link" : $0.text)](\($0.href)))" } ?? ""
                out.append("| \(CLITime.text(change.atMs)) | \(services[change.serviceID] ?? "service \(change.serviceID)") | \(change.source) | \(change.summary)\(link) |")
            }
            out.append("")
        }
        out.append("## Responders")
        out.append("")
        out.append("| who | asked as | asked | answer | after |")
        out.append("|---|---|---|---|---|")
        for request in response.requests {
            let answer = switch request.state {
            case "joined": "joined"
            case "declined": "declined"
            case "no_answer": "**did not respond**"
            default: "pending"
            }
            let after = request.answeredAtMs != 0 ? Self.duration(request.answeredAtMs - request.requestedAtMs)
                : request.state == "no_answer" ? "timed out after \(Self.duration(request.timeoutAtMs - request.requestedAtMs))" : "—"
            out.append("| \(name(request.userID)) | \(request.role.isEmpty ? "—" : request.role) | \(CLITime.text(request.requestedAtMs)) | \(answer) | \(after) |")
        }
        if !notResponded.isEmpty {
            out.append("")
            out.append("Did not respond: \(notResponded.map { name($0.userID) }.joined(separator: ", ")).")
        }
        out.append("")
        out.append("## Roles")
        out.append("")
        for role in response.roles { out.append("- \(role.role): \(name(role.userID)) since \(CLITime.text(role.assignedAtMs)) (by \(role.assignedBy))") }
        for entry in timeline where ["role_handed_over", "role_relinquished"].contains(entry.type) {
            let detail = entry.type == "role_handed_over"
                ? "\(entry.details["role"] ?? "?") handed over from user \(entry.details["from"] ?? "?") to user \(entry.details["to"] ?? "?")"
                : "\(entry.details["role"] ?? "?") relinquished by user \(entry.details["user"] ?? "?")"
            out.append("- \(CLITime.text(entry.atMs)): \(detail)")
        }
        if response.roles.isEmpty { out.append("- none") }
        out.append("")
        out.append("## Pages")
        out.append("")
        out.append("| who | reason | channel | due | outcome | after |")
        out.append("|---|---|---|---|---|---|")
        for page in pages.sorted(by: { ($0.dueAtMs, $0.id) < ($1.dueAtMs, $1.id) }) {
            let after = page.finishedAtMs != 0 ? Self.duration(page.finishedAtMs - page.dueAtMs) : "—"
            let outcome = page.status + (page.lastError.isEmpty ? "" : " (\(page.lastError))")
            out.append("| \(name(page.userID)) | \(page.reason?.rawValue ?? "?") | \(page.channel) | \(CLITime.text(page.dueAtMs)) | \(outcome) | \(after) |")
        }
        out.append("")
        out.append("## Escalations")
        out.append("")
        let escalations = timeline.filter { ["escalate", "ack_timeout", "repeat_escalation_path", "exhaust_escalation_path", "reassign"].contains($0.type) }
        for entry in escalations {
            let why = entry.details.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            out.append("- \(CLITime.text(entry.atMs)) \(entry.type) by \(entry.actor)\(why.isEmpty ? "" : ": \(why)")")
        }
        if escalations.isEmpty { out.append("- none") }
        out.append("")
        out.append("## Status updates")
        out.append("")
        for update in response.updates { out.append("- \(CLITime.text(update.atMs)) \(update.author): \(update.text)") }
        if response.updates.isEmpty { out.append("- none") }
        out.append("")
        out.append("## Notes")
        out.append("")
        let notes = timeline.filter { $0.type == "note" && $0.details["text"] != nil }
        for note in notes { out.append("- \(CLITime.text(note.atMs)) \(note.actor): \(note.details["text"]!)") }
        if notes.isEmpty { out.append("- none") }
        out.append("")
        out.append("## Linked incidents")
        out.append("")
        for child in children {
            out.append("- #\(child.number) \(child.title) (\(child.serviceName), \(child.state?.status?.rawValue ?? "?"))")
        }
        if children.isEmpty { out.append("- none") }
        out.append("")
        out.append("## Timeline")
        out.append("")
        for entry in timeline {
            let details = entry.details.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            out.append("- \(CLITime.text(entry.atMs)) \(entry.type) (\(entry.actor))\(details.isEmpty ? "" : " \(details)")")
        }
        return out.joined(separator: "\n")
    }

    func json() -> String {
        func ms(_ value: Int64?) -> Any { value.map { $0 as Any } ?? NSNull() }
        let object: [String: Any] = [
            "incident": ["id": incident.id, "number": incident.number, "title": incident.title, "priority": incident.priority,
                         "created_at_ms": incident.createdAtMs, "resolved_at_ms": incident.resolvedAtMs, "response_plan": response.responsePlan,
                         "conference_url": response.conferenceURL, "conference_phone": response.conferencePhone],
            "figures": ["time_to_first_ack_ms": ms(firstAckMs), "time_to_assemble_ms": ms(assembledMs), "time_to_resolve_ms": ms(resolvedMs)],
            "responders": response.requests.map { ["user_id": $0.userID, "name": names[$0.userID] ?? "", "role": $0.role, "state": $0.state,
                                                  "requested_at_ms": $0.requestedAtMs, "answered_at_ms": $0.answeredAtMs] as [String: Any] },
            "did_not_respond": notResponded.map { ["user_id": $0.userID, "name": names[$0.userID] ?? ""] as [String: Any] },
            "roles": response.roles.map { ["role": $0.role, "user_id": $0.userID, "assigned_at_ms": $0.assignedAtMs] as [String: Any] },
            "pages": pages.map { ["user_id": $0.userID, "reason": $0.reason?.rawValue ?? "", "channel": $0.channel, "status": $0.status,
                                  "due_at_ms": $0.dueAtMs, "finished_at_ms": $0.finishedAtMs] as [String: Any] },
            "status_updates": response.updates.map { ["author": $0.author, "text": $0.text, "at_ms": $0.atMs] as [String: Any] },
            "linked_incidents": children.map { ["id": $0.id, "number": $0.number, "title": $0.title] as [String: Any] },
            "changes_before": changes.map { ["service_id": $0.serviceID, "at_ms": $0.atMs, "source": $0.source, "summary": $0.summary,
                                             "links": $0.links.map(\.href)] as [String: Any] },
            "timeline": timeline.map { ["at_ms": $0.atMs, "type": $0.type, "actor": $0.actor, "details": $0.details] as [String: Any] },
        ]
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }
}
