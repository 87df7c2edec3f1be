import IncidentEngine
import KlaxonDomain
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Shared

/// Group commit for triggers: concurrent triggers queue up while a transaction is running and
/// the next transaction takes them all, writing each table with one multi-row statement. Every
/// caller still gets its own reply only after the transaction holding its event commits. If a
/// batch fails, its events are retried one by one, so one bad event never fails its neighbours.
public final class TriggerBatcher: Sendable {
    private struct Waiter: Sendable {
        var trigger: PreparedTrigger
        var promise: EventLoopPromise<EventResult>
    }

    private struct State {
        var queue: [Waiter] = []
        var committers = 0
        var statistics = Statistics()
    }

    /// Events written and transactions committed, for tests and metrics.
    public struct Statistics: Sendable, Equatable {
        public var events = 0
        public var transactions = 0
        /// Wall time spent inside batch transactions, all committers together.
        public var transactionNanoseconds: Int64 = 0
        /// Batches run again because another transaction opened one of their incidents first.
        public var concurrentCreationRetries = 0
    }

    var statistics: Statistics { state.withLockedValue { $0.statistics } }

    private let pool: PostgresPool
    private let clock: any WallClock
    private let onCreated: @Sendable () -> Void
    private let logger: Logger
    let maxBatch: Int
    let maxCommitters: Int
    private let state = NIOLockedValueBox(State())

    init(
        pool: PostgresPool, clock: any WallClock, maxBatch: Int = 512, maxCommitters: Int = 2, logger: Logger,
        onCreated: @escaping @Sendable () -> Void
    ) {
        self.pool = pool
        self.clock = clock
        self.maxBatch = maxBatch
        self.maxCommitters = maxCommitters
        self.logger = logger
        self.onCreated = onCreated
    }

    /// Queues the triggers together, in order, and returns each one's result once its
    /// transaction committed.
    func submit(_ triggers: [PreparedTrigger]) async -> [Result<EventResult, Error>] {
        let loop = MultiThreadedEventLoopGroup.singleton.any()
        let waiters = triggers.map { Waiter(trigger: $0, promise: loop.makePromise(of: EventResult.self)) }
        enqueue(waiters)
        var results: [Result<EventResult, Error>] = []
        results.reserveCapacity(waiters.count)
        for waiter in waiters {
            do {
                results.append(.success(try await waiter.promise.futureResult.get()))
            } catch {
                results.append(.failure(error))
            }
        }
        return results
    }

    func submit(_ trigger: PreparedTrigger) async throws -> EventResult {
        try await submit([trigger])[0].get()
    }

    /// Queues one trigger without waiting; its result completes on `loop` once committed.
    func enqueue(_ trigger: PreparedTrigger, on loop: EventLoop) -> EventLoopFuture<EventResult> {
        let promise = loop.makePromise(of: EventResult.self)
        enqueue([Waiter(trigger: trigger, promise: promise)])
        return promise.futureResult
    }

    private func enqueue(_ waiters: [Waiter]) {
        let start = state.withLockedValue { state -> Int in
            state.queue.append(contentsOf: waiters)
            let wanted = (state.queue.count + maxBatch - 1) / maxBatch
            let start = max(0, min(maxCommitters - state.committers, wanted))
            state.committers += start
            return start
        }
        for _ in 0..<start { Task { await self.drain() } }
    }

    private func drain() async {
        while true {
            let batch = state.withLockedValue { state -> [Waiter] in
                guard !state.queue.isEmpty else {
                    state.committers -= 1
                    return []
                }
                let batch = Array(state.queue.prefix(maxBatch))
                state.queue.removeFirst(batch.count)
                return batch
            }
            if batch.isEmpty { return }
            await commit(batch)
        }
    }

    private func commit(_ batch: [Waiter], attempt: Int = 1) async {
        let now = clock.nowMs()
        let triggers = batch.map(\.trigger)
        let started = ContinuousClock.now
        do {
            let results = try await pool.transaction { connection in
                try TriggerWriter.write(triggers, connection: connection, now: now)
            }
            let elapsed = ContinuousClock.now - started
            state.withLockedValue {
                $0.statistics.events += batch.count
                $0.statistics.transactions += 1
                $0.statistics.transactionNanoseconds += elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000
            }
            for (waiter, result) in zip(batch, results) { waiter.promise.succeed(result) }
            if results.contains(where: { $0.outcome == .created }) { onCreated() }
        } catch is TriggerWriter.ConcurrentCreation where attempt < 5 {
            state.withLockedValue { $0.statistics.concurrentCreationRetries += 1 }
            // Another Ingest (or committer) opened one of these incidents first; this time the
            // lock query finds it and the batch joins it.
            await commit(batch, attempt: attempt + 1)
        } catch where batch.count > 1 {
            logger.warning(
                "trigger batch failed; retrying its events one by one",
                metadata: ["batch.size": "\(batch.count)", "error": "\(error)"])
            for waiter in batch { await commit([waiter]) }
        } catch {
            batch[0].promise.fail(error)  // EventProcessor turns it into the event's status
        }
    }
}
