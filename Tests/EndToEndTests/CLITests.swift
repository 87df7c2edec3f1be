import Foundation
import KlaxonTestSupport
import Shared
import Testing

/// Every operator command of the CLI against the real services and PostgreSQL (issue 12, point 4).
@Suite struct CLITests {
    static func id(after marker: String, in text: String) -> String? {
        guard let range = text.range(of: marker) else { return nil }
        return String(text[range.upperBound...].prefix { $0.isNumber })
    }

    @Test func everyOperatorCommandAgainstTheRealServices() async throws {
        let pipeline = try await Pipeline()
        let cli = try KlaxonCLI(address: "127.0.0.1:\(pipeline.config.assignmentListen.port)", token: pipeline.adminToken)
        let hooks = "\(pipeline.sink.url)/hooks"

        let version = try await cli("--version")
        #expect(version.status == 0 && version.out.hasPrefix("klaxon "))

        // People.
        let user = try await cli("user", "create", "--name", "Carol", "--email", "carol@example.com", "--time-zone", "Europe/Paris")
        #expect(user.status == 0, "\(user.err)")
        let carol = try #require(Self.id(after: "created user ", in: user.out))
        let contact = try await cli("contact", "add", "--user", carol, "--type", "webhook", "--to", hooks, "--label", "pager")
        let pager = try #require(Self.id(after: "created contact method ", in: contact.out))
        let rule = try await cli("rule", "add", "--user", carol, "--contact", pager, "--delay", "0", "--urgency", "high")
        #expect(rule.status == 0 && rule.out.hasPrefix("created notification rule "))
        let users = try await cli("user", "list")
        #expect(users.lines.first?.hasPrefix("ID  NAME") == true)
        #expect(users.lines.contains { $0.contains("Carol") && $0.contains("carol@example.com") && $0.contains("Europe/Paris") })
        let usersJSON = try await cli("user", "list", "--json")
        let parsed = try JSONSerialization.jsonObject(with: Data(usersJSON.out.utf8)) as? [[String: Any]]
        #expect(parsed?.first?["email"] as? String == "carol@example.com")
        let shown = try await cli("user", "show", carol)
        #expect(shown.out.contains("pager") && shown.out.contains(hooks) && shown.out.contains("0 s"))

        // Schedules, on call, policies.
        let schedule = try await cli(
            "schedule", "create", "--name", "Primary", "--users", carol, "--turn", "7d", "--start", "2026-01-05T09:00:00Z", "--time-zone", "UTC")
        let primary = try #require(Self.id(after: "created schedule ", in: schedule.out), "\(schedule.err)")
        #expect(try await cli("schedule", "list").out.contains("Primary"))
        #expect(try await cli("schedule", "show", primary).out.contains("users \(carol), turns of 604800 s"))
        let onCall = try await cli("oncall", "--schedule", primary, "--at", "2026-01-06T00:00:00Z")
        #expect(onCall.out == "on call at 2026-01-06T00:00:00Z: Carol (\(carol))\n")
        let policy = try await cli("policy", "create", "--name", "Web policy", "--level", "5m:user=\(carol)", "--level", "10m:schedule=\(primary)", "--loops", "1")
        let webPolicy = try #require(Self.id(after: "created escalation policy ", in: policy.out), "\(policy.err)")
        #expect(try await cli("policy", "show", webPolicy).out.contains("schedule \(primary)"))
        #expect(try await cli("policy", "list").out.contains("Web policy"))
        let levels = try await cli("oncall", "--policy", webPolicy)
        #expect(levels.lines.count == 3 && levels.lines[1].contains("Carol") && levels.lines[2].contains("Carol"))

        // Services and routing keys: the key in full once, masked afterwards.
        let service = try await cli("service", "create", "--name", "Web", "--policy", webPolicy, "--ack-timeout", "5m", "--rate", "0")
        let web = try #require(Self.id(after: "created service ", in: service.out), "\(service.err)")
        let firstKey = try #require(service.lines.last?.split(separator: " ").last.map(String.init))
        #expect(firstKey.count == 32)
        let masked = try await cli("service", "show", web)
        #expect(masked.out.contains(Secrets.mask(firstKey)) && !masked.out.contains(firstKey))
        #expect(masked.out.contains("ack timeout 300 s"))
        #expect(try await cli("service", "update", web, "--urgency-rule", "severity").out.contains("urgency severity"))
        #expect(try await cli("service", "list").out.contains("Web"))
        let rotated = try await cli("routing-key", "create", "--service", web, "--name", "second")
        let secondKey = try #require(rotated.lines.last)
        #expect(secondKey.count == 32 && secondKey != firstKey)
        #expect(try await cli("routing-key", "delete", "--service", web, "--name", "default").status == 0)

        // An incident, and every action on it.
        let event = try await cli("send-event", "--address", "127.0.0.1:\(pipeline.config.ingestListen.port)", "--routing-key", secondKey, "--dedup-key", "cli-1", "--summary", "CLI test")
        let incident = try #require(Self.id(after: "CREATED incident ", in: event.out), "\(event.out)\(event.err)")
        // send-event fails like every other command: stderr, the CLI's exit codes, its own usage.
        let ingestAddress = "127.0.0.1:\(pipeline.config.ingestListen.port)"
        let short = try await cli("send-event", "--address", ingestAddress, "--routing-key", "short")
        #expect(short.status == 3 && short.out.isEmpty && short.err.hasPrefix("error: INVALID_ARGUMENT"), "\(short.out)\(short.err)")
        let down = try await cli("send-event", "--address", "127.0.0.1:1", "--routing-key", secondKey)
        #expect(down.status == 4 && down.out.isEmpty)
        #expect(down.err == "error: cannot reach Klaxon at 127.0.0.1:1 — is it running? (scripts/run)\n")
        let badAction = try await cli("send-event", "--routing-key", secondKey, "--action", "boom")
        #expect(badAction.status == 64 && badAction.out.isEmpty && badAction.err.contains("--action must be trigger, acknowledge or resolve"))
        #expect(badAction.err.contains("Usage: klaxon send-event"), "\(badAction.err)")
        #expect(try await cli("incident", "list").out.contains("CLI test"))
        #expect(try await cli("incident", "show", incident).out.contains("CLI test"))
        #expect(try await cli("incident", "ack", incident, "--user", carol).out.hasPrefix("acknowledged"))
        #expect(try await cli("incident", "snooze", incident, "--for", "30m", "--user", carol).out.hasPrefix("snoozed until"))
        // An admin token without a user of its own: the refusal names the option to use.
        let noActor = try await cli("incident", "ack", incident)
        #expect(noActor.status == 3 && noActor.err.contains("user_id: is required") && noActor.err.contains("--user"), "\(noActor.err)")
        #expect(try await cli("incident", "note", incident, "--user", carol, "looking at https://status.example/db").out == "noted\n")
        #expect(try await cli("incident", "reassign", incident, "--users", carol, "--user", carol).out.hasPrefix("reassigned"))
        #expect(try await cli("incident", "escalate", incident, "--level", "2", "--user", carol).out.hasPrefix("escalated to level 2"))
        #expect(try await cli("incident", "resolve", incident, "--user", carol, "--reason", "fixed").out == "resolved\n")
        let json = try await cli("incident", "timeline", incident, "--format", "json")
        #expect(json.out.contains("https://status.example/db") && !json.out.contains("\\/"), "JSON with escaped slashes: \(json.out)")
        let timeline = try await cli("incident", "timeline", incident)
        for type in ["trigger", "acknowledge", "snooze", "note", "reassign", "escalate", "resolve"] {
            #expect(timeline.out.contains(" \(type) "), "timeline lacks \(type)")
        }

        // Tokens: a responder token acts as its user and may not administer.
        let created = try await cli("token", "create", "--name", "carol laptop", "--role", "responder", "--user", carol)
        let responderToken = try #require(created.lines.last)
        #expect(responderToken.hasPrefix("klx_"))
        let asCarol = try KlaxonCLI(address: cli.address, token: responderToken)
        #expect(try await asCarol("token", "whoami").out.contains("role responder, user \(carol)"))
        let forbidden = try await asCarol("user", "create", "--name", "Eve", "--email", "eve@example.com")
        #expect(forbidden.status == 5 && forbidden.err.contains("not allowed: role responder may not call klaxon.notifier.v1.People/CreateUser"))
        let tokens = try await cli("token", "list")
        #expect(tokens.out.contains("carol laptop") && !tokens.out.contains(responderToken))
        let tokenID = try #require(tokens.lines.first { $0.contains("carol laptop") }?.split(separator: " ").first.map(String.init))
        #expect(try await cli("token", "revoke", tokenID).status == 0)
        #expect(try await asCarol("token", "whoami").status == 5)

        // Deleting.
        #expect(try await cli("service", "delete", web).status == 0)
        #expect(try await cli("policy", "delete", webPolicy).status == 0)
        #expect(try await cli("schedule", "delete", primary).status == 0)
        let ruleID = try #require(Self.id(after: "RULE  CONTACT  AFTER  URGENCY\n", in: try await cli("user", "show", carol).out))
        #expect(try await cli("rule", "delete", ruleID).status == 0)
        #expect(try await cli("contact", "delete", pager).status == 0)
        let kept = try await cli("user", "delete", carol)  // she has incident history
        #expect(kept.status == 3 && kept.err.contains("kept for postmortems"))
        let dan = try #require(Self.id(after: "created user ", in: try await cli("user", "create", "--name", "Dan", "--email", "dan@example.com").out))
        #expect(try await cli("user", "delete", dan).out == "deleted user \(dan)\n")

        // Errors: on stderr, with their exit codes.
        let notFound = try await cli("incident", "show", "999")
        #expect(notFound.status == 3 && notFound.err.hasPrefix("error: NOT_FOUND") && notFound.out.isEmpty)
        let unreachable = try await cli("incident", "list", "--address", "127.0.0.1:1")
        #expect(unreachable.status == 4)
        #expect(unreachable.err == "error: cannot reach Klaxon at 127.0.0.1:1 — is it running? (scripts/run)\n")
        let noToken = try KlaxonCLI(address: cli.address, token: nil)
        let anonymous = try await noToken("incident", "list")
        #expect(anonymous.status == 5 && anonymous.err.contains("set KLAXON_TOKEN"))
        // Without a token the message names the file to create and where the first admin token comes from.
        let home = try await noToken("incident", "list", environment: ["KLAXON_CLI_CONFIG": ""])
        #expect(home.err.contains("create ~/.config/klaxon/cli.yaml (mode 600)") && home.err.contains("KLAXON_BOOTSTRAP_TOKEN"), "\(home.err)")
        // A wrong token says where it came from.
        let wrong = try await noToken("incident", "list", environment: ["KLAXON_TOKEN": "klx_wrong"])
        #expect(wrong.status == 5 && wrong.err.contains("(the token from $KLAXON_TOKEN)"), "\(wrong.err)")
        // The address and token from the CLI config file when neither flag nor environment gives them.
        let fileCLI = try KlaxonCLI(address: "", token: nil)
        let config = try fileCLI.write("cli.yaml", "address: \(cli.address)\ntoken: \(pipeline.adminToken)\n")
        let fromFile = try await fileCLI("token", "whoami", environment: ["KLAXON_ADDRESS": "", "KLAXON_CLI_CONFIG": config])
        #expect(fromFile.status == 0 && fromFile.out.contains("\"test admin\", role admin"), "\(fromFile.err)")
        #expect(fromFile.out.hasSuffix("(from \(config))\n"), "whoami names the file it used: \(fromFile.out)")
        // ~/.config/klaxon/cli.yaml from any folder (HOME is the test's folder; no explicit file).
        let userConfig = fileCLI.folder.appendingPathComponent(".config/klaxon")
        try FileManager.default.createDirectory(at: userConfig, withIntermediateDirectories: true)
        try "address: \(cli.address)\ntoken: \(pipeline.adminToken)\n".write(
            to: userConfig.appendingPathComponent("cli.yaml"), atomically: true, encoding: .utf8)
        let fromHome = try await fileCLI("token", "whoami", environment: ["KLAXON_ADDRESS": "", "KLAXON_CLI_CONFIG": ""])
        #expect(fromHome.status == 0 && fromHome.out.contains("(from \(userConfig.path)/cli.yaml)"), "\(fromHome.out)\(fromHome.err)")
        // `klaxon help <command>`, as `klaxon --help` says: the command's own help, exit 0.
        let help = try await cli("help", "incident")
        let ownHelp = try await cli("incident", "--help")
        #expect(help.status == 0 && ownHelp.status == 0 && help.err.isEmpty, "\(help.err)")
        #expect(help.out == ownHelp.out && help.out.contains("USAGE: klaxon incident"), "\(help.out)")
        let nested = try await cli("help", "incident", "ack")
        let nestedOwn = try await cli("incident", "ack", "--help")
        #expect(nested.status == 0 && nested.out == nestedOwn.out && nested.out.contains("USAGE: klaxon incident ack"))
        let typo = try await cli("inciden", "list")
        #expect(typo.status == 64 && typo.err.contains("did you mean \"incident\""))
        let typo2 = try await cli("incident", "lst")
        #expect(typo2.status == 64 && typo2.err.contains("did you mean \"list\""))
        let invalid = try await cli("service", "create", "--name", "", "--policy", "1")
        #expect(invalid.status == 3 && invalid.err.contains("name: must be 1–255 characters"))
        await pipeline.shutdown()
    }
}
