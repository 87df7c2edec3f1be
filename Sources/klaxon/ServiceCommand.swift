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
        let names = services.isEmpty ? Name.allCases : services
        // Ingest beside the others has a pool of its own, a quarter of KLAXON_DATABASE_POOL_SIZE
        // (at least 2): its group commits never wait for a connection behind Assignment's and
        // Notifier's batches. Assignment and Notifier share the configured pool, so whichever is
        // busy has all of it (split pools measured worse latency: docs/PERFORMANCE.md).
        let ingestOwn = names.contains(.ingest) && names.count > 1
        let ingestShare = max(2, config.databasePoolSize / 4)
        let pool = try await Runtime.openDatabase(config, clock: clock, logger: logger)
        // Tokens are Assignment's business (it serves Admin): a process without it (an Ingest or
        // Notifier container) neither reads KLAXON_BOOTSTRAP_TOKEN nor makes a first admin token.
        if names.contains(.assignment),
           let token = try await Configuration.bootstrapAdmin(pool, token: config.bootstrapToken, now: clock.nowMs())
        {
            print("First start: no admin token existed; created one (shown this once, keep it): \(token)")
        }
        let ingestPool = ingestOwn ? Runtime.newPool(config, size: ingestShare, logger: logger) : pool
        let pools = ingestOwn ? [pool, ingestPool] : [pool]
        let running: [any Service] = names.map { name -> any Service in
            switch name {
            case .ingest: IngestService(config: config, pool: ingestPool, clock: clock, logger: logger)
            case .assignment: AssignmentService(config: config, pool: pool, clock: clock, logger: logger)
            case .notifier: NotifierService(config: config, pool: pool, clock: clock, logger: logger)
            }
        } + [Runtime.statisticsKeeper(pool, clock: clock, logger: logger)]
        try await Runtime.run(running, pools: pools, logger: logger)
    }
}

struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate", abstract: "Apply pending database migrations and exit.")

    @Option(name: .customLong("wait"), help: ArgumentHelp(
        "Seconds to keep trying while the database is not there yet (unreachable, no primary elected, its role or database not made yet): a container started beside its database.",
        valueName: "seconds"))
    var waitSeconds: Int = 0

    func run() async throws {
        let logger = Runtime.bootstrapLogging()
        let config = try Runtime.config()
        let pool = PostgresPool(url: config.databaseURL, logger: logger)
        let deadline = ContinuousClock.now + .seconds(max(0, waitSeconds))  // monotonic: a wait, not a domain instant
        while true {
            do {
                let applied = try await Migrator.migrate(pool, now: SystemWallClock().nowMs(), logger: logger)
                print(applied.isEmpty ? "database is up to date" : "applied: \(applied.joined(separator: ", "))")
                break
            } catch let error as PostgresError where Self.notThereYet(error) && ContinuousClock.now < deadline {
                logger.notice("the database is not there yet; trying again in 1 s", metadata: ["error": "\(error)"])
                try await Task.sleep(for: .seconds(1))
            }
        }
        await pool.shutdown()
    }

    /// Unreachable or no primary (connection failures), or the role or database not made yet.
    static func notThereYet(_ error: PostgresError) -> Bool {
        error.isConnectionFailure || ["3D000", "28000", "28P01"].contains(error.sqlState ?? "")
    }
}
