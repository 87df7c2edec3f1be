import AssignmentService
import Foundation
import IngestService
import Logging
import NotifierService
import ServiceLifecycle
import Shared

/// Process wiring shared by the subcommands: logging, config, database, migrations.
enum Runtime {
    static func bootstrapLogging() -> Logger {
        let level = ProcessInfo.processInfo.environment["KLAXON_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        return Logger(label: "klaxon")
    }

    static func config() throws -> KlaxonConfig {
        try KlaxonConfig.fromEnvironment(ProcessInfo.processInfo.environment)
    }

    static func openDatabase(_ config: KlaxonConfig, clock: any WallClock, logger: Logger) async throws -> PostgresPool {
        var configuration = PostgresConfiguration(url: config.databaseURL)
        configuration.maxConnections = config.databasePoolSize
        let pool = PostgresPool(configuration: configuration, logger: logger)
        try await Migrator.migrate(pool, now: clock.nowMs(), logger: logger)
        return pool
    }

    /// Runs services until SIGTERM/SIGINT, then shuts them down gracefully.
    static func run(_ services: [any Service], pool: PostgresPool, logger: Logger) async throws {
        // The pool first: services shut down in reverse order, so it closes after all of them.
        let group = ServiceGroup(configuration: .init(
            services: ([pool] + services).map { .init(service: $0) }, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}
