import ArgumentParser
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
        } catch {
            Klaxon.exit(withError: error)
        }
    }
}
