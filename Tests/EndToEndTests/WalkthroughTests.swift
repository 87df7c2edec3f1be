import Foundation
import KlaxonTestSupport
import NIOConcurrencyHelpers
import Testing

/// README's five-minute walkthrough, from the README itself: every ```` ```sh walkthrough ````
/// block runs, in order, in one bash (an `alias` or `export` carries on, as in a terminal)
/// against `klaxon dev` on its default ports, in a folder laid out like a checkout after
/// `scripts/run` (`.build/debug/klaxon`, `examples/klaxon.yaml`, `.klaxon/cli.yaml`). A command
/// ending in `# → TEXT` must print TEXT as its first line (stdout, else stderr; `…` matches
/// anything) and exit 0, or the status its `(exit N)` names; every other command must exit 0.
/// The lines of ```` ```text walkthrough-pages ```` blocks must appear in `klaxon dev`'s output.
/// So README and behaviour cannot drift apart. Runs alone after the parallel suite (the ports
/// are the README's).
@Suite(.serialized) struct WalkthroughTests {
    struct Step {
        var line: Int
        var command: String
        var expected: String?
        var exit: Int32
    }

    static func parse(_ readme: String) -> (steps: [Step], pages: [String]) {
        var steps: [Step] = [], pages: [String] = []
        var block: String?
        for (index, raw) in readme.components(separatedBy: "\n").enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if block == nil {
                if line == "```sh walkthrough" { block = "sh" } else if line == "```text walkthrough-pages" { block = "pages" }
                continue
            }
            if line == "```" { block = nil; continue }
            guard !line.isEmpty else { continue }
            if block == "pages" { pages.append(line); continue }
            var command = line, expected: String?, exit: Int32 = 0
            if let arrow = line.range(of: "# → ") {
                command = String(line[..<arrow.lowerBound]).trimmingCharacters(in: .whitespaces)
                var text = String(line[arrow.upperBound...])
                if let range = text.range(of: #" \(exit (\d+)\)$"#, options: .regularExpression) {
                    exit = Int32(text[range].filter(\.isNumber))!
                    text.removeSubrange(range)
                }
                expected = text
            } else if let comment = line.range(of: " # ") {
                command = String(line[..<comment.lowerBound]).trimmingCharacters(in: .whitespaces)
            }
            steps.append(Step(line: index + 1, command: command, expected: expected, exit: exit))
        }
        return (steps, pages)
    }

    /// `…` matches any text; everything else literally, the whole line.
    static func matches(_ text: String, _ pattern: String) -> Bool {
        let parts = pattern.components(separatedBy: "…")
        guard parts.count > 1 else { return text == pattern }
        guard text.hasPrefix(parts[0]) else { return false }
        var rest = text.dropFirst(parts[0].count)
        for part in parts.dropFirst().dropLast() {
            guard let found = rest.range(of: part) else { return false }
            rest = rest[found.upperBound...]
        }
        return rest.hasSuffix(parts.last!)
    }

    @Test func theReadmeWalkthroughAsPrinted() async throws {
        let readme = try String(contentsOf: KlaxonCLI.root.appendingPathComponent("README.md"), encoding: .utf8)
        let (steps, pages) = Self.parse(readme)
        try #require(steps.count >= 15 && pages.count == 2, "README lost its walkthrough blocks: \(steps.count) commands, \(pages.count) pages")
        try #require(FileManager.default.isExecutableFile(atPath: KlaxonCLI.binary), "build the CLI first: swift build --build-tests")

        // A checkout after scripts/run: the binary, the example file, the CLI config.
        let db = try await TestDatabase.create()
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("klaxon-walkthrough-\(UUID().uuidString)")
        let fm = FileManager.default
        try fm.createDirectory(at: work.appendingPathComponent(".build/debug"), withIntermediateDirectories: true)
        try fm.createDirectory(at: work.appendingPathComponent("examples"), withIntermediateDirectories: true)
        try fm.createDirectory(at: work.appendingPathComponent(".klaxon"), withIntermediateDirectories: true)
        try fm.createSymbolicLink(atPath: work.appendingPathComponent(".build/debug/klaxon").path, withDestinationPath: KlaxonCLI.binary)
        try fm.copyItem(at: KlaxonCLI.root.appendingPathComponent("examples/klaxon.yaml"), to: work.appendingPathComponent("examples/klaxon.yaml"))
        let token = "klx_walkthrough" + UUID().uuidString.replacingOccurrences(of: "-", with: "")
        try "address: 127.0.0.1:7402\ntoken: \(token)\n".write(to: work.appendingPathComponent(".klaxon/cli.yaml"), atomically: true, encoding: .utf8)
        var environment = ProcessInfo.processInfo.environment
        for key in ["KLAXON_TOKEN", "KLAXON_ADDRESS", "KLAXON_CLI_CONFIG"] { environment[key] = nil }
        environment["HOME"] = work.path

        let dev = ChildProcess()
        dev.executableURL = URL(fileURLWithPath: KlaxonCLI.binary)
        dev.arguments = ["dev"]
        dev.currentDirectoryURL = work
        var devEnvironment = environment
        devEnvironment["KLAXON_DATABASE_URL"] = db.url
        devEnvironment["KLAXON_BOOTSTRAP_TOKEN"] = token
        dev.environment = devEnvironment
        let output = Pipe()
        dev.standardOutput = output
        dev.standardError = output  // its logs too: a port already taken says so
        let printed = NIOLockedValueBox("")
        try dev.run()
        let reader = Thread {
            while true {
                let data = output.fileHandleForReading.readSomeRetrying() ?? Data()
                if data.isEmpty { return }
                printed.withLockedValue { $0 += String(decoding: data, as: UTF8.self) }
            }
        }
        reader.start()
        defer {
            if dev.isRunning { dev.terminate() }
            try? fm.removeItem(at: work)
        }
        let up = await eventually(timeout: .seconds(60)) { printed.withLockedValue { $0.contains("Klaxon is up") } || !dev.isRunning }
        try #require(up && dev.isRunning, "klaxon dev did not start (the README's ports 7401–7403, 8401–8403 and 8499 must be free): \(printed.withLockedValue { $0 })")

        // Every command at once, in one bash, right after "Klaxon is up" (which comes when every
        // listener accepts connections).
        let results = work.appendingPathComponent("results")
        try fm.createDirectory(at: results, withIntermediateDirectories: true)
        var script = "shopt -s expand_aliases\ncd \"\(work.path)\"\n"
        for (index, step) in steps.enumerated() {
            script += "{ \(step.command)\n} > \"\(results.path)/\(index).out\" 2> \"\(results.path)/\(index).err\"; echo $? > \"\(results.path)/\(index).rc\"\n"
        }
        let bash = ChildProcess()
        bash.executableURL = URL(fileURLWithPath: "/bin/bash")
        bash.arguments = ["-c", script]
        bash.currentDirectoryURL = work
        bash.environment = environment
        try await offCooperativePool {
            try bash.run()
            bash.waitUntilExit()
        }

        for (index, step) in steps.enumerated() {
            let out = (try? String(contentsOf: results.appendingPathComponent("\(index).out"), encoding: .utf8)) ?? ""
            let err = (try? String(contentsOf: results.appendingPathComponent("\(index).err"), encoding: .utf8)) ?? ""
            let rc = Int32((try? String(contentsOf: results.appendingPathComponent("\(index).rc"), encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? -1
            let first = (out.isEmpty ? err : out).components(separatedBy: "\n").first ?? ""
            #expect(rc == step.exit, "README.md:\(step.line): `\(step.command)` exited \(rc), not \(step.exit)\n\(out)\(err)")
            if let expected = step.expected {
                #expect(Self.matches(first, expected), "README.md:\(step.line): `\(step.command)`\n  README: \(expected)\n  prints: \(first)")
            }
        }
        for page in pages {
            let seen = await eventually(timeout: .seconds(10)) {
                printed.withLockedValue { $0.components(separatedBy: "\n").contains { Self.matches($0, page) } }
            }
            #expect(seen, "README's page line never printed by klaxon dev: \(page)\n\(printed.withLockedValue { $0 })")
        }
        dev.terminate()
        _ = try await offCooperativePool { dev.waitUntilExit() }
        #expect(dev.terminationStatus == 0, "klaxon dev ended with \(dev.terminationStatus) on SIGTERM")
        await db.drop()
    }
}
