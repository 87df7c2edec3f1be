import AsyncHTTPClient
import Logging
import NIOCore
import ServiceLifecycle
import Shared

/// NotifierService: takes notify requests and pages people through their contact methods.
public struct NotifierService: Service {
    public let server: RPCServer
    let dispatcher: NotificationDispatcher
    let waker: Waker
    let clock: any WallClock
    let logger: Logger

    public init(
        config: KlaxonConfig, pool: PostgresPool, clock: any WallClock, logger: Logger,
        channels: [String: any DeliveryChannel]? = nil, baseBackoffMs: Int64 = 1_000
    ) {
        let waker = Waker()
        let intake = NotifyIntake(pool: pool, clock: clock, dispatcherWaker: waker, logger: logger)
        self.server = RPCServer(
            configuration: config.rpcServerConfiguration(config.notifierListen),
            router: Self.router(intake, people: PeopleAPI(pool: pool)), logger: logger,
            middleware: [AccessMiddleware(TokenAuthenticator(pool: pool))])
        self.dispatcher = NotificationDispatcher(
            pool: pool, channels: channels ?? ChannelKind.channels(config), clock: clock,
            deliveryWindowMs: Int64(config.notifyDeliveryWindowSeconds) * 1000, sendTimeoutMs: Int64(config.notifyTimeoutSeconds) * 1000,
            baseBackoffMs: baseBackoffMs, incidentURLTemplate: config.incidentURLTemplate, logger: logger)
        self.waker = waker
        self.clock = clock
        self.logger = logger
    }

    public static func router(_ intake: NotifyIntake, people: PeopleAPI) -> RPCRouter {
        var router = RPCRouter()
        people.register(into: &router)
        router.register(Notifier.Notify) { (request: NotifyRequest, _) in
            try await intake.notify(request)
            return Empty()
        }
        router.register(Notifier.NotifyBatch) { (batch: NotifyBatchRequest, _) in
            try await intake.notifyBatch(batch)
        }
        return router
    }

    public func run() async throws {
        // Wakes at the next due notification, on a poke (new work, or a send that freed a slot),
        // and at least every second for notifications written by other replicas.
        var loop = DueWorkLoop(name: "notifier.dispatch", clock: clock, waker: waker, logger: logger)
        loop.maxSleep = .seconds(1)
        try await ServiceRunner.run(server: server, loops: [], others: [Sending(dispatcher: dispatcher, loop: loop)], logger: logger)
    }

    /// The dispatcher's continuous sending, as a Service.
    struct Sending: Service {
        let dispatcher: NotificationDispatcher
        let loop: DueWorkLoop
        func run() async throws { await dispatcher.run(loop) }
    }
}
