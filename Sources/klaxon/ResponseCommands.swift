import ArgumentParser
import Foundation
import KlaxonDomain
import Shared

/// Major incident response from the CLI (issue 14): response plans, and on a major incident:
/// responder requests, join / decline, roles, status updates, subscribers, the response itself.
extension IncidentCommand {
    /// Prints a major incident's response as a person reads it.
    static func printResponse(_ response: IncidentResponse) {
        var lines = ["major incident \(response.incidentID)" + (response.responsePlan.isEmpty ? "" : ", plan \(response.responsePlan)")]
        if !response.conferenceURL.isEmpty || !response.conferencePhone.isEmpty {
            lines.append("  bridge \([response.conferenceURL, response.conferencePhone].filter { !$0.isEmpty }.joined(separator: ", "))")
        }
        if !response.chatChannel.isEmpty { lines.append("  chat \(response.chatChannel)") }
        lines.append("  roles: " + (response.roles.isEmpty ? "none" : response.roles.map { "\($0.role) user \($0.userID)" }.joined(separator: ", ")))
        for request in response.requests {
            let role = request.role.isEmpty ? "" : " as \(request.role)"
            let answered = request.answeredAtMs != 0 ? " at \(CLITime.text(request.answeredAtMs))" : ""
            lines.append("  user \(request.userID)\(role): \(request.state)\(answered) (asked \(CLITime.text(request.requestedAtMs)) by \(request.requestedBy))")
        }
        for update in response.updates { lines.append("  update \(CLITime.text(update.atMs)) \(update.author): \(update.text)") }
        lines.append("  subscribers: " + (response.subscriberIDs.isEmpty ? "none" : response.subscriberIDs.map(String.init).joined(separator: ", ")))
        if !response.channelWebhooks.isEmpty { lines.append("  channels: " + response.channelWebhooks.joined(separator: ", ")) }
        print(lines.joined(separator: "\n"))
    }

    struct Responders: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Ask people to join a major incident's response (paged with reason responder_request).")
        @OptionGroup var connection: ClientOptions
        @Argument(help: "Major incident id.") var id: UInt64
        @Option(help: "A user id (repeatable).") var user: [UInt64] = []
        @Option(help: "Whoever is on call on this schedule (repeatable).") var schedule: [UInt64] = []
        @Option(help: "The first level of this escalation policy (repeatable).") var policy: [UInt64] = []
        @Option(help: "Message sent with the request.") var message = ""
        @Option(help: "Role they are asked to take.") var role = ""
        @Option(help: "Seconds before an unanswered request is no_answer (default 300).") var timeout: UInt32 = 0

        func run() async throws {
            let response: IncidentResponse = try await connection.call(Assignment.RequestResponders, RequestRespondersRequest(
                incidentID: id, userIDs: user, scheduleIDs: schedule, policyIDs: policy, message: message, role: role, timeoutSeconds: timeout))
            connection.output(response) { IncidentCommand.printResponse(response) }
        }
    }

    struct Join: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Join a major incident's response you were asked to join.")
        @OptionGroup var connection: ClientOptions
        @Argument(help: "Major incident id.") var id: UInt64
        @Option(help: "Answer for this user (admin tokens only).") var user: UInt64 = 0

        func run() async throws {
            let response: IncidentResponse = try await connection.call(
                Assignment.AnswerResponderRequest, ResponderAnswer(incidentID: id, userID: user, join: true))
            connection.output(response) { IncidentCommand.printResponse(response) }
        }
    }

    struct Decline: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Decline a request to join a major incident's response.")
        @OptionGroup var connection: ClientOptions
        @Argument(help: "Major incident id.") var id: UInt64
        @Option(help: "Answer for this user (admin tokens only).") var user: UInt64 = 0

        func run() async throws {
            let response: IncidentResponse = try await connection.call(
                Assignment.AnswerResponderRequest, ResponderAnswer(incidentID: id, userID: user, join: false))
            connection.output(response) { IncidentCommand.printResponse(response) }
        }
    }

    struct Role: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Give a role (commander hands over: one at a time), or --relinquish it.",
            discussion: "Roles: commander, deputy, scribe, subject_matter_expert, customer_liaison, internal_liaison.")
        @OptionGroup var connection: ClientOptions
        @Argument(help: "Major incident id.") var id: UInt64
        @Argument(help: "The role.") var role: String
        @Argument(help: "User id.") var user: UInt64
        @Flag(help: "Take the role away instead.") var relinquish = false

        func run() async throws {
            let response: IncidentResponse = try await connection.call(
                Assignment.AssignRole, AssignRoleRequest(incidentID: id, role: role, userID: user, relinquish: relinquish))
            connection.output(response) { IncidentCommand.printResponse(response) }
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Post a status update (sent to the subscribers with reason status_update, with the bridge).")
        @OptionGroup var connection: ClientOptions
        @Argument(help: "Major incident id.") var id: UInt64
        @Argument(help: "The update.") var text: String

        func run() async throws {
            let response: IncidentResponse = try await connection.call(Assignment.PostStatusUpdate, PostStatusUpdateRequest(incidentID: id, text: text))
            connection.output(response) { IncidentCommand.printResponse(response) }
        }
    }

    struct Subscribe: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add (or --remove) subscribers: users and chat channels told of every status update.")
        @OptionGroup var connection: ClientOptions
        @Argument(help: "Major incident id.") var id: UInt64
        @Argument(help: "User ids.") var users: [UInt64] = []
        @Option(help: "A Slack-compatible incoming webhook URL (repeatable).") var channelWebhook: [String] = []
        @Flag(help: "Remove them instead.") var remove = false

        func validate() throws {
            guard !users.isEmpty || !channelWebhook.isEmpty else { throw ValidationError("name at least one user id or --channel-webhook") }
        }

        func run() async throws {
            let response: IncidentResponse = try await connection.call(
                Assignment.Subscribe, SubscribeRequest(incidentID: id, userIDs: users, remove: remove, channelWebhooks: channelWebhook))
            connection.output(response) { IncidentCommand.printResponse(response) }
        }
    }

    struct Response: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A major incident's response: bridge, roles, who joined, updates.")
        @OptionGroup var connection: ClientOptions
        @Argument(help: "Major incident id.") var id: UInt64

        func run() async throws {
            let response: IncidentResponse = try await connection.call(Assignment.GetResponse, GetIncidentRequest(incidentID: id))
            connection.output(response) { IncidentCommand.printResponse(response) }
        }
    }
}

