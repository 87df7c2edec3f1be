import ArgumentParser
import Foundation
import NIOCore
import KlaxonDomain
import Shared

// The operators' commands: people, schedules, policies, services, routing keys, tokens. Every
// one is a call to the Admin or People API at Klaxon's address (Assignment's listener).

struct UserCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "user", abstract: "Users: list, show, create, delete, test-page.",
        subcommands: [List.self, Show.self, Create.self, Delete.self, TestPage.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every user.")
        @OptionGroup var client: ClientOptions
        func run() async throws {
            let reply: UserListMessage = try await client.call(People.ListUsers, Empty())
            client.output(reply.users) {
                var table = Table("ID", "NAME", "EMAIL", "ROLE", "TIME ZONE")
                for user in reply.users { table.add("\(user.id)", user.name, user.email, user.role, user.timeZone) }
                table.print(empty: "no users")
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One user with contact methods and notification rules.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "User id.") var id: UInt64
        func run() async throws {
            let user: UserMessage = try await client.call(People.GetUser, IDRequest(id: id))
            client.output(user) {
                print("user \(user.id): \(user.name) <\(user.email)>, \(user.role), \(user.timeZone)" + (user.chatID.isEmpty ? "" : ", chat id \(user.chatID)"))
                var methods = Table("CONTACT", "TYPE", "ADDRESS", "LABEL", "STATE")
                for method in user.contactMethods { methods.add("\(method.id)", method.type, method.address, method.label, ContactCommand.state(method)) }
                methods.print(empty: "no contact methods")
                for method in user.contactMethods where !method.verified {
                    print("contact method \(method.id) is not verified: it is not paged. klaxon contact verify \(method.id) CODE (a new code: klaxon contact send-code \(method.id))")
                    if !method.codeNotDelivered.isEmpty { print("  its code could not be sent: \(method.codeNotDelivered)") }
                }
                for method in user.contactMethods where method.failedInARow >= UInt32(ContactVerification.failingAfter) {
                    print("contact method \(method.id) FAILING: its last \(method.failedInARow) pages failed (last: \(method.lastFailure))")
                }
                var rules = Table("RULE", "CONTACT", "AFTER", "URGENCY")
                for rule in user.notificationRules {
                    rules.add("\(rule.id)", "\(rule.contactMethodID)", "\(rule.startDelaySeconds) s", rule.urgency?.rawValue ?? "?")
                }
                rules.print(empty: "no notification rules")
            }
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a user.")
        @OptionGroup var client: ClientOptions
        @Option var name: String
        @Option var email: String
        @Option(help: "IANA time zone.") var timeZone = "UTC"
        @Option(help: "admin, responder or observer.") var role = "responder"
        @Option(help: "Their member id in the team chat (e.g. Slack U0123ABCD), for chat commands.") var chatId = ""
        func run() async throws {
            let user: UserMessage = try await client.call(
                People.CreateUser, UserMessage(name: name, email: email, timeZone: timeZone, role: role, chatID: chatId))
            client.output(user) { print("created user \(user.id) (\(user.name))") }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a user (refused while schedules, policies or open incidents refer to them).")
        @OptionGroup var client: ClientOptions
        @Argument(help: "User id.") var id: UInt64
        func run() async throws {
            let _: Empty = try await client.call(People.DeleteUser, IDRequest(id: id))
            client.output(["deleted": id]) { print("deleted user \(id)") }
        }
    }

    struct TestPage: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "test-page",
            abstract: "Send a test page through every verified contact method of a user and print each outcome (exit 1 if one failed).")
        @OptionGroup var client: ClientOptions
        @Argument(help: "User id.") var id: UInt64
        func run() async throws {
            let reply: TestPageReply = try await client.call(People.TestPage, IDRequest(id: id), timeout: .seconds(90))
            client.output(reply.outcomes) {
                var table = Table("CONTACT", "TYPE", "ADDRESS", "OUTCOME", "DETAIL")
                for outcome in reply.outcomes { table.add("\(outcome.contactMethodID)", outcome.type, outcome.address, outcome.status, outcome.detail) }
                table.print(empty: "user \(id) has no contact methods")
            }
            if reply.outcomes.contains(where: { $0.status == "failed" || $0.status == "pending" }) {
                throw CLIError(code: CLIExit.failed, message: "some test pages did not go out")
            }
        }
    }
}

