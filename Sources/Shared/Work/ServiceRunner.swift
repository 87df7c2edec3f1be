import Logging
import KlaxonDomain
import ServiceLifecycle

/// One due-work manager (outbox relay, timers, dispatch) as a Service: its step runs on its
/// loop until graceful shutdown or cancellation.
public struct WorkLoop: Service {
    public var loop: DueWorkLoop
    public var step: @Sendable (_ now: Millis) async throws -> Millis?

    public init(_ loop: DueWorkLoop, step: @escaping @Sendable (_ now: Millis) async throws -> Millis?) {
        self.loop = loop
        self.step = step
    }

    public func run() async throws {
        await loop.run(step)
    }
}

/// How every Klaxon service runs: its binary-protocol server, its work loops and any other
/// long-running parts, as one ServiceGroup: graceful shutdown reaches each (the server stops
/// reading and answers what it read; loops finish their step), and one part failing ends them all.
/// Inside `klaxon serve` these groups are members of the process's group, beside the pool.
public enum ServiceRunner {
    /// `collector` updates the service's scrape-time gauges (outbox depth, pool usage) while it runs.
    public static func run(
        server: RPCServer, loops: [WorkLoop], others: [any Service] = [], collector: KlaxonMetrics.Collector? = nil, logger: Logger
    ) async throws {
        let services: [any Service] = loops + others + [server]  // the server is shut down first
        try await KlaxonMetrics.whileCollecting(collector ?? {}) {
            try await ServiceGroup(services: services, logger: logger).run()
        }
    }
}
