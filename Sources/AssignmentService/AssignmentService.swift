import HTTPOperations
import Logging
import IncidentEngine
import People
import ServiceLifecycle
import KlaxonDomain
import Shared

/// AssignmentService: decides who must respond, and relays notify requests to Notifier.
public struct AssignmentService: Service {
    public let server: RPCServer
    let relay: OutboxRelay
    /// Ingest's outbox, taken over when no Ingest sends it.
    let takeover: OutboxRelay
    let relayWaker: Waker
    /// The relay's second lane (poked when the first is busy).
    let relayLane: Waker
    let credentials: ServiceCredentials
    let pool: PostgresPool
    let timers: TimerManager
    let inboxPruner: InboxPruner
    /// Poked after an action that may have set an earlier timer.
    let timerWaker: Waker
    let http: any Service
    private let httpPortLatch = Latch<Int>()
    let clock: any WallClock
    let logger: Logger

    public init(config: KlaxonConfig, pool: PostgresPool, clock: any WallClock, logger: Logger) {
        KlaxonMetrics.bootstrap()
        ChangeStore.windowMs.store(Int64(config.changeWindowHours) * 3_600_000, ordering: .relaxed)
        OutboundGuard.allowLinkLocal = config.allowLinkLocalDestinations
        // The outbox relay's second lane: it claims new rows while the first waits for a reply.
        let relayLane = Waker()
        let waker = Waker(overflow: relayLane)
        let timerWaker = Waker()
        let manager = AssignmentManager(pool: pool, clock: clock, notifierOutbox: waker, timers: timerWaker, logger: logger)
        let actions = IncidentActions(pool: pool, clock: clock, notifierOutbox: waker, timers: timerWaker)
        let authenticator = TokenAuthenticator(pool: pool)
        let router = Self.router(
            manager, actions: actions, queries: IncidentQueries(pool: pool),
            admin: AdminAPI(pool: pool, clock: clock, authenticator: authenticator), people: PeopleAPI(pool: pool, clock: clock, testPageWaitMs: Millis(config.notifyTimeoutSeconds) * 1000 + 5_000))
        let server = RPCServer(
            configuration: config.rpcServerConfiguration(.assignment), router: router,
            logger: logger, middleware: [AccessMiddleware(authenticator)])
        self.server = server
        let httpPort = httpPortLatch
        // Chat commands run the same handlers as the binary protocol, as the mapped user.
        let chat = ChatCommands(
            pool: pool, server: server, secret: config.chatSigningSecret, clock: clock, logger: logger, extraCAFile: config.tlsExtraCAFile)
        self.http = AssignmentHTTP.application(
            pool: pool, readiness: Readiness(pool: pool, listeners: [server], canaryIntervalSeconds: config.canaryIntervalSeconds, clock: clock), clock: clock, listen: config.assignmentHTTPListen,
            logger: logger, chat: chat,
            page: config.oneTapLinks.map {
                IncidentPage(pool: pool, server: server, clock: clock, key: $0.key, secureCookie: $0.publicURL.hasPrefix("https://"), logger: logger)
            },
            twilio: config.twilio.map {
                TwilioReplies(
                    pool: pool, server: server, clock: clock, account: $0,
                    window: DeliveryWindow(lengthMs: Millis(config.notifyDeliveryWindowSeconds) * 1000), logger: logger)
            },
            onRunning: { httpPort.resolve(.success($0)) }, tls: config.serverTLS(.assignmentHTTP))
        let credentials = ServiceCredentials(service: "assignment")
        self.credentials = credentials
        self.pool = pool
        self.relay = OutboxRelay(
            destination: Outbox.Destination.notifier, client: config.rpcClient(config.notifierAddress, credentials: credentials),
            pool: pool, logger: logger)
        self.relayWaker = waker
        self.relayLane = relayLane
        // Committed means paged, whoever is left: Ingest's outbox rows that no live Ingest is
        // sending, 5 s old, are applied here (through this process's own entrance, as a service).
        self.takeover = .takeover(destination: Outbox.Destination.assignment, server: server, who: "assignment", pool: pool, logger: logger)
        self.timers = TimerManager(pool: pool, notifierOutbox: waker, logger: logger)
        self.inboxPruner = InboxPruner(pool: pool, retentionMs: Millis(config.inboxRetentionHours) * 3_600_000, logger: logger)
        self.timerWaker = timerWaker
        self.clock = clock
        self.logger = logger
    }

