import Logging
import ServiceLifecycle
import KlaxonDomain
import Shared

/// AssignmentService: decides who must respond, and relays notify requests to Notifier.
public struct AssignmentService: Service {
    public let server: RPCServer
    let relay: OutboxRelay
    let relayWaker: Waker
    let clock: any WallClock
    let logger: Logger

    public init(config: KlaxonConfig, pool: PostgresPool, clock: any WallClock, logger: Logger) {
        let waker = Waker()
        let manager = AssignmentManager(pool: pool, clock: clock, notifierOutbox: waker, logger: logger)
        self.server = RPCServer(
            configuration: config.rpcServerConfiguration(config.assignmentListen), router: Self.router(manager), logger: logger)
        self.relay = OutboxRelay(destination: "notifier", client: config.rpcClient(config.notifierAddress), pool: pool, logger: logger)
        self.relayWaker = waker
        self.clock = clock
        self.logger = logger
    }

    public static func router(_ manager: AssignmentManager) -> RPCRouter {
        var router = RPCRouter()
        router.register(IncidentTriggeredRequest.method) { (request: IncidentTriggeredRequest, _) in
            do {
                try await manager.incidentTriggered(request)
            } catch let error as PostgresError {
                throw error.rpcError
            } catch let error as IncidentCommandError {
                throw error.rpcError
            }
            return Empty()
        }
        return router
    }

    public func run() async throws {
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await server.run() }
            group.addTask {
                await DueWorkLoop(name: "assignment.outbox", clock: clock, waker: relayWaker, logger: logger)
                    .run { now in try await relay.deliverDue(now: now) }
            }
        }
    }
}
