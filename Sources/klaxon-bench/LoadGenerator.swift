import Foundation
import Histogram
import NIOConcurrencyHelpers
import NIOCore
import Shared

#if canImport(Glibc)
import Glibc
#endif

/// A lean binary-protocol load generator: every request frame is encoded before the clock
/// starts, each connection is one thread writing frames over a blocking socket (keeping up to
/// `inFlight` unanswered) and reading the replies back, matched by envelope id. Its own CPU cost
/// is a few microseconds per call, so on a machine it shares with the server the figures are the
/// server's. Every reply is decoded: its status is checked and its body handed to `inspect`.
struct LoadGenerator {
    var port: Int
    var connections: Int
    var inFlight: Int
    /// Open loop: call i is sent at start + i / rate (never before), whatever the replies do.
    /// nil: closed loop, as fast as the window allows.
    var rate: Double? = nil

    struct Report {
        var seconds: Double
        var calls: Int
        var histogram: Histogram<UInt64>
        var errors: Int
        var firstError: String?
        /// Counts of what `inspect` returned for each OK reply.
        var outcomes: [String: Int]
        /// When the run started and when each call's reply arrived (monotonic nanoseconds;
        /// 0 = no OK reply).
        var startNanos: UInt64 = 0
        var replyNanos: [UInt64] = []

        var rate: Double { Double(calls) / seconds }
        func ms(_ percentile: Double) -> Double { Double(histogram.valueAtPercentile(percentile)) / 1000 }
        var maxMs: Double { Double(histogram.max) / 1000 }
    }

    /// The frame for request `index` must carry envelope id `index + 1`.
    func run(
        calls: Int, frame: (Int) -> [UInt8], inspect: @escaping @Sendable ([UInt8]) -> String
    ) throws -> Report {
        let connections = max(1, min(self.connections, calls))
        // Request i goes over connection i % connections; its frame is ready before timing starts.
        let frames = (0..<calls).map(frame)
        let sockets = try (0..<connections).map { _ in try Self.connect(port: port) }
        defer { for fd in sockets { close(fd) } }
        let results = NIOLockedValueBox([Worker.Result?](repeating: nil, count: connections))
        let finished = DispatchGroup()
        let start = Self.nanos()
        let replies = ReplyTimes(count: calls)
        for c in 0..<connections {
            let worker = Worker(
                fd: sockets[c], connection: c, connections: connections, calls: calls, inFlight: inFlight,
                frames: frames, inspect: inspect, start: start, intervalNanos: rate.map { 1e9 / $0 }, replies: replies)
            finished.enter()
            let thread = Thread {
                let result = worker.run()
                results.withLockedValue { $0[c] = result }
                finished.leave()
            }
            thread.stackSize = 1 << 20
            thread.name = "loadgen-\(c)"
            thread.start()
        }
        finished.wait()
        let seconds = Double(Self.nanos() - start) / 1e9
        var report = Report(
            seconds: seconds, calls: calls, histogram: Worker.Result().histogram, errors: 0, firstError: nil, outcomes: [:],
            startNanos: start, replyNanos: replies.values)
        for result in results.withLockedValue({ $0 }).compactMap({ $0 }) {
            report.histogram.add(result.histogram)
            report.errors += result.errors
            report.firstError = report.firstError ?? result.firstError
            report.outcomes.merge(result.outcomes, uniquingKeysWith: +)
        }
        return report
    }

    static func nanos() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    static func connect(port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw LoadError("socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            close(fd)
            throw LoadError("connect to 127.0.0.1:\(port): \(String(cString: strerror(errno)))")
        }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        return fd
    }

    /// Reply instants by call index, written by the connection threads (each its own indexes).
    final class ReplyTimes: @unchecked Sendable {
        private var storage: UnsafeMutableBufferPointer<UInt64>
        init(count: Int) { storage = .allocate(capacity: count); storage.initialize(repeating: 0) }
        deinit { storage.deallocate() }
        func set(_ index: Int, _ value: UInt64) { storage[index] = value }
        var values: [UInt64] { Array(storage) }
    }

    struct LoadError: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    /// One connection's loop: top the window up, write, read what arrived, account for it.
    struct Worker: @unchecked Sendable {
        var fd: Int32
        var connection: Int
        var connections: Int
        var calls: Int
        var inFlight: Int
        var frames: [[UInt8]]
        var inspect: @Sendable ([UInt8]) -> String
        var start: UInt64
        var intervalNanos: Double?
        var replies: ReplyTimes

        /// When call `index` may be sent.
        func due(_ index: Int) -> UInt64 { start + UInt64(Double(index) * (intervalNanos ?? 0)) }

        struct Result {
            var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
            var errors = 0
            var firstError: String?
            var outcomes: [String: Int] = [:]
        }

        func run() -> Result {
            var result = Result()
            let mine = stride(from: connection, to: calls, by: connections).map { $0 }
            var sentAt = [UInt64](repeating: 0, count: mine.count)
            var next = 0, answered = 0, outstanding = 0
            var output: [UInt8] = []
            output.reserveCapacity(inFlight * 512)
            var input = ByteBufferAllocator().buffer(capacity: 1 << 20)
            func fail(_ message: String) {
                result.errors += mine.count - answered
                result.firstError = result.firstError ?? message
            }
            while answered < mine.count {
                output.removeAll(keepingCapacity: true)
                let now = LoadGenerator.nanos()
                while outstanding < inFlight, next < mine.count, intervalNanos == nil || due(mine[next]) <= now {
                    output.append(contentsOf: frames[mine[next]])
                    sentAt[next] = now
                    next += 1
                    outstanding += 1
                }
                if !output.isEmpty, !writeAll(output) {
                    fail("write: \(String(cString: strerror(errno)))")
                    return result
                }
                if intervalNanos != nil, next < mine.count {
                    // Open loop: wait for a reply, but no later than the next call's send time.
                    let wait = due(mine[next]) > now ? Int32((due(mine[next]) - now + 999_999) / 1_000_000) : 0
                    if outstanding == 0 {
                        if wait > 0 { usleep(UInt32(wait) * 1000) }
                        continue
                    }
                    var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                    if poll(&descriptor, 1, wait) <= 0 { continue }
                }
                let count = input.writeWithUnsafeMutableBytes(minimumWritableBytes: 64 * 1024) { read(fd, $0.baseAddress!, $0.count) }
                guard count > 0 else {
                    fail(count == 0 ? "the server closed the connection" : "read: \(String(cString: strerror(errno)))")
                    return result
                }
                let arrived = LoadGenerator.nanos()
                while let frame = try? Framing.readFrame(&input, maxFrameBytes: Framing.defaultMaxFrameBytes) {
                    guard let reply = try? Envelope(frame: frame), reply.id > connection,
                          case let local = Int(reply.id - 1 - UInt64(connection)) / connections, local < mine.count
                    else {
                        fail("a reply that is not an envelope for this connection")
                        return result
                    }
                    answered += 1
                    outstanding -= 1
                    _ = result.histogram.record(max((arrived - sentAt[local]) / 1000, 1))
                    if let status = reply.status, status.code != .ok {
                        result.errors += 1
                        result.firstError = result.firstError ?? "\(status.code): \(status.message)"
                    } else {
                        result.outcomes[inspect(reply.body), default: 0] += 1
                        replies.set(mine[local], arrived)
                    }
                }
                input.discardReadBytes()
            }
            return result
        }

        private func writeAll(_ bytes: [UInt8]) -> Bool { HTTPLoad.writeAll(fd, bytes) }
    }
}
