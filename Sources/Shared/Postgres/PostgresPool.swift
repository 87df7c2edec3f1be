import Logging
import ServiceLifecycle
import NIOConcurrencyHelpers
import NIOPosix

public struct PostgresConfiguration: Sendable {
    /// A libpq connection string or URI.
    public var url: String
    public var maxConnections: Int = 8
    /// Attempts for a transaction that fails with a serialization failure or deadlock.
    public var maxTransactionAttempts: Int = 5
    /// Named prepared statements (`KLAXON_DATABASE_PREPARED_STATEMENTS`); off behind pgbouncer
    /// in transaction mode before 1.21 (see `PGConnection`).
    public var preparedStatements = true

    public init(url: String) { self.url = url }
}

public enum IsolationLevel: String, Sendable {
    case readCommitted = "READ COMMITTED"
    case repeatableRead = "REPEATABLE READ"
    case serializable = "SERIALIZABLE"
}

/// Blocking libpq connections behind an async interface: each use runs on the pool's own
/// threads, so neither NIO event loops nor Swift's cooperative threads ever wait on the database.
public final class PostgresPool: Service, Sendable {
    public let configuration: PostgresConfiguration
    private let threads: NIOThreadPool
    private let logger: Logger
    private let state = NIOLockedValueBox(State())

    private struct State {
        var idle: [PGConnection] = []
        var open = 0
        var waiters: [CheckedContinuation<PGConnection?, Never>] = []
        var closed = false
    }

    public init(configuration: PostgresConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        threads = NIOThreadPool(numberOfThreads: configuration.maxConnections)
        threads.start()
    }

    /// Connections open (lent or idle), idle, and callers waiting for one (`klaxon_database_pool_*`).
    public var usage: (open: Int, idle: Int, waiting: Int) {
        state.withLockedValue { ($0.open, $0.idle.count, $0.waiters.count) }
    }

    public convenience init(url: String, logger: Logger) {
        self.init(configuration: PostgresConfiguration(url: url), logger: logger)
    }

    /// As a member of the process's ServiceGroup (listed first, so shut down last): closes every
    /// connection on graceful shutdown, and also when the group is cancelled because a service
    /// failed, so the shutdown is never skipped.
    public func run() async throws {
        try? await gracefulShutdown()
        await shutdown()
    }

    public func shutdown() async {
        // Dropping the idle connections closes them (PQfinish in deinit); lent ones close on return.
        state.withLockedValue { state in
            state.closed = true
            state.idle.removeAll()
        }
        try? await threads.shutdownGracefully()
    }

    /// Lends a connection to `body` on a pool thread. A connection that failed is discarded.
    @discardableResult
    public func withConnection<T: Sendable>(_ body: @escaping @Sendable (PGConnection) throws -> T) async throws -> T {
        let lent = await acquire()
        // A cancelled task's work item never runs (NIOThreadPool drops it): the connection (or
        // the slot) must come back all the same, or a few cancellations exhaust the pool.
        let handedOver = NIOLockedValueBox(false)
        do {
            return try await lend(lent, handedOver: handedOver, body)
        } catch {
            if !handedOver.withLockedValue({ $0 }) { release(lent) }
            throw error
        }
    }

    private func lend<T: Sendable>(
        _ lent: PGConnection?, handedOver: NIOLockedValueBox<Bool>, _ body: @escaping @Sendable (PGConnection) throws -> T
    ) async throws -> T {
        try await threads.runIfActive { [self] in
            handedOver.withLockedValue { $0 = true }
            let connection: PGConnection
            do {
                connection = try lent ?? PGConnection(url: configuration.url, prepared: configuration.preparedStatements)
            } catch {
                release(nil)
                throw error
            }
            do {
                let result = try body(connection)
                release(connection)
                return result
            } catch let error as PostgresError where error.isConnectionFailure || !connection.isHealthy {
                release(nil)
                throw error
            } catch {
                release(connection.isHealthy ? connection : nil)
                throw error
            }
        }
    }

    /// Runs `body` in a transaction and commits; rolls back on any error. Serialization failures
    /// and deadlocks run the whole body again, so it must not have effects outside the database.
    /// `durable: false` commits without waiting for the WAL flush (synchronous_commit off): for
    /// writes a crash may lose without harm, such as a dispatcher's lease (a lost lease means the
    /// page is claimed again: at-least-once, as after any crash).
    @discardableResult
    public func transaction<T: Sendable>(
        _ isolation: IsolationLevel = .readCommitted, durable: Bool = true, _ body: @escaping @Sendable (PGConnection) throws -> T
    ) async throws -> T {
        var attempt = 1
        while true {
            do {
                return try await withConnection { connection in
                    // BEGIN goes out with the body's first statement and COMMIT with its queued
                    // writes: a transaction costs no round trip of its own.
                    try connection.enqueue("BEGIN ISOLATION LEVEL \(isolation.rawValue)")
                    if !durable { try connection.enqueue("SET LOCAL synchronous_commit = off") }
                    do {
                        let result = try body(connection)
                        try connection.query("COMMIT")
                        return result
                    } catch {
                        connection.discardQueued()
                        _ = try? connection.execute("ROLLBACK")
                        throw error
                    }
                }
            } catch let error as PostgresError where error.isRetryable && attempt < configuration.maxTransactionAttempts {
                logger.debug("retrying transaction", metadata: ["db.sqlstate": "\(error.sqlState ?? "")", "db.attempt": "\(attempt)"])
                attempt += 1
                try await Task.sleep(for: .milliseconds(Int.random(in: 1...(10 * attempt))))
            }
        }
    }

    /// A connection, or nil meaning "open a new one" (the slot is already counted).
    private func acquire() async -> PGConnection? {
        enum Decision { case use(PGConnection), open, wait }
        let decision = state.withLockedValue { state -> Decision in
            if let connection = state.idle.popLast() { return .use(connection) }
            if state.open < configuration.maxConnections {
                state.open += 1
                return .open
            }
            return .wait
        }
        switch decision {
        case let .use(connection): return connection
        case .open: return nil
        case .wait:
            return await withCheckedContinuation { continuation in
                let immediate = state.withLockedValue { state -> (Bool, PGConnection?) in
                    if let connection = state.idle.popLast() { return (true, connection) }
                    if state.open < configuration.maxConnections {
                        state.open += 1
                        return (true, nil)
                    }
                    state.waiters.append(continuation)
                    return (false, nil)
                }
                if immediate.0 { continuation.resume(returning: immediate.1) }
            }
        }
    }

    /// Returns a connection, or gives up its slot (nil) so a waiter may open a fresh one.
    private func release(_ connection: PGConnection?) {
        let waiter = state.withLockedValue { state -> CheckedContinuation<PGConnection?, Never>? in
            if !state.waiters.isEmpty { return state.waiters.removeFirst() }
            if let connection, !state.closed {
                state.idle.append(connection)
            } else {
                state.open -= 1
            }
            return nil
        }
        waiter?.resume(returning: connection)
    }
}
