import Foundation
import KlaxonTestSupport
import Shared
import Testing

/// `klaxon apply -f` and `klaxon export` (issue 12, point 2): plan, dry run, idempotence, round
/// trip, all-or-nothing, errors with file and line, prune; the example file pages for real.
@Suite struct ConfigurationTests {
    static var example: String {
        get throws { try String(contentsOf: KlaxonCLI.root.appendingPathComponent("examples/klaxon.yaml"), encoding: .utf8) }
    }

    static func counts(_ pipeline: Pipeline) async throws -> [Int64] {
        var out: [Int64] = []
        for table in ["users", "contact_methods", "notification_rules", "schedules", "escalation_policies", "services", "routing_keys"] {
            out.append(try await pipeline.db.scalar("SELECT count(*) FROM \(table)") ?? -1)
        }
        return out
    }

    @Test func planDryRunApplyIdempotenceAndRoundTrip() async throws {
        let pipeline = try await Pipeline()
        let cli = try KlaxonCLI(address: "127.0.0.1:\(pipeline.config.assignmentListen.port)", token: pipeline.adminToken)
        let file = try cli.write("klaxon.yaml", try Self.example.replacingOccurrences(of: "http://127.0.0.1:8499/pages", with: "\(pipeline.sink.url)/pages"))

        // Dry run: the plan, nothing written.
        let dry = try await cli("apply", "-f", file, "--dry-run")
        #expect(dry.status == 0, "\(dry.err)")
        let plan = [
            "+ user alice@example.com (Alice)", "+ contact_method alice@example.com/pager (webhook)",
            "+ notification_rule alice@example.com/pager (after 0 s, high urgency)",
            "+ user bob@example.com (Bob)", "+ contact_method bob@example.com/pager (webhook)",
            "+ notification_rule bob@example.com/pager (after 0 s, high urgency)",
            "+ notification_rule bob@example.com/pager (after 300 s, high urgency)",
            "+ schedule Primary on-call", "+ escalation_policy Demo policy (2 level(s))", "+ service Demo service",
            "+ routing_key Demo service/demo (from the document)",
        ]
        #expect(Array(dry.lines.prefix(plan.count)) == plan)
        #expect(dry.lines.last == "dry run: nothing changed (11 change(s) planned)")
        #expect(try await Self.counts(pipeline) == [0, 0, 0, 0, 0, 0, 0])
        // A dry run draws no ids: the users the apply below makes are the next ones.
        let nextUser = try await pipeline.db.scalar("SELECT coalesce(pg_sequence_last_value('users_id_seq'), 0) + 1") ?? -1
        #expect(try await cli("apply", "-f", file, "--dry-run").status == 0)

        // Apply: the same plan, applied; again: nothing to do.
        let applied = try await cli("apply", "-f", file)
        #expect(Array(applied.lines.prefix(plan.count)) == plan)
        #expect(applied.lines.last == "applied 11 change(s)")
        #expect(try await Self.counts(pipeline) == [2, 2, 3, 1, 1, 1, 1])
        #expect(try await pipeline.db.scalar("SELECT min(id) FROM users") == nextUser, "the dry runs consumed user ids")
        let again = try await cli("apply", "-f", file)
        #expect(again.out == "no changes: Klaxon already matches \(file)\n")

        // The configuration works: the demo key pages Alice and Bob.
        let event: EventResult = try await pipeline.client(.ingest, token: nil).call(
            Ingest.SendEvent, Pipeline.trigger("klaxondemo0000000000000000000000", dedupKey: "yaml"))
        #expect(event.outcome == .created)
        #expect(await pipeline.sink.waitForRequests(2, timeout: .seconds(10)).compactMap(\.webhook).map(\.user.name).sorted() == ["Alice", "Bob"])

        // Two contact methods added by the CLI without a name share the default label "webhook":
        // the export names them apart, and applying it still changes nothing.
        let alice = try #require(try await pipeline.db.scalar("SELECT id FROM users WHERE email = 'alice@example.com'"))
        for _ in 0..<2 {
            #expect(try await cli("contact", "add", "--user", "\(alice)", "--type", "webhook", "--to", "https://hooks.example/alice").status == 0)
        }
        // Export, then apply the export: nothing changes; exporting again gives the same text.
        let exported = try await cli("export")
        #expect(exported.status == 0 && exported.out.contains("name: Demo service") && !exported.out.contains("klaxondemo0000"))
        let exportFile = try cli.write("export.yaml", exported.out)
        #expect(try await cli("apply", "-f", exportFile).out == "no changes: Klaxon already matches \(exportFile)\n")
        let twice = try await cli("export")
        #expect(twice.lines.dropFirst() == exported.lines.dropFirst())  // the first line is the export's time

        // A change shows as ~ and is applied; a key without `key:` is generated and shown once.
        let changed = try cli.write("changed.yaml", try String(contentsOfFile: file, encoding: .utf8)
            .replacingOccurrences(of: "ack_timeout_seconds: 1800", with: "ack_timeout_seconds: 600")
            .replacingOccurrences(of: "        key: klaxondemo0000000000000000000000", with: "        key: klaxondemo0000000000000000000000\n      - name: generated"))
        let change = try await cli("apply", "-f", changed)
        #expect(change.lines.contains("~ service Demo service (ack_timeout_seconds)"))
        #expect(change.lines.contains("+ routing_key Demo service/generated (generated)"))
        let shownKey = try #require(change.lines.last { $0.hasPrefix("routing key generated") }?.split(separator: " ").last.map(String.init))
        #expect(shownKey.count == 32)
        #expect(try await pipeline.db.scalar("SELECT ack_timeout_seconds FROM services") == 600)
        await pipeline.shutdown()
    }