struct ContactCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "contact", abstract: "A user's contact methods: add, verify, send-code, delete.",
        subcommands: [Add.self, Verify.self, SendCode.self, Delete.self])

    /// What `klaxon user show` says of a method.
    static func state(_ method: ContactMethodMessage) -> String {
        if method.verified { return method.failedInARow >= UInt32(ContactVerification.failingAfter) ? "verified, FAILING" : "verified" }
        if method.codeExpiresAtMs == 0 { return "unverified (no code)" }
        return "unverified (code expires \(CLITime.text(method.codeExpiresAtMs)), \(method.codeTriesLeft) tries left)"
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Confirm a contact method with the 6-digit code sent to it (valid 10 minutes, 5 tries).")
        @OptionGroup var client: ClientOptions
        @Argument(help: "Contact method id.") var id: UInt64
        @Argument(help: "The code.") var code: String
        func run() async throws {
            let method: ContactMethodMessage = try await client.call(
                People.VerifyContactMethod, VerifyContactRequest(contactMethodID: id, code: code))
            client.output(method) { print("contact method \(method.id) (\(method.type) \(method.address)) verified: it is paged from now on") }
        }
    }

    struct SendCode: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "send-code", abstract: "Send a new verification code to a contact method (at most one a minute).")
        @OptionGroup var client: ClientOptions
        @Argument(help: "Contact method id.") var id: UInt64
        func run() async throws {
            let method: ContactMethodMessage = try await client.call(People.SendVerificationCode, IDRequest(id: id))
            client.output(method) {
                print("a new code was sent to contact method \(method.id) (\(method.type)); confirm it with: klaxon contact verify \(method.id) CODE")
            }
        }
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a contact method to a user.")
        @OptionGroup var client: ClientOptions
        @Option(help: "User id.") var user: UInt64
        @Option(help: "webhook, slack, email, sms, phone or push.") var type: String
        @Option(name: .customLong("to"), help: "Where pages go: URL, email address, +phone number or push token.") var address: String
        @Option(help: "Its name (rules in a YAML file refer to it by this).") var label = ""
        func run() async throws {
            let method: ContactMethodMessage = try await client.call(
                People.CreateContactMethod, ContactMethodMessage(userID: user, type: type, address: address, label: label.isEmpty ? type : label))
            client.output(method) {
                print("created contact method \(method.id) for user \(user)")
                if !method.verified {
                    print("a 6-digit code was sent to it (valid 10 minutes); it is not paged until confirmed: klaxon contact verify \(method.id) CODE")
                }
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a contact method (refused while a rule uses it).")
        @OptionGroup var client: ClientOptions
        @Argument(help: "Contact method id.") var id: UInt64
        func run() async throws {
            let _: Empty = try await client.call(People.DeleteContactMethod, IDRequest(id: id))
            client.output(["deleted": id]) { print("deleted contact method \(id)") }
        }
    }
}

struct RuleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rule", abstract: "A user's notification rules: add, delete.", subcommands: [Add.self, Delete.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a notification rule (at most 20 per user).")
        @OptionGroup var client: ClientOptions
        @Option(help: "User id.") var user: UInt64
        @Option(help: "One of the user's contact method ids.") var contact: UInt64
        @Option(help: "Delay after assignment: 0 (minute zero), 90, 5m, 1h.") var delay = "0"
        @Option(help: "high or low.") var urgency = "high"
        func run() async throws {
            guard let level = Urgency(rawValue: urgency) else { throw CLIError(code: CLIExit.usage, message: "--urgency must be high or low") }
            let rule: NotificationRuleMessage = try await client.call(
                People.CreateNotificationRule,
                NotificationRuleMessage(userID: user, contactMethodID: contact, startDelaySeconds: try CLITime.duration(delay), urgency: level))
            client.output(rule) { print("created notification rule \(rule.id) for user \(user)") }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a notification rule.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "Rule id.") var id: UInt64
        func run() async throws {
            let _: Empty = try await client.call(People.DeleteNotificationRule, IDRequest(id: id))
            client.output(["deleted": id]) { print("deleted notification rule \(id)") }
        }
    }
}

