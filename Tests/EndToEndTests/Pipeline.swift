import AssignmentService
import Foundation
import IngestService
import KlaxonTestSupport
import KlaxonDomain
import Logging
import NIOConcurrencyHelpers
import NotifierService
import ServiceLifecycle
import Shared

/// The three services on their own loopback ports, one fresh database, one HTTP sink standing in
/// for people's webhooks. Each service can be started and stopped on its own.
final class Pipeline: @unchecked Sendable {
    enum Part: String, CaseIterable { case ingest, assignment, notifier }

    let db: TestDatabase
    private(set) var config: KlaxonConfig
    let sink: HTTPSink
    let logger: Logger
    /// The services' clock: the system's, or a ManualClock the test moves.
    let clock: any WallClock
    private var running: [Part: Task<Void, Error>] = [:]
    private var servers: [Part: RPCServer] = [:]
    private var groups: [Part: ServiceGroup] = [:]
    /// The running Notifier's deliveries in flight (its pages being sent).
    private let notifierInFlight = NIOLockedValueBox<(@Sendable () -> Int)?>(nil)
    /// Ingest's HTTP port (PagerDuty Events v2), once Ingest runs.
    private(set) var ingestHTTPPort = 0
    /// Assignment's HTTP port (schedule feeds), once Assignment runs.
    private(set) var assignmentHTTPPort = 0
    /// Notifier's HTTP port (health, metrics), once Notifier runs.
    private(set) var notifierHTTPPort = 0
    /// An admin token (no user of its own) that `client(_:)` sends on every call.
    private(set) var adminToken = ""
    /// A service token, for tests that stand in for one service calling another.
    private(set) var serviceToken = ""

    /// `configure` adjusts the configuration; it gets the sink's base URL.
    init(
        start parts: [Part] = Part.allCases, clock: any WallClock = SystemWallClock(),
        configure: (inout KlaxonConfig, String) -> Void = { _, _ in }
    ) async throws {
        self.clock = clock
        var logger = Logger(label: "e2e")
        logger.logLevel = .warning
        self.logger = logger
        db = try await TestDatabase.create(logger: logger)
        sink = try await HTTPSink.start()
        var config = KlaxonConfig(databaseURL: db.url)
        config.ingestListen = HostPort(host: "127.0.0.1", port: try await freePort())
        config.ingestHTTPListen = HostPort(host: "127.0.0.1", port: 0)
        config.assignmentHTTPListen = HostPort(host: "127.0.0.1", port: 0)
        config.notifierHTTPListen = HostPort(host: "127.0.0.1", port: 0)
        config.assignmentListen = HostPort(host: "127.0.0.1", port: try await freePort())
        config.notifierListen = HostPort(host: "127.0.0.1", port: try await freePort())
        config.assignmentAddress = config.assignmentListen
        config.notifierAddress = config.notifierListen
        config.canaryIntervalSeconds = 0  // the canary's incidents would be in every test's counts (CanaryTests turn it on)
        configure(&config, sink.url)
        self.config = config
        adminToken = try await Self.issueToken(db.pool, name: "test admin", role: .admin, userID: nil)
        serviceToken = try await Self.issueToken(db.pool, name: "test service", role: .service, userID: nil)
        // Dependencies first (Assignment's outbox needs Notifier's address, Ingest's Assignment's),
        // so a port that turns out taken can be replaced before anyone depends on it.
        for part in [Part.notifier, .assignment, .ingest] where parts.contains(part) { try await startOnAFreePort(part) }
    }

