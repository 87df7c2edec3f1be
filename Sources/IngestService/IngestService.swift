import HTTPOperations
import Logging
import ServiceLifecycle
import Shared

/// IngestService: the binary and HTTP (PagerDuty Events v2) listeners for monitor events, and the
/// relay of its outbox to Assignment.
public struct IngestService: Service {
    public let server: RPCServer
    public let processor: EventProcessor
    let http: any Service
    private let httpPortLatch = Latch<Int>()
    let relay: OutboxRelay
    let relayWaker: Waker
    /// The relay's second lane (poked when the first is busy).
    let relayLane: Waker
    /// The canary (nil when KLAXON_CANARY_INTERVAL_SECONDS=0).
    public let canary: Canary?
    let credentials: ServiceCredentials
    let pool: PostgresPool
    let clock: any WallClock
    let logger: Logger

    public init(config: KlaxonConfig, pool: PostgresPool, clock: any WallClock, logger: Logger) {
        KlaxonMetrics.bootstrap()
        // The outbox relay's second lane: it claims new rows while the first waits for a reply.
        let relayLane = Waker()
        let waker = Waker(overflow: relayLane)
        let processor = EventProcessor(
            pool: pool, clock: clock, assignmentOutbox: waker, logger: logger, maxBatch: config.ingestBatchMax,
            maxConcurrentBatches: config.ingestBatchConcurrency)
        self.processor = processor
        let httpPort = httpPortLatch
        let server = RPCServer(
            configuration: config.rpcServerConfiguration(.ingest), router: Self.router(processor), logger: logger,
            middleware: [AccessMiddleware(TokenAuthenticator(pool: pool))])
        self.server = server
        self.http = IngestHTTP.application(
            processor: processor, readiness: Readiness(pool: pool, listeners: [server], canaryIntervalSeconds: config.canaryIntervalSeconds, clock: clock), listen: config.ingestHTTPListen, logger: logger,
            onRunning: { httpPort.resolve(.success($0)) }, tls: config.serverTLS(.ingestHTTP))
        let credentials = ServiceCredentials(service: "ingest")
        self.credentials = credentials
        self.pool = pool
        self.relay = OutboxRelay(
            destination: Outbox.Destination.assignment, client: config.rpcClient(config.assignmentAddress, credentials: credentials),
            pool: pool, logger: logger)
        self.relayWaker = waker
        self.relayLane = relayLane
        self.clock = clock
        self.logger = logger
        if config.canaryIntervalSeconds > 0 {
            // To this process's own listener, over TCP: the front door monitors use.
            let listen = config.ingestListen
            canary = Canary(
                pool: pool, clock: clock, intervalSeconds: config.canaryIntervalSeconds, watchdogURL: config.watchdogURL,
                http: .pages(trusting: config.tlsExtraCAFile), instance: credentials.name.replacingOccurrences(of: "service ", with: ""),
                logger: logger,
                connect: { [server] in
                    let port = try await server.localAddress().port ?? listen.port
                    let host = ["0.0.0.0", "::", ""].contains(listen.host) ? "127.0.0.1" : listen.host
                    return config.rpcClient(HostPort(host: host, port: port))
                })
        } else {
            canary = nil
        }
    }

    public static func router(_ processor: EventProcessor) -> RPCRouter {
        var router = RPCRouter()
        // An event over 512 KiB is invalid anyway: refused before its body is decoded.
        router.limit(Ingest.SendEvent, maxBytes: EventValidation.maxEncodedEventBytes, field: "event")
        router.registerOnLoop(Ingest.SendEvent) { (event: Event, context, loop) in
            processor.process(IngestRequest(event: event, encodedSize: context.requestBytes), on: loop)
        }
        // Item by item: an event that cannot be decoded (a NUL or invalid UTF-8 in a string, a
        // malformed field) refuses only itself, in its item's status; the others are written.
        router.registerRaw(Ingest.SendEvents) { body, _ in
            let encoded: [ArraySlice<UInt8>]
            do throws(WireError) {
                encoded = try WireFields.encodedItems(body, field: 1, name: "events")
            } catch {
                throw RPCError.invalidBody(error, message: "SendEventsRequest")
            }
            var decoded: [(index: Int, event: Event, size: Int)] = []
            var items = [SendEventsReply.Item?](repeating: nil, count: encoded.count)
            for (index, bytes) in encoded.enumerated() {
                do throws(WireError) {
                    decoded.append((index, try Event(wire: Array(bytes)), bytes.count))
                } catch {
                    let field = "events[\(index)]" + (error.field.isEmpty || error.field == "body" ? "" : ".\(error.field)")
                    items[index] = SendEventsReply.Item(status: RPCError(
                        .invalidArgument, "cannot decode event \(index): \(error.reason)",
                        violations: [FieldViolation(field: field, description: error.reason)]).status, result: nil)
                }
            }
            let results = await processor.process(decoded.map { ($0.event, $0.size) })
            for (item, result) in zip(decoded, results) {
                switch result {
                case let .success(value): items[item.index] = SendEventsReply.Item(status: .ok, result: value)
                case let .failure(error): items[item.index] = SendEventsReply.Item(status: error.status, result: nil)
                }
            }
            return SendEventsReply(items: items.map { $0! })
        }
        return router
    }

    /// The HTTP port, once listening (useful with port 0).
    public func httpPort() async throws -> Int {
        try await httpPortLatch.wait()
    }

    /// The canary's round trips, on their own loop.
    private var canaryLoops: [WorkLoop] {
        guard let canary else { return [] }
        return [WorkLoop(DueWorkLoop(name: "ingest.canary", clock: clock, waker: Waker(), logger: logger)) { now in
            try await canary.step(now: now)
        }]
    }

    public func run() async throws {
        defer { httpPortLatch.resolve(.failure(CancellationError())) }  // no-op once it resolved
        let relayLane = self.relayLane
        var relayLoop = DueWorkLoop(name: "ingest.outbox", clock: clock, waker: relayWaker, logger: logger)
        relayLoop.finalStepOnShutdown = true
        try await credentials.whileIssued(pool: pool, clock: clock) {
            try await ServiceRunner.run(
                server: server,
                loops: [WorkLoop(relayLoop) { now in
                    try await relay.deliverDue(now: now)
                }, WorkLoop(DueWorkLoop(name: "ingest.outbox.lane2", clock: clock, waker: relayLane, logger: logger)) { now in
                    try await relay.deliverDue(now: now)
                }] + canaryLoops,
                others: [http], collector: KlaxonMetrics.databaseCollector(pool, destinations: [Outbox.Destination.assignment]),
                logger: logger)
        }
    }
}