    /// One set of user rules (UserStore) for the People API and `klaxon apply`: the same fields
    /// refused with the same words, and a chat id another user has is ALREADY_EXISTS from both
    /// (apply used to fail on the database's unique constraint).
    @Test func thePeopleAPIAndApplyRefuseTheSameUsersTheSameWay() async throws {
        let pipeline = try await Pipeline(start: [.assignment])
        let cli = try KlaxonCLI(address: "127.0.0.1:\(pipeline.config.assignmentListen.port)", token: pipeline.adminToken)
        let people = pipeline.client(.assignment)
        let longName = String(repeating: "n", count: 256)
        let api = await people.failure(People.CreateUser, UserMessage(
            name: longName, email: "eve@example.com", timeZone: "Mars/Olympus", role: "responder", chatID: "U 1"))
        let apiViolations = try #require(api?.status.violations)
        #expect(apiViolations.map(\.field) == ["name", "time_zone", "chat_id"])
        // The name is checked while reading the file, the rest while applying it: two files.
        let named = try cli.write("eve-name.yaml", "users:\n  - name: \(longName)\n    email: eve@example.com\n")
        let file = try cli.write("eve.yaml", """
            users:
              - name: Eve
                email: eve@example.com
                time_zone: Mars/Olympus
                chat_id: U 1
            """)
        let nameRefused = try await cli("apply", "-f", named)
        let applied = try await cli("apply", "-f", file)
        #expect(nameRefused.status == 3 && applied.status == 3)
        for violation in apiViolations {
            let err = violation.field == "name" ? nameRefused.err : applied.err
            #expect(err.contains("users[0].\(violation.field): \(violation.description)"), "\(err)")
        }
        #expect(try await Self.counts(pipeline) == [0, 0, 0, 0, 0, 0, 0])

        let _: UserMessage = try await people.call(People.CreateUser, UserMessage(name: "Alice", email: "alice@example.com", chatID: "UALICE"))
        let taken = await people.failure(People.CreateUser, UserMessage(name: "Mallory", email: "mallory@example.com", chatID: "UALICE"))
        #expect(taken?.code == .alreadyExists && taken?.message == "another user has the chat id \"UALICE\"")
        let clash = try cli.write("clash.yaml", """
            users:
              - name: Mallory
                email: mallory@example.com
                chat_id: UALICE
            """)
        let refused = try await cli("apply", "-f", clash)
        #expect(refused.status == 3 && refused.err.contains("another user has the chat id \"UALICE\""), "\(refused.err)")
        #expect(try await pipeline.db.scalar("SELECT count(*) FROM users") == 1)
        await people.close()
        await pipeline.shutdown()
    }

