import KlaxonDomain
import ServiceLifecycle

/// A work loop and the step it runs (see `DueWorkLoop`).
public struct WorkLoop: Sendable {
    public var loop: DueWorkLoop
    public var step: @Sendable (_ now: Millis) async throws -> Millis?

    public init(_ loop: DueWorkLoop, step: @escaping @Sendable (_ now: Millis) async throws -> Millis?) {
        self.loop = loop
        self.step = step
    }
}

/// How every Klaxon service runs: its binary-protocol server, its work loops and any other
/// long-running parts, together, until graceful shutdown or cancellation ends them all.
public enum ServiceRunner {
    public static func run(server: RPCServer, loops: [WorkLoop], others: [any Service] = []) async throws {
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await server.run() }
            for other in others { group.addTask { try await other.run() } }
            for work in loops { group.addTask { await work.loop.run(work.step) } }
        }
    }
}