/// `klaxon plan create|list|delete`: response plans.
struct PlanCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan", abstract: "Response plans: who is asked to join a major incident, who is told, the bridge.",
        subcommands: [Create.self, List.self, Delete.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a response plan.")
        @OptionGroup var connection: ClientOptions
        @Option(help: "Name (unique).") var name: String
        @Option(help: "user:ID[:ROLE], schedule:ID[:ROLE] or policy:ID[:ROLE] (repeatable).") var responder: [String] = []
        @Option(help: "A subscriber's user id (repeatable).") var subscriber: [UInt64] = []
        @Option(help: "A subscribed Slack-compatible incoming webhook URL (repeatable).") var channelWebhook: [String] = []
        @Option(help: "Conference bridge URL.") var bridge = ""
        @Option(help: "Conference bridge phone number.") var phone = ""
        @Option(help: "Chat channel.") var channel = ""
        @Option(help: "Message sent with the responder requests.") var message = ""
        @Option(help: "Seconds before an unanswered request is no_answer (default 300).") var timeout: UInt32 = 0

        func run() async throws {
            var responders: [ResponsePlanResponder] = []
            for text in responder {
                let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
                guard parts.count == 2 || parts.count == 3, let id = UInt64(parts[1]) else {
                    throw CLIError(code: CLIExit.usage, message: "--responder \"\(text)\": use user:ID, schedule:ID or policy:ID, optionally :ROLE")
                }
                let role = parts.count == 3 ? parts[2] : ""
                switch parts[0] {
                case "user": responders.append(ResponsePlanResponder(userID: id, role: role))
                case "schedule": responders.append(ResponsePlanResponder(scheduleID: id, role: role))
                case "policy": responders.append(ResponsePlanResponder(policyID: id, role: role))
                default: throw CLIError(code: CLIExit.usage, message: "--responder \"\(text)\": the kind is user, schedule or policy")
                }
            }
            let plan: ResponsePlan = try await connection.call(Admin.CreateResponsePlan, ResponsePlan(
                name: name, responders: responders, subscriberIDs: subscriber, conferenceURL: bridge, conferencePhone: phone,
                chatChannel: channel, message: message, requestTimeoutSeconds: timeout, channelWebhooks: channelWebhook))
            connection.output(plan) {
                print("response plan \(plan.id) \"\(plan.name)\": \(counted(plan.responders.count, "responder")), \(counted(plan.subscriberIDs.count, "subscriber")), \(counted(plan.channelWebhooks.count, "channel"))")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Response plans.")
        @OptionGroup var connection: ClientOptions

        func run() async throws {
            let list: ResponsePlanList = try await connection.call(Admin.ListResponsePlans, Empty())
            connection.output(list.plans) {
                var table = Table("ID", "NAME", "RESPONDERS", "SUBSCRIBERS", "BRIDGE", "TIMEOUT")
                for plan in list.plans {
                    let responders = plan.responders.map { responder -> String in
                        let target = responder.userID != 0 ? "user:\(responder.userID)"
                            : responder.scheduleID != 0 ? "schedule:\(responder.scheduleID)" : "policy:\(responder.policyID)"
                        return responder.role.isEmpty ? target : "\(target):\(responder.role)"
                    }
                    table.add("\(plan.id)", plan.name, responders.joined(separator: " "), plan.subscriberIDs.map(String.init).joined(separator: ","),
                              [plan.conferenceURL, plan.conferencePhone].filter { !$0.isEmpty }.joined(separator: " "), "\(plan.requestTimeoutSeconds)s")
                }
                table.print(empty: "no response plans")
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a response plan.")
        @OptionGroup var connection: ClientOptions
        @Argument(help: "Plan id.") var id: UInt64

        func run() async throws {
            let _: Empty = try await connection.call(Admin.DeleteResponsePlan, AdminIDRequest(id: id))
            if !connection.json { print("deleted response plan \(id)") }
        }
    }
}