    public static func router(
        _ manager: AssignmentManager, actions: IncidentActions, queries: IncidentQueries, admin: AdminAPI, people: PeopleAPI
    ) -> RPCRouter {
        var router = RPCRouter()
        // People too, so one address (the CLI's) serves every operator call; Notifier still does.
        people.register(into: &router)
        actions.register(into: &router)
        queries.register(into: &router)
        admin.register(into: &router)
        MajorIncidentsAPI(pool: actions.pool, clock: actions.clock, notifierOutbox: actions.notifierOutbox).register(into: &router)
        ResponseAPI(pool: actions.pool, clock: actions.clock, notifierOutbox: actions.notifierOutbox).register(into: &router)
        router.register(Assignment.IncidentTriggered) { (request: IncidentTriggeredRequest, _) in
            try await manager.incidentTriggered(request)
            return Empty()
        }
        router.register(Assignment.IncidentsTriggered) { (batch: IncidentTriggeredBatch, _) in
            try await manager.incidentsTriggered(batch)
        }
        return router
    }

    /// The HTTP port (schedule feeds, health), once listening (useful with port 0).
    public func httpPort() async throws -> Int {
        try await httpPortLatch.wait()
    }

    public func run() async throws {
        defer { httpPortLatch.resolve(.failure(CancellationError())) }  // no-op once it resolved
        // Ingest's orphaned outbox rows: every second.
        var takeoverLoop = DueWorkLoop(name: "assignment.outbox_takeover", clock: clock, waker: Waker(), logger: logger)
        takeoverLoop.maxSleep = .seconds(1)
        let takeover = self.takeover
        let heartbeats = HeartbeatDeadlines(pool: pool, notifierOutbox: relayWaker, logger: logger)
        // Timers: wake at the earliest due one, on a poke, and at least every second for timers
        // set by other processes (Ingest, other replicas), so each fires within a second of due.
        var timerLoop = DueWorkLoop(name: "assignment.timers", clock: clock, waker: timerWaker, logger: logger)
        timerLoop.maxSleep = .milliseconds(TimerManager.pollMs)
        // Responder requests: expired at their timeout (and every second for other replicas' requests).
        var expiryLoop = DueWorkLoop(name: "assignment.responder_requests", clock: clock, waker: Waker(), logger: logger)
        expiryLoop.maxSleep = .seconds(1)
        let expiry = ResponderRequestExpiry(pool: pool, logger: logger)
        // The inbox: pruned hourly.
        var pruneLoop = DueWorkLoop(name: "assignment.inbox_prune", clock: clock, waker: Waker(), logger: logger)
        pruneLoop.maxSleep = .seconds(3600)
        let pruner = inboxPruner
        // Surge detection: evaluated every second (by one replica at a time).
        var surgeLoop = DueWorkLoop(name: "assignment.surge", clock: clock, waker: Waker(), logger: logger)
        surgeLoop.maxSleep = .seconds(1)
        let surge = SurgeWatcher(pool: pool, notifierOutbox: relayWaker, logger: logger)
        let relayLane = self.relayLane
        var relayLoop = DueWorkLoop(name: "assignment.outbox", clock: clock, waker: relayWaker, logger: logger)
        relayLoop.finalStepOnShutdown = true
        try await credentials.whileIssued(pool: pool, clock: clock) {
            try await ServiceRunner.run(server: server, loops: [
                WorkLoop(relayLoop) { now in
                    try await relay.deliverDue(now: now)
                },
                WorkLoop(DueWorkLoop(name: "assignment.outbox.lane2", clock: clock, waker: relayLane, logger: logger)) { now in
                    try await relay.deliverDue(now: now)
                },
                WorkLoop(takeoverLoop) { now in try await takeover.deliverDue(now: now) },
                WorkLoop(timerLoop) { now in
                    // Incident timers, then heartbeat deadlines: both due within a second. A failing
                    // heartbeat step is logged and retried in a second; it never holds up incident timers.
                    let next = try await timers.fireDue(now: now)
                    let heartbeatNext: Millis?
                    do {
                        heartbeatNext = try await heartbeats.fireDue(now: now)
                    } catch {
                        logger.error("heartbeat deadlines failed; retried in a second", metadata: ["error": "\(error)"])
                        heartbeatNext = now + 1_000
                    }
                    return [next, heartbeatNext].compactMap { $0 }.min()
                },
                WorkLoop(surgeLoop) { now in try await surge.step(now: now) },
                WorkLoop(expiryLoop) { now in try await expiry.step(now: now) },
                WorkLoop(pruneLoop) { now in try await pruner.step(now: now) },
            ], others: [http], collector: KlaxonMetrics.databaseCollector(pool, destinations: [Outbox.Destination.notifier]), logger: logger)
        }
    }
}
