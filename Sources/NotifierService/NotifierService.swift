import HTTPOperations
import KlaxonDomain
import AsyncHTTPClient
import Logging
import NIOCore
import ServiceLifecycle
import People
import Shared

/// NotifierService: takes notify requests and pages people through their contact methods.
public struct NotifierService: Service {
    public let server: RPCServer
    let dispatcher: DeliveryEngine
    let waker: Waker
    /// Verification codes and test pages.
    let notices: NoticeSender
    /// Assignment's outbox, taken over when no Assignment reaches a Notifier with it.
    let takeover: OutboxRelay
    let webhooks: WebhookSender
    let noticeWaker: Waker
    let http: any Service
    private let httpPortLatch = Latch<Int>()
    let clock: any WallClock
    let logger: Logger
    let pool: PostgresPool

    public init(
        config: KlaxonConfig, pool: PostgresPool, clock: any WallClock, logger: Logger,
        channels: [String: any DeliveryChannel]? = nil, baseBackoffMs: Int64 = 1_000
    ) {
        KlaxonMetrics.bootstrap()
        OutboundGuard.allowLinkLocal = config.allowLinkLocalDestinations
        HTTPClient.leanPages = config.pagesHTTPClient == "lean"
        let waker = Waker()
        let httpPort = httpPortLatch
        let intake = NotifyIntake(pool: pool, clock: clock, dispatcherWaker: waker, logger: logger)
        let poster = ChannelPoster(pool: pool, clock: clock, waker: waker)
        let noticeWaker = Waker()
        let people = PeopleAPI(
            pool: pool, clock: clock, noticeWaker: noticeWaker, testPageWaitMs: Millis(config.notifyTimeoutSeconds) * 1000 + 5_000)
        let server = RPCServer(
            configuration: config.rpcServerConfiguration(.notifier),
            router: Self.router(intake, people: people, poster: poster), logger: logger,
            middleware: [AccessMiddleware(TokenAuthenticator(pool: pool))])
        self.server = server
        self.http = NotifierHTTP.application(
            readiness: Readiness(pool: pool, listeners: [server], canaryIntervalSeconds: config.canaryIntervalSeconds, clock: clock), listen: config.notifierHTTPListen, logger: logger,
            onRunning: { httpPort.resolve(.success($0)) }, tls: config.serverTLS(.notifierHTTP))
        var channels = channels ?? ChannelKind.channels(config)
        channels[CanaryReceiver.kind] = CanaryReceiver(pool: pool, clock: clock, name: ServiceCredentials(service: "notifier").name)
        self.notices = NoticeSender(
            pool: pool, channels: channels, clock: clock, sendTimeoutMs: Int64(config.notifyTimeoutSeconds) * 1000, logger: logger)
        self.noticeWaker = noticeWaker
        // Committed means paged, whoever is left: Assignment's outbox rows for Notifier that no live
        // relay is sending (its Assignment is gone, or cannot reach a Notifier), 5 s old, are
        // applied here, through this process's own entrance, as a service.
        self.takeover = .takeover(destination: Outbox.Destination.notifier, server: server, who: "notifier", pool: pool, logger: logger)
        self.dispatcher = DeliveryEngine(
            pool: pool, channels: channels, clock: clock,
            deliveryWindowMs: Int64(config.notifyDeliveryWindowSeconds) * 1000, sendTimeoutMs: Int64(config.notifyTimeoutSeconds) * 1000,
            baseBackoffMs: baseBackoffMs, incidentURLTemplate: config.incidentURLTemplate, oneTapLinks: config.oneTapLinks, smsReplyCodes: config.twilio != nil,
            throttles: Dictionary(uniqueKeysWithValues: ["sms", "phone"].map { kind in
                (kind, ContactThrottle.rules(
                    kind: kind, smsPer15Minutes: config.notifySMSPer15Minutes, voicePer15Minutes: config.notifyVoicePer15Minutes,
                    gapMs: Millis(config.notifyPhoneGapSeconds) * 1000))
            }),
            channelPostHTTP: .pages(trusting: config.tlsExtraCAFile), logger: logger)
        self.webhooks = WebhookSender(
            pool: pool, http: .pages(trusting: config.tlsExtraCAFile), timeoutMs: Int64(config.notifyTimeoutSeconds) * 1000, logger: logger)
        self.waker = waker
        self.pool = pool
        self.clock = clock
        self.logger = logger
    }

    public static func router(_ intake: NotifyIntake, people: PeopleAPI, poster: ChannelPoster? = nil) -> RPCRouter {
        var router = RPCRouter()
        people.register(into: &router)
        if let poster {
            router.register(Notifier.PostToChannel) { (post: ChannelPost, _) in
                try await poster.accept(post)
                return Empty()
            }
        }
        router.register(Notifier.Notify) { (request: NotifyRequest, _) in
            try await intake.notify(request)
            return Empty()
        }
        router.register(Notifier.NotifyBatch) { (batch: NotifyBatchRequest, _) in
            try await intake.notifyBatch(batch)
        }
        return router
    }

    /// Pages and channel posts being sent right now (each one's outcome recorded when it ends).
    public var deliveriesInFlight: Int { dispatcher.inFlight }

    /// The HTTP port (health, metrics), once listening (useful with port 0).
    public func httpPort() async throws -> Int {
        try await httpPortLatch.wait()
    }

    public func run() async throws {
        defer { httpPortLatch.resolve(.failure(CancellationError())) }  // no-op once it resolved
        // Pages and channel posts: at the next due one, on a poke (new work, or a send that freed
        // a slot), and at least every second for work written by other replicas.
        var loop = DueWorkLoop(name: "notifier.dispatch", clock: clock, waker: waker, logger: logger)
        loop.maxSleep = .seconds(1)
        // Codes and test pages: at once when asked here, within a second when asked of Assignment.
        var noticeLoop = DueWorkLoop(name: "notifier.notices", clock: clock, waker: noticeWaker, logger: logger)
        noticeLoop.maxSleep = .seconds(1)
        let notices = self.notices
        var takeoverLoop = DueWorkLoop(name: "notifier.outbox_takeover", clock: clock, waker: Waker(), logger: logger)
        takeoverLoop.maxSleep = .seconds(1)
        let takeover = self.takeover
        let webhooks = self.webhooks
        try await ServiceRunner.run(
            server: server, loops: [WorkLoop(takeoverLoop) { now in
                // Orphaned outbox rows, then outbound webhook events (due ones, every second).
                let next = try await takeover.deliverDue(now: now)
                let webhookNext: Millis?
                do {
                    webhookNext = try await webhooks.deliverDue(now: now)
                } catch {
                    logger.error("webhook deliveries failed; retried in a second", metadata: ["error": "\(error)"])
                    webhookNext = now + 1_000
                }
                return [next, webhookNext].compactMap { $0 }.min()
            }],
            others: [Sending(dispatcher: dispatcher, loop: loop), Noticing(notices: notices, loop: noticeLoop), http],
            collector: KlaxonMetrics.databaseCollector(pool, destinations: []), logger: logger)
    }

    struct Noticing: Service {
        let notices: NoticeSender
        let loop: DueWorkLoop
        func run() async throws { await loop.run { now in try await notices.step(now: now) } }
    }

    /// The dispatcher's continuous sending, as a Service.
    struct Sending: Service {
        let dispatcher: DeliveryEngine
        let loop: DueWorkLoop
        func run() async throws { await dispatcher.run(loop) }
    }
}