    @Test func anErrorInTheMiddleAppliesNothingAndNamesFileLineAndPath() async throws {
        let pipeline = try await Pipeline(start: [.assignment])
        let cli = try KlaxonCLI(address: "127.0.0.1:\(pipeline.config.assignmentListen.port)", token: pipeline.adminToken)
        let bad = try cli.write("bad.yaml", """
            users:
              - name: Alice
                email: alice@example.com
            escalation_policies:
              - name: Team
                levels:
                  - escalation_delay_seconds: 300
                    targets:
                      - user: alice@example.com
            services:
              - name: Checkout
                escalation_policy: Teem
            """)
        let result = try await cli("apply", "-f", bad)
        #expect(result.status == 3)
        #expect(result.err == """
            error: \(bad):12: services[0].escalation_policy: escalation policy "Teem" is neither in the document nor in Klaxon
            nothing was applied

            """)
        #expect(try await Self.counts(pipeline) == [0, 0, 0, 0, 0, 0, 0])  // Alice and Team were rolled back

        // Errors found while reading name every problem, each with its line.
        let typos = try cli.write("typos.yaml", """
            users:
              - name: Bob
                emial: bob@example.com
                role: boss
            services:
              - name: X
                escalation_policy: Team
                ack_timeout_seconds: -5
            """)
        let read = try await cli("apply", "-f", typos)
        #expect(read.status == 3)
        #expect(read.err.hasPrefix("error: \(typos):"))
        let lines = String(read.err.dropFirst("error: ".count)).split(separator: "\n").map(String.init)
        #expect(lines.contains { $0.hasPrefix("\(typos):") && $0.hasSuffix("users[0].email: is required") })
        #expect(lines.contains { $0.hasPrefix("\(typos):3: users[0].emial: unknown field") })
        #expect(lines.contains("\(typos):4: users[0].role: must be admin, responder or observer, got \"boss\""))
        #expect(lines.contains("\(typos):8: services[0].ack_timeout_seconds: must be a whole number ≥ 0"))
        let broken = try cli.write("broken.yaml", "users: [\n  - name: x\n")
        let yaml = try await cli("apply", "-f", broken)
        #expect(yaml.status == 1 && yaml.err.contains("\(broken): not valid YAML"))
        await pipeline.shutdown()
    }

    @Test func pruneDeletesOnlyWhenAskedAndRefusesWhatIsInUse() async throws {
        let pipeline = try await Pipeline(start: [.assignment])
        let cli = try KlaxonCLI(address: "127.0.0.1:\(pipeline.config.assignmentListen.port)", token: pipeline.adminToken)
        let file = try cli.write("klaxon.yaml", try Self.example)
        #expect(try await cli("apply", "-f", file).status == 0)
        // Without Bob's reminder rule and with Carol: kept without --prune, deleted with it.
        let smaller = try cli.write("smaller.yaml", try Self.example
            .replacingOccurrences(of: """
                      - contact_method: pager             # a reminder, skipped if the incident no longer needs Bob
                        start_delay_seconds: 300
                        urgency: high

                """, with: "")
            .replacingOccurrences(of: "schedules:", with: "  - name: Carol\n    email: carol@example.com\n\nschedules:"))
        let kept = try await cli("apply", "-f", smaller)
        #expect(kept.lines == ["+ user carol@example.com (Carol)", "applied 1 change(s)"])
        let pruned = try await cli("apply", "-f", smaller, "--prune", "--dry-run")
        #expect(pruned.lines.count == 2 && pruned.lines[0].hasPrefix("− notification_rule bob@example.com/rule "))
        #expect(pruned.lines[0].hasSuffix("(after 300 s, high urgency)"))
        #expect(try await cli("apply", "-f", smaller, "--prune").lines.last == "applied 1 change(s)")
        #expect(try await pipeline.db.scalar("SELECT count(*) FROM notification_rules") == 2)
        // Pruning a service with an open incident is refused and nothing is applied.
        let service = try #require(try await pipeline.db.scalar("SELECT id FROM services"))
        try await pipeline.db.pool.transaction { connection in
            try connection.query(
                "INSERT INTO incidents (service_id, title, status, urgency, dedup_key, created_at_ms, updated_at_ms) VALUES ($1, 'x', 'triggered', 'high', 'k', 1, 1)",
                [service])
        }
        let onlyPeople = try cli.write("people.yaml", "users:\n  - name: Alice\n    email: alice@example.com\n")
        let refused = try await cli("apply", "-f", onlyPeople, "--prune")
        #expect(refused.status == 3 && refused.err.contains("has open incidents #"))
        #expect(try await Self.counts(pipeline) == [3, 2, 2, 1, 1, 1, 1])
        await pipeline.shutdown()
    }
}