struct ScheduleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schedule", abstract: "On-call schedules: list, show, create, delete, and their iCal feeds.",
        subcommands: [List.self, Show.self, Create.self, Delete.self, Feed.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every schedule.")
        @OptionGroup var client: ClientOptions
        func run() async throws {
            let reply: ScheduleListMessage = try await client.call(Admin.ListSchedules, Empty())
            client.output(reply.schedules) {
                var table = Table("ID", "NAME", "TIME ZONE", "LAYERS", "OVERRIDES")
                for schedule in reply.schedules {
                    table.add("\(schedule.id)", schedule.name, schedule.timeZone, "\(schedule.layers.count)", "\(schedule.overrides.count)")
                }
                table.print(empty: "no schedules")
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One schedule's layers and overrides.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "Schedule id.") var id: UInt64
        func run() async throws {
            let schedule: ScheduleMessage = try await client.call(Admin.GetSchedule, AdminIDRequest(id: id))
            client.output(schedule) {
                print("schedule \(schedule.id): \(schedule.name) (\(schedule.timeZone))")
                for (index, layer) in schedule.layers.enumerated() {
                    print("  layer \(index + 1): users \(layer.userIDs.map(String.init).joined(separator: ", ")), turns of \(layer.rotationTurnLengthSeconds) s from \(CLITime.text(layer.rotationVirtualStartMs))\(layer.restrictions.isEmpty ? "" : ", \(layer.restrictions.count) restriction(s)")")
                }
                for override in schedule.overrides {
                    print("  override: user \(override.userID) from \(CLITime.text(override.startMs)) to \(CLITime.text(override.endMs))")
                }
            }
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a one-layer rotation (more layers, restrictions and overrides: klaxon apply -f).")
        @OptionGroup var client: ClientOptions
        @Option var name: String
        @Option(help: "IANA time zone; turns are counted in it.") var timeZone = "UTC"
        @Option(help: "User ids in rotation order, comma-separated.") var users: String
        @Option(help: "Length of one turn: 1d, 7d, 12h.") var turn = "7d"
        @Option(help: "When the first user's first turn starts (RFC 3339).") var start: String
        func run() async throws {
            let layer = LayerMessage(
                userIDs: try idList(users, "--users"), rotationVirtualStartMs: try CLITime.parse(start),
                rotationTurnLengthSeconds: try CLITime.duration(turn))
            let schedule: ScheduleMessage = try await client.call(
                Admin.CreateSchedule, ScheduleMessage(name: name, timeZone: timeZone, layers: [layer]))
            client.output(schedule) { print("created schedule \(schedule.id) (\(schedule.name))") }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a schedule (refused while a policy targets it).")
        @OptionGroup var client: ClientOptions
        @Argument(help: "Schedule id.") var id: UInt64
        func run() async throws {
            let _: Empty = try await client.call(Admin.DeleteSchedule, AdminIDRequest(id: id))
            client.output(["deleted": id]) { print("deleted schedule \(id)") }
        }
    }

    struct Feed: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make (or replace) the schedule's iCal feed URL; the previous one stops working.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "Schedule id.") var id: UInt64
        @Option(help: "Assignment's HTTP listener as people's calendars reach it.") var base = "http://127.0.0.1:8402"
        func run() async throws {
            let feed: ScheduleFeed = try await client.call(Admin.RotateScheduleFeed, AdminIDRequest(id: id))
            let url = base.trimmingCharacters(in: CharacterSet(charactersIn: "/")) + feed.path
            client.output(["schedule_id": id, "url": url]) {
                print("feed of schedule \(id) (shown once; run this again to replace it):\n\(url)")
            }
        }
    }
}

struct OnCallCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "oncall", abstract: "Who is on call now or at an instant, for a schedule or an escalation policy.")
    @OptionGroup var client: ClientOptions
    @Option(help: "Schedule id.") var schedule: UInt64?
    @Option(help: "Escalation policy id (every level).") var policy: UInt64?
    @Option(help: "RFC 3339 instant (default: now).") var at = "now"

    func run() async throws {
        guard (schedule == nil) != (policy == nil) else { throw CLIError(code: CLIExit.usage, message: "give exactly one of --schedule and --policy") }
        let instant = try CLITime.parse(at)
        let reply: WhoIsOnCallReply = try await client.call(
            Admin.WhoIsOnCall, WhoIsOnCallRequest(scheduleID: schedule ?? 0, policyID: policy ?? 0, atMs: instant))
        let users: UserListMessage = try await client.call(People.ListUsers, Empty())
        let names = Dictionary(users.users.map { ($0.id, $0.name) }, uniquingKeysWith: { first, _ in first })
        let describe = { (ids: [UInt64]) in ids.isEmpty ? "nobody" : ids.map { "\(names[$0] ?? "?") (\($0))" }.joined(separator: ", ") }
        client.output(reply) {
            if schedule != nil {
                print("on call at \(CLITime.text(instant)): \(describe(reply.userIDs))")
            } else {
                var table = Table("LEVEL", "ON CALL")
                for level in reply.levels { table.add("\(level.level)", describe(level.userIDs)) }
                table.print()
            }
        }
    }
}

