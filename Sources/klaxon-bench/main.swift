import ArgumentParser
import Foundation

/// `klaxon-bench`: the benchmarks and the load generator, kept out of the product binary.
/// `scripts/bench` and `scripts/bench-e2e` build and run it; it starts `klaxon serve` (the
/// `klaxon` binary beside it) where a benchmark measures separate processes.
struct KlaxonBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "klaxon-bench",
        abstract: "Klaxon's benchmarks: Ingest throughput and the pipeline end to end.",
        subcommands: [BenchIngestCommand.self, BenchE2ECommand.self, BenchPageBodyCommand.self])

    /// The product binary the benchmarks start: `klaxon` beside this one.
    static var productBinary: URL {
        URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent("klaxon")
    }
}

await BenchEntry.run()

enum BenchEntry {
    /// What `AsyncParsableCommand.main()` does, in an ordinary async function (top-level code
    /// picks the synchronous `run()` overload, which only prints help).
    static func run() async {
        do {
            var command = try KlaxonBench.parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            KlaxonBench.exit(withError: error)
        }
    }
}