    /// `start`, and when the port `freePort` chose is taken after all (bind: EADDRINUSE), what
    /// holds it is printed and the part gets another. Only at the first start: a restart keeps its
    /// port, as clients hold it.
    private func startOnAFreePort(_ part: Part) async throws {
        for attempt in 1...3 {
            do {
                try await start(part)
                return
            } catch where attempt < 3 && "\(error)".contains("Address already in use") {
                let port = listen(part).port
                let holders = (try? await offCooperativePool {
                    try ThirdPartyClientTests.runBlocking("sh", ["-c", "ss -tanpe | grep ':\(port) ' || true"]).output
                }) ?? "?"
                print("Pipeline: port \(port) for \(part) was taken after freePort chose it; held by:\n\(holders)")
                await stop(part)
                let replacement = HostPort(host: "127.0.0.1", port: try await freePort())
                switch part {
                case .ingest: config.ingestListen = replacement
                case .assignment: config.assignmentListen = replacement; config.assignmentAddress = replacement
                case .notifier: config.notifierListen = replacement; config.notifierAddress = replacement
                }
            }
        }
    }

    private func listen(_ part: Part) -> HostPort {
        switch part {
        case .ingest: config.ingestListen
        case .assignment: config.assignmentListen
        case .notifier: config.notifierListen
        }
    }

    func start(_ part: Part) async throws {
        let server: RPCServer
        let task: Task<Void, Error>
        switch part {
        case .ingest:
            let service = IngestService(config: config, pool: db.pool, clock: clock, logger: logger)
            server = service.server
            task = Self.run(service, logger: logger, groups: &groups, part: part)
            ingestHTTPPort = try await service.httpPort()
        case .assignment:
            let service = AssignmentService(config: config, pool: db.pool, clock: clock, logger: logger)
            server = service.server
            task = Self.run(service, logger: logger, groups: &groups, part: part)
            assignmentHTTPPort = try await service.httpPort()
        case .notifier:
            let service = NotifierService(config: config, pool: db.pool, clock: clock, logger: logger, baseBackoffMs: 100)
            notifierInFlight.withLockedValue { $0 = { service.deliveriesInFlight } }
            server = service.server
            task = Self.run(service, logger: logger, groups: &groups, part: part)
            notifierHTTPPort = try await service.httpPort()
        }
        running[part] = task
        servers[part] = server
        _ = try await server.localAddress()
    }

    /// The work loops each running part sleeps in between steps (outbox relays, timers, dispatch).
    var loopCount: Int {
        // Assignment: outbox (two lanes), Ingest's outbox taken over, timers, surge, responder
        // requests, inbox pruning. Notifier: delivery (pages and channel posts), codes and test
        // pages, Assignment's outbox taken over. Ingest: outbox (two lanes).
        running.keys.reduce(0) { count, part in count + (part == .assignment ? 7 : part == .notifier ? 3 : 2) } + extraLoops
    }
    /// Loops of services a test started by itself (another replica) on the same clock.
    var extraLoops = 0

    /// With a ManualClock: waits until every loop has done the work the last move made due and
    /// sleeps again, so a test can assert what did not happen.
    func settle() async {
        guard let manual = clock as? ManualClock else { return }
        let inFlight = notifierInFlight.withLockedValue { $0 }
        await manual.waitForSleepers(loopCount) { (inFlight?() ?? 0) == 0 }
    }

    /// With a ManualClock: lets `ms` of clock time pass in one move (every loop polls once, what
    /// came due runs) and settles, so a test can assert what did not happen meanwhile. Nothing
    /// runs by itself under a ManualClock otherwise.
    func letTimePass(_ ms: Millis = 3_000) async {
        await settle()
        await move(to: clock.nowMs() + ms)
    }

    /// Moves a ManualClock to `instant` and waits for the loops to settle.
    func move(to instant: Millis) async {
        await jump(to: instant)
        await settle()
    }

    /// Moves a ManualClock to `instant` without waiting for what the move makes due (the test
    /// waits for that itself). Work in flight (a page whose webhook arrived but whose outcome is
    /// not written yet) finishes first, at the old instant: a real send never outlives its lease.
    func jump(to instant: Millis) async {
        await settle()
        (clock as! ManualClock).set(instant)
    }

