import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// Ports for listeners a test must know before they start. Handed out from 20000–32000 (below
/// Linux's ephemeral range, so no OS-assigned port can take one meanwhile), each at most once per
/// process, and checked free by binding it.
private let nextCandidate = NIOLockedValueBox(20_000 + Int.random(in: 0..<6_000))

public func freePort() async throws -> Int {
    for _ in 0..<200 {
        let port = nextCandidate.withLockedValue { value -> Int in
            defer { value = value >= 31_999 ? 20_000 : value + 1 }
            return value
        }
        if let channel = try? await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: port).get()
        {
            try await channel.close()
            return port
        }
    }
    throw ChannelError.connectPending
}

/// Polls `condition` until it holds or `timeout` passes; returns whether it held.
public func eventually(timeout: Duration = .seconds(5), _ condition: () async throws -> Bool) async rethrows -> Bool {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while clock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return try await condition()
}

/// Runs blocking work (a child process, a blocking read) on NIO's thread pool, never on the
/// cooperative threads: the suite runs in parallel on two of them, and one test blocking both
/// would stall every other test's async code for as long.
public func offCooperativePool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await NIOThreadPool.singleton.runIfActive(work)
}

#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Reading a child's output without Foundation's `try!`: `FileHandle.readDataToEndOfFile()` and
/// `availableData` crash the whole test process when `read(2)` is interrupted by a signal (EINTR,
/// e.g. a SIGCHLD while many tests start and reap children). These retry instead.
extension FileHandle {
    /// Everything until end of file.
    public func readAllRetrying() -> Data {
        var data = Data()
        while let chunk = readSomeRetrying(), !chunk.isEmpty { data.append(chunk) }
        return data
    }

    /// What is there now (blocking until something is, or end of file: empty); nil on an error.
    public func readSomeRetrying() -> Data? {
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = Glibc.read(fileDescriptor, &buffer, buffer.count)
            if count >= 0 { return Data(buffer[0..<count]) }
            if errno == EINTR { continue }
            return nil
        }
    }
}
