import AssignmentService
import Foundation
import IngestService
import Logging
import NotifierService
import ServiceLifecycle
import UnixSignals
import Shared

/// Process wiring shared by the subcommands: logging, config, database, migrations.
enum Runtime {
    /// `KLAXON_LOG_LEVEL` (default info) and `KLAXON_LOG_FORMAT`: plain (default) or json (one
    /// object a line). A value that is neither stops the process, naming the variable.
    static func bootstrapLogging() -> Logger {
        let environment = ProcessInfo.processInfo.environment
        let levelText = environment["KLAXON_LOG_LEVEL"].flatMap { $0.isEmpty ? nil : $0 } ?? "info"
        guard let level = Logger.Level(rawValue: levelText) else {
            FileHandle.standardError.write(Data("error: KLAXON_LOG_LEVEL=\(levelText) is not trace, debug, info, notice, warning, error or critical\n".utf8))
            exit(CLIExit.usage)
        }
        let format = environment["KLAXON_LOG_FORMAT"].flatMap { $0.isEmpty ? nil : $0 } ?? "plain"
        switch format {
        case "json":
            LoggingSystem.bootstrap { label in JSONLogHandler(label: label, level: level) }
        case "plain":
            LoggingSystem.bootstrap { label in
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            }
        default:
            FileHandle.standardError.write(Data("error: KLAXON_LOG_FORMAT=\(format) is not plain or json\n".utf8))
            exit(CLIExit.usage)
        }
        return Logger(label: "klaxon")
    }

    /// `KLAXON_SHUTDOWN_GRACE_SECONDS` (default 20): how long a graceful shutdown may take before
    /// what is left is cancelled.
    static func shutdownGrace() -> Duration {
        let text = ProcessInfo.processInfo.environment["KLAXON_SHUTDOWN_GRACE_SECONDS"] ?? ""
        guard !text.isEmpty else { return .seconds(20) }
        guard let seconds = Int(text), seconds >= 1 else {
            FileHandle.standardError.write(Data("error: KLAXON_SHUTDOWN_GRACE_SECONDS=\(text) is not a whole number of seconds ≥ 1\n".utf8))
            exit(CLIExit.usage)
        }
        return .seconds(seconds)
    }

    static func config() throws -> KlaxonConfig {
        try KlaxonConfig.fromEnvironment(ProcessInfo.processInfo.environment)
    }

    static func openDatabase(_ config: KlaxonConfig, size: Int? = nil, clock: any WallClock, logger: Logger) async throws -> PostgresPool {
        let pool = newPool(config, size: size, logger: logger)
        try await Migrator.migrate(pool, now: clock.nowMs(), logger: logger)
        return pool
    }

    /// A pool of `size` (default `KLAXON_DATABASE_POOL_SIZE`) connections (no migration).
    static func newPool(_ config: KlaxonConfig, size: Int? = nil, logger: Logger) -> PostgresPool {
        var configuration = PostgresConfiguration(url: config.databaseURL)
        configuration.maxConnections = size ?? config.databasePoolSize
        configuration.preparedStatements = config.databasePreparedStatements
        return PostgresPool(configuration: configuration, logger: logger)
    }

    /// The planner's statistics, refreshed as tables grow (a plan made for an empty table is not
    /// kept through a surge): every second, in every process that runs services.
    static func statisticsKeeper(_ pool: PostgresPool, clock: any WallClock, logger: Logger) -> WorkLoop {
        let keeper = StatisticsKeeper(pool: pool, logger: logger)
        var loop = DueWorkLoop(name: "statistics", clock: clock, waker: Waker(), logger: logger)
        loop.maxSleep = .milliseconds(StatisticsKeeper.intervalMs)
        return WorkLoop(loop) { now in try await keeper.step(now: now) }
    }

    /// Runs services until SIGTERM/SIGINT, then shuts them down gracefully.
    static func run(_ services: [any Service], pool: PostgresPool, logger: Logger) async throws {
        try await run(services, pools: [pool], logger: logger)
    }

    /// Runs services until SIGTERM/SIGINT, then shuts them down gracefully; the pools close last.
    static func run(_ services: [any Service], pools: [PostgresPool], logger: Logger) async throws {
        // The pool first: services shut down in reverse order, so it closes after all of them.
        // Callers list services upstream first (ingest, assignment, notifier); reversed here, so
        // on SIGTERM Ingest stops first and its relay's last step still reaches Assignment, and
        // Assignment's still reaches Notifier, which stops last, finishing the pages in flight.
        var configuration = ServiceGroupConfiguration(
            services: (pools.map { $0 as any Service } + services.reversed()).map { .init(service: $0) }, gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger)
        // Past the grace, what is left is cancelled (claimed pages are released by their lease).
        configuration.maximumGracefulShutdownDuration = shutdownGrace()
        configuration.maximumCancellationDuration = .seconds(5)
        let group = ServiceGroup(configuration: configuration)
        // SIGHUP re-reads the TLS certificates and keys (new connections get the new ones).
        let hangups = Task {
            for await _ in await UnixSignalsSequence(trapping: .sighup) { ServerTLS.reloadAll() }
        }
        defer { hangups.cancel() }
        try await group.run()
    }
}