struct PolicyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy", abstract: "Escalation policies: list, show, create, delete.",
        subcommands: [List.self, Show.self, Create.self, Delete.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every escalation policy.")
        @OptionGroup var client: ClientOptions
        func run() async throws {
            let reply: PolicyListMessage = try await client.call(Admin.ListEscalationPolicies, Empty())
            client.output(reply.policies) {
                var table = Table("ID", "NAME", "LEVELS", "LOOPS")
                for policy in reply.policies { table.add("\(policy.id)", policy.name, "\(policy.levels.count)", "\(policy.numLoops)") }
                table.print(empty: "no escalation policies")
            }
        }
    }

    static func describe(_ target: PolicyTargetMessage) -> String {
        target.userID != 0 ? "user \(target.userID)" : "schedule \(target.scheduleID)"
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One policy's levels.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "Policy id.") var id: UInt64
        func run() async throws {
            let policy: PolicyMessage = try await client.call(Admin.GetEscalationPolicy, AdminIDRequest(id: id))
            client.output(policy) {
                print("escalation policy \(policy.id): \(policy.name), repeats \(policy.numLoops) time(s)")
                var table = Table("LEVEL", "AFTER", "TARGETS")
                for (index, level) in policy.levels.enumerated() {
                    table.add("\(index + 1)", "\(level.escalationDelaySeconds) s", level.targets.map(PolicyCommand.describe).joined(separator: ", "))
                }
                table.print()
            }
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a policy: one --level per level, e.g. --level 30m:user=1,user=2,schedule=3.")
        @OptionGroup var client: ClientOptions
        @Option var name: String
        @Option(help: "DELAY:TARGET,… where TARGET is user=ID or schedule=ID; DELAY is how long before the next level.")
        var level: [String] = []
        @Option(help: "How many times the path repeats after the last level (0–9).") var loops: UInt32 = 0
        func run() async throws {
            let levels = try level.map { text -> PolicyLevelMessage in
                let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
                guard parts.count == 2 else { throw CLIError(code: CLIExit.usage, message: "--level \(text): expected DELAY:user=ID,schedule=ID") }
                let targets = try parts[1].split(separator: ",").map { target -> PolicyTargetMessage in
                    let pair = target.split(separator: "=").map(String.init)
                    guard pair.count == 2, let id = UInt64(pair[1]), ["user", "schedule"].contains(pair[0]) else {
                        throw CLIError(code: CLIExit.usage, message: "--level \(text): \"\(target)\" is not user=ID or schedule=ID")
                    }
                    return pair[0] == "user" ? PolicyTargetMessage(userID: id) : PolicyTargetMessage(scheduleID: id)
                }
                return PolicyLevelMessage(escalationDelaySeconds: try CLITime.duration(parts[0]), targets: targets)
            }
            let policy: PolicyMessage = try await client.call(Admin.CreateEscalationPolicy, PolicyMessage(name: name, levels: levels, numLoops: loops))
            client.output(policy) { print("created escalation policy \(policy.id) (\(policy.name))") }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a policy (refused while a service uses it).")
        @OptionGroup var client: ClientOptions
        @Argument(help: "Policy id.") var id: UInt64
        func run() async throws {
            let _: Empty = try await client.call(Admin.DeleteEscalationPolicy, AdminIDRequest(id: id))
            client.output(["deleted": id]) { print("deleted escalation policy \(id)") }
        }
    }
}

struct ServiceAdminCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "service", abstract: "Services: list, show, create, update, delete; their change events and audit trail.",
        subcommands: [List.self, Show.self, Create.self, Update.self, Delete.self, Changes.self, Audit.self])

    struct Audit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Events the service's rules suppressed and its maintenance windows dropped, newest first.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "Service id or name.") var service: String
        @Option(help: "How many (default 20, at most 500).") var limit: UInt32 = 20
        func run() async throws {
            let id = try await serviceID(service, client: client)
            let reply: ListServiceAuditReply = try await client.call(Admin.ListServiceAudit, ListServiceAuditRequest(serviceID: id, limit: limit))
            if client.json { return print(JSONOut.text(reply)) }
            var table = Table("AT", "WHAT", "WHY", "EVENT")
            for entry in reply.entries { table.add(CLITime.text(entry.atMs), entry.kind, entry.reason, String(entry.eventJson.prefix(200))) }
            table.print(empty: "nothing suppressed or dropped")
        }
    }

    struct Changes: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A service's change events (deploys, config changes), newest first.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "Service id.") var id: UInt64
        @Option(help: "How many (default 20, at most 500).") var limit: UInt32 = 20
        func run() async throws {
            let reply: ListChangesReply = try await client.call(Admin.ListChanges, ListChangesRequest(serviceID: id, limit: limit))
            if client.json { return print(JSONOut.text(reply)) }
            var table = Table("AT", "SOURCE", "SUMMARY", "LINKS")
            for change in reply.changes {
                table.add(CLITime.text(change.atMs), change.source, change.summary, change.links.map(\.href).joined(separator: " "))
            }
            table.print(empty: "no change events")
        }
    }

    struct Settings: ParsableArguments {
        @Option(help: "Escalation policy id.") var policy: UInt64?
        @Option(help: "Ack timeout: 30m, 0 = off (default 30m).") var ackTimeout: String?
        @Option(help: "Auto-resolve after: 4h, 0 = off (default 4h).") var autoResolve: String?
        @Option(help: "high, low or severity (critical/error → high).") var urgencyRule: String?
        @Option(help: "Events per minute per routing key, 0 = no limit (default 120).") var rate: UInt32?
        @Option(help: "Burst of the rate limit (default 60).") var burst: UInt32?
        @Option(help: "live, or shadow: everything but delivery, each page recorded for `klaxon shadow report` (default live).") var mode: String?

        func apply(to service: inout ServiceMessage) throws {
            if let mode { service.mode = mode }
            if let policy { service.escalationPolicyID = policy }
            if let ackTimeout { service.ackTimeoutSeconds = try CLITime.duration(ackTimeout) }
            if let autoResolve { service.autoResolveTimeoutSeconds = try CLITime.duration(autoResolve) }
            if let urgencyRule { service.urgencyRule = urgencyRule }
            if let rate { service.eventsPerMinute = rate }
            if let burst { service.eventsBurst = burst }
        }
    }

    static func show(_ service: ServiceMessage) {
        print("""
            service \(service.id): \(service.name)
              escalation policy \(service.escalationPolicyID), urgency \(service.urgencyRule), ack timeout \(service.ackTimeoutSeconds) s, \
            auto-resolve \(service.autoResolveTimeoutSeconds) s, rate limit \(service.eventsPerMinute)/min burst \(service.eventsBurst)
            """)
        if service.mode == "shadow" { print("  shadow mode: pages are recorded, not delivered (klaxon shadow report)") }
        var table = Table("ROUTING KEY", "NAME", "CREATED")
        for key in service.routingKeys { table.add(key.key, key.name, CLITime.text(key.createdAtMs)) }
        table.print(empty: "no routing keys")
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every service.")
        @OptionGroup var client: ClientOptions
        func run() async throws {
            let reply: ServiceListMessage = try await client.call(Admin.ListServices, Empty())
            client.output(reply.services) {
                var table = Table("ID", "NAME", "MODE", "POLICY", "URGENCY", "ACK TIMEOUT", "AUTO-RESOLVE", "KEYS")
                for service in reply.services {
                    table.add(
                        "\(service.id)", service.name, service.mode.isEmpty ? "live" : service.mode, "\(service.escalationPolicyID)", service.urgencyRule, "\(service.ackTimeoutSeconds) s",
                        "\(service.autoResolveTimeoutSeconds) s", service.routingKeys.map(\.name).joined(separator: ","))
                }
                table.print(empty: "no services")
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One service with its routing keys (masked).")
        @OptionGroup var client: ClientOptions
        @Argument(help: "Service id.") var id: UInt64
        func run() async throws {
            let service: ServiceMessage = try await client.call(Admin.GetService, AdminIDRequest(id: id))
            client.output(service) { ServiceAdminCommand.show(service) }
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a service; prints its routing key in full, this once.")
        @OptionGroup var client: ClientOptions
        @Option var name: String
        @OptionGroup var settings: Settings
        func run() async throws {
            var service = ServiceMessage(
                name: name, ackTimeoutSeconds: 1800, autoResolveTimeoutSeconds: 14_400, urgencyRule: "high", eventsPerMinute: 120, eventsBurst: 60)
            try settings.apply(to: &service)
            let created: ServiceMessage = try await client.call(Admin.CreateService, service)
            client.output(created) {
                print("created service \(created.id) (\(created.name)); routing key, shown this once:")
                for key in created.routingKeys { print("  \(key.name): \(key.key)") }
            }
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Change a service's settings (the ones given).")
        @OptionGroup var client: ClientOptions
        @Argument(help: "Service id.") var id: UInt64
        @Option var name: String?
        @OptionGroup var settings: Settings
        func run() async throws {
            var service: ServiceMessage = try await client.call(Admin.GetService, AdminIDRequest(id: id))
            service.routingKeys = []
            if let name { service.name = name }
            try settings.apply(to: &service)
            let updated: ServiceMessage = try await client.call(Admin.UpdateService, service)
            client.output(updated) { ServiceAdminCommand.show(updated) }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a service (refused while it has open incidents); its history stays.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "Service id.") var id: UInt64
        func run() async throws {
            let _: Empty = try await client.call(Admin.DeleteService, AdminIDRequest(id: id))
            client.output(["deleted": id]) { print("deleted service \(id)") }
        }
    }
}

struct RoutingKeyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "routing-key", abstract: "A service's routing keys: create (rotation), delete.", subcommands: [Create.self, Delete.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a routing key to a service (shown in full once); the others keep working until deleted.")
        @OptionGroup var client: ClientOptions
        @Option(help: "Service id.") var service: UInt64
        @Option(help: "Its name within the service, e.g. prometheus-2027.") var name: String
        func run() async throws {
            let key: RoutingKey = try await client.call(Admin.CreateRoutingKey, CreateRoutingKeyRequest(serviceID: service, name: name))
            client.output(key) { print("routing key \(key.name) of service \(service), shown this once:\n\(key.key)") }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a routing key: events sent with it are refused from then on.")
        @OptionGroup var client: ClientOptions
        @Option(help: "Service id.") var service: UInt64
        @Option(help: "The key's name.") var name: String
        func run() async throws {
            let _: Empty = try await client.call(Admin.DeleteRoutingKey, DeleteRoutingKeyRequest(serviceID: service, name: name))
            client.output(["deleted": name]) { print("deleted routing key \(name) of service \(service)") }
        }
    }
}

struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token", abstract: "API tokens: create, list, revoke, whoami.",
        subcommands: [Create.self, List.self, Revoke.self, WhoAmI.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a token (shown in full once; only its hash is kept).")
        @OptionGroup var client: ClientOptions
        @Option(help: "What it is for, e.g. alice-laptop.") var name: String
        @Option(help: "admin (everything), responder (incident actions and reads, as its user) or observer (reads).") var role: String
        @Option(help: "The user it acts as (required for responder).") var user: UInt64 = 0
        func run() async throws {
            let token: ApiToken = try await client.call(Admin.CreateToken, ApiToken(name: name, role: role, userID: user))
            client.output(token) { print("token \(token.id) (\(token.role)), shown this once:\n\(token.token)") }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every token (never the secret: its first characters).")
        @OptionGroup var client: ClientOptions
        func run() async throws {
            let reply: ApiTokenList = try await client.call(Admin.ListTokens, Empty())
            client.output(reply.tokens) {
                var table = Table("ID", "NAME", "ROLE", "USER", "PREFIX", "CREATED", "REVOKED")
                for token in reply.tokens {
                    table.add(
                        "\(token.id)", token.name, token.role, token.userID == 0 ? "-" : "\(token.userID)", token.prefix,
                        CLITime.text(token.createdAtMs), CLITime.text(token.revokedAtMs))
                }
                table.print(empty: "no tokens")
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a token: calls with it are refused from then on.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "Token id.") var id: UInt64
        func run() async throws {
            let token: ApiToken = try await client.call(Admin.RevokeToken, AdminIDRequest(id: id))
            client.output(token) { print("revoked token \(token.id) (\(token.name))") }
        }
    }

    struct WhoAmI: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "whoami", abstract: "The token in use: its name, role and user.")
        @OptionGroup var client: ClientOptions
        func run() async throws {
            let token: ApiToken = try await client.call(Admin.WhoAmI, Empty())
            let source = try client.resolved().tokenSource
            client.output(token) {
                print("token \(token.id) \"\(token.name)\", role \(token.role)\(token.userID == 0 ? "" : ", user \(token.userID)") (from \(source))")
            }
        }
    }
}
