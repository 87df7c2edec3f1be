import ArgumentParser
import AssignmentService
import IngestService
import NotifierService
import ServiceLifecycle
import Shared

struct ServiceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run one or more services (configured by KLAXON_* environment variables).")

    enum Name: String, ExpressibleByArgument, CaseIterable {
        case ingest, assignment, notifier
    }

    @Argument(help: "ingest, assignment and/or notifier (default: all three)")
    var services: [Name] = []

    func run() async throws {
        let logger = Runtime.bootstrapLogging()
        let config = try Runtime.config()
        let clock = SystemWallClock()
        let pool = try await Runtime.openDatabase(config, clock: clock, logger: logger)
        let names = services.isEmpty ? Name.allCases : services
        // Tokens are Assignment's business (it serves Admin): a process without it (an Ingest or
        // Notifier container) neither reads KLAXON_BOOTSTRAP_TOKEN nor makes a first admin token.
        if names.contains(.assignment),
           let token = try await Configuration.bootstrapAdmin(pool, token: config.bootstrapToken, now: clock.nowMs())
        {
            print("First start: no admin token existed; created one (shown this once, keep it): \(token)")
        }
        let running: [any Service] = names.map { name in
            switch name {
            case .ingest: IngestService(config: config, pool: pool, clock: clock, logger: logger)
            case .assignment: AssignmentService(config: config, pool: pool, clock: clock, logger: logger)
            case .notifier: NotifierService(config: config, pool: pool, clock: clock, logger: logger)
            }
        }
        try await Runtime.run(running, pool: pool, logger: logger)
    }
}

struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate", abstract: "Apply pending database migrations and exit.")

    func run() async throws {
        let logger = Runtime.bootstrapLogging()
        let config = try Runtime.config()
        let pool = PostgresPool(url: config.databaseURL, logger: logger)
        let applied = try await Migrator.migrate(pool, now: SystemWallClock().nowMs(), logger: logger)
        print(applied.isEmpty ? "database is up to date" : "applied: \(applied.joined(separator: ", "))")
        await pool.shutdown()
    }
}
