import ArgumentParser
import Foundation
#if canImport(Glibc)
import Glibc
#endif

// Long-running commands shut down gracefully on SIGTERM and SIGINT (ServiceLifecycle). On Linux,
// Dispatch only sees those signals when no thread takes them with the default action, so they
// are blocked here, on the main thread before any other thread exists, and every thread
// inherits that. Without it `klaxon serve` died with status 143 on SIGTERM, mid-flight.
// Short commands keep the default: Ctrl-C stops them at once.
#if canImport(Glibc)
if let command = CommandLine.arguments.dropFirst().first, ["serve", "dev"].contains(command) {
    var signals = sigset_t()
    sigemptyset(&signals)
    sigaddset(&signals, SIGTERM)
    sigaddset(&signals, SIGINT)
    sigaddset(&signals, SIGHUP)  // TLS certificate reload, not the end of the process
    pthread_sigmask(SIG_BLOCK, &signals, nil)
}
#endif
await Entry.run()

enum Entry {
    /// What `AsyncParsableCommand.main()` does, in an ordinary async function (top-level code
    /// picks the synchronous `run()` overload, which only prints help).
    static func run() async {
        do {
            var command = try Klaxon.parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let error as CLIError {
            FileHandle.standardError.write(Data("error: \(error.message)\n".utf8))
            exit(error.code)
        } catch {
            // A help request (`klaxon help incident`, `--help`) is ArgumentParser's own: not a typo.
            if Klaxon.exitCode(for: error) != .success, let suggestion = Suggestions.forArguments(Array(CommandLine.arguments.dropFirst())) {
                FileHandle.standardError.write(Data("error: \(suggestion)\n".utf8))
                exit(CLIExit.usage)
            }
            Klaxon.exit(withError: error)
        }
    }
}

/// "Did you mean" for a mistyped subcommand: the closest name by edit distance.
enum Suggestions {
    static func forArguments(_ arguments: [String]) -> String? {
        var command: ParsableCommand.Type = Klaxon.self
        var path = ["klaxon"]
        for argument in arguments where !argument.hasPrefix("-") {
            let subcommands = command.configuration.subcommands
            guard !subcommands.isEmpty else { return nil }
            let names = subcommands.map { $0._commandName }
            if let next = subcommands.first(where: { $0._commandName == argument }) {
                command = next
                path.append(argument)
                continue
            }
            let best = names.map { ($0, distance($0, argument)) }.min { $0.1 < $1.1 }
            guard let (name, score) = best, score <= max(2, argument.count / 3) else {
                return "\(path.joined(separator: " ")) has no command \"\(argument)\"; it has: \(names.joined(separator: ", "))"
            }
            return "\(path.joined(separator: " ")) has no command \"\(argument)\" — did you mean \"\(name)\"? (\(path.joined(separator: " ")) \(name) --help)"
        }
        return nil
    }

    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        var previous = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...max(b.count, 1) where !b.isEmpty {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return a.isEmpty ? b.count : previous[b.count]
    }
}