    /// With a ManualClock: lets the loops settle, then moves the clock to the earliest instant
    /// anyone sleeps until (a retry, a lease, a poll), again and again until `done` holds.
    func runClock(until done: () async throws -> Bool, maxMoves: Int = 400) async rethrows -> Bool {
        let manual = clock as! ManualClock
        for _ in 0..<maxMoves {
            if try await done() { return true }
            await settle()
            if try await done() { return true }
            if let next = manual.nextWakeUp { manual.set(max(next, manual.nowMs())) }
        }
        return try await done()
    }

    /// Runs a part in its own ServiceGroup, so `stop` shuts it down as SIGTERM would.
    private static func run(
        _ service: some Service, logger: Logger, groups: inout [Part: ServiceGroup], part: Part
    ) -> Task<Void, Error> {
        let running = RunningService(service, logger: logger)
        groups[part] = running.group
        return running.task
    }

    /// A graceful shutdown, as on SIGTERM (listener closed, calls and sends in flight finished,
    /// claims released); past 3 s what is left is cancelled.
    func stop(_ part: Part) async {
        await groups[part]?.triggerGracefulShutdown()
        _ = await running[part]?.result
        running[part] = nil
        groups[part] = nil
    }

    /// A client of one part that sends `token` (default: the admin token; nil: none).
    func client(_ part: Part, token: String?? = .none) -> RPCClient {
        let port = switch part {
        case .ingest: config.ingestListen.port
        case .assignment: config.assignmentListen.port
        case .notifier: config.notifierListen.port
        }
        var configuration = RPCClientConfiguration(host: "127.0.0.1", port: port)
        configuration.tls = config.clientTLS  // the services' own clients' TLS, when they use it
        let bearer: String? = token ?? adminToken
        configuration.interceptors.append(BearerInterceptor { bearer })
        return RPCClient(configuration: configuration)
    }

    /// Issues a token straight in the database (how a test gets its first one; the product's
    /// way is `KLAXON_BOOTSTRAP_TOKEN` or the token printed at first start).
    static func issueToken(_ pool: PostgresPool, name: String, role: TokenRole, userID: Int64?) async throws -> String {
        try await pool.transaction { try TokenStore.issue($0, name: name, role: role, userID: userID, now: 0).token }
    }

    /// A service whose one-level policy targets `users`, each with a webhook to the sink.
    func seed(users: [String] = ["Alice"], ruleDelays: [UInt32] = [0]) async throws -> Seed.Service {
        let url = "\(sink.url)/hooks"
        return try await db.pool.transaction { connection in
            try Seed.service(
                connection, name: "Checkout", routingKey: Seed.newRoutingKey(),
                users: users.map { Seed.User(name: $0, email: "\($0.lowercased())@example.com", webhookURL: url, ruleDelaysSeconds: ruleDelays) })
        }
    }

    func shutdown() async {
        for part in Part.allCases { await stop(part) }
        await sink.shutdown()
        await db.drop()
    }

    static func trigger(_ routingKey: String, dedupKey: String = "", summary: String = "Checkout error rate 37%") -> Event {
        Event(
            routingKey: routingKey, eventAction: .trigger, dedupKey: dedupKey,
            payload: Payload(summary: summary, source: "checkout-1", severity: .critical, customDetails: ["error_rate": "37%"]))
    }
}

extension HTTPSink.Request {
    var webhook: WebhookMessage? { try? JSONDecoder().decode(WebhookMessage.self, from: Data(body)) }
}

/// A service run in its own ServiceGroup; `stop()` is a graceful shutdown, as on SIGTERM (past
/// 3 s, what is left is cancelled).
struct RunningService: Sendable {
    let group: ServiceGroup
    let task: Task<Void, Error>

    init(_ service: some Service, logger: Logger) {
        var configuration = ServiceGroupConfiguration(services: [.init(service: service)], logger: logger)
        configuration.maximumGracefulShutdownDuration = .seconds(3)
        let group = ServiceGroup(configuration: configuration)
        self.group = group
        task = Task { try await group.run() }
    }

    func stop() async {
        await group.triggerGracefulShutdown()
        _ = await task.result
    }
}
