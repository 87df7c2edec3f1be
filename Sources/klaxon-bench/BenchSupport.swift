import Foundation
import AssignmentService
import KlaxonTestSupport
import NIOConcurrencyHelpers
import Shared

#if canImport(Glibc)
import Glibc
#endif

/// The webhook sink of the end-to-end benchmark: records when each page arrives (monotonic
/// nanoseconds, the load generator's clock), keyed by the incident's dedup key (Klaxon's
/// webhook) or the alert's `seq` label (Alertmanager's webhook). Bodies are not kept.
final class ArrivalSink: Sendable {
    struct Arrival: Sendable {
        var key: String
        var path: String
        var nanos: UInt64
    }

    private let sink: HTTPSink
    /// Key prefix (the key up to its last "-") → arrivals.
    private let arrived: NIOLockedValueBox<[String: [Arrival]]>

    private init(sink: HTTPSink, arrived: NIOLockedValueBox<[String: [Arrival]]>) {
        self.sink = sink
        self.arrived = arrived
    }

    static func start() async throws -> ArrivalSink {
        let arrived = NIOLockedValueBox([String: [Arrival]]())
        let sink = try await HTTPSink.start(keepRequests: false) { request in
            let now = LoadGenerator.nanos()
            guard let key = Self.key(in: request.body) else { return }
            let prefix = key.lastIndex(of: "-").map { String(key[..<$0]) } ?? key
            arrived.withLockedValue { $0[prefix, default: []].append(Arrival(key: key, path: request.uri, nanos: now)) }
        }
        return ArrivalSink(sink: sink, arrived: arrived)
    }

    var port: Int { sink.port }
    var url: String { sink.url }

    func shutdown() async { await sink.shutdown() }

    /// Waits until `pages` arrivals with this prefix (at `paths`, when given) or the timeout;
    /// returns their instants.
    func wait(prefix: String, pages: Int, timeout: Duration, paths: Set<String>? = nil) async -> [UInt64] {
        let end = ContinuousClock.now + timeout
        while true {
            let found = arrivals(prefix: prefix, paths: paths).flatMap(\.value)
            if found.count >= pages || ContinuousClock.now >= end { return found }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Key → arrival instants.
    func arrivals(prefix: String, paths: Set<String>?) -> [String: [UInt64]] {
        let list = arrived.withLockedValue { $0[prefix] ?? [] }
        var byKey: [String: [UInt64]] = [:]
        for arrival in list where paths?.contains(arrival.path) ?? true {
            byKey[arrival.key, default: []].append(arrival.nanos)
        }
        return byKey
    }

    /// The value of `"dedup_key":"…"` or `"seq":"…"` in a JSON body, without parsing it all.
    static func key(in body: [UInt8]) -> String? {
        for marker in [Array(#""dedup_key":""#.utf8), Array(#""seq":""#.utf8)] {
            guard let start = find(marker, in: body) else { continue }
            var end = start
            while end < body.count, body[end] != UInt8(ascii: "\"") { end += 1 }
            return String(decoding: body[start..<end], as: UTF8.self)
        }
        // A Twilio-style form post (an SMS): the title starts "k:<key> ", form-encoded "k%3A<key>%20"
        // (or "+" for a space).
        if let start = find(Array("k%3A".utf8), in: body) {
            var end = start
            while end < body.count, !"+&%".utf8.contains(body[end]) { end += 1 }
            return String(decoding: body[start..<end], as: UTF8.self)
        }
        return nil
    }

    /// The index just past the first occurrence of `marker`.
    private static func find(_ marker: [UInt8], in body: [UInt8]) -> Int? {
        guard body.count >= marker.count else { return nil }
        var i = 0
        while i <= body.count - marker.count {
            if body[i] == marker[0], Array(body[i..<(i + marker.count)]) == marker { return i + marker.count }
            i += 1
        }
        return nil
    }
}

/// The services under test, as child processes of the benchmark.
final class ServiceCluster: @unchecked Sendable {
    struct Child {
        var name: String
        var process: ChildProcess

        /// VmHWM: the most resident memory the process has held.
        func peakRSSKiB() -> Int {
            guard let status = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8) else { return 0 }
            let line = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") } ?? ""
            return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
        }
    }

    private(set) var processes: [Child] = []
    let ingestPort: Int
    let environment: [String: String]

    private init(ingestPort: Int, environment: [String: String]) {
        self.ingestPort = ingestPort
        self.environment = environment
    }

    static func start(
        layout: BenchE2ECommand.Layout, databaseURL: String, poolSize: Int, extra: [String: String] = [:]
    ) async throws -> ServiceCluster {
        var ports: [Int] = []
        for _ in 0..<4 { ports.append(try await BenchIngestCommand.freePort()) }
        var config = KlaxonConfig(databaseURL: databaseURL)
        // The benchmark's own environment chooses the pages' HTTP client (before/after issue 29).
        config.pagesHTTPClient = ProcessInfo.processInfo.environment["KLAXON_PAGES_HTTP_CLIENT"] ?? config.pagesHTTPClient
        config.databasePoolSize = poolSize
        config.ingestListen = HostPort(host: "127.0.0.1", port: ports[0])
        config.ingestHTTPListen = HostPort(host: "127.0.0.1", port: ports[1])
        config.assignmentListen = HostPort(host: "127.0.0.1", port: ports[2])
        config.notifierListen = HostPort(host: "127.0.0.1", port: ports[3])
        config.assignmentAddress = config.assignmentListen
        config.notifierAddress = config.notifierListen
        // HTTP listeners the benchmark does not use: any free port (replicas must not collide).
        config.assignmentHTTPListen = HostPort(host: "127.0.0.1", port: 0)
        config.notifierHTTPListen = HostPort(host: "127.0.0.1", port: 0)
        var environment = ProcessInfo.processInfo.environment.merging(config.environment) { _, new in new }.merging(extra) { _, new in new }
        environment["KLAXON_LOG_LEVEL"] = environment["KLAXON_BENCH_LOG_LEVEL"] ?? "error"
        let cluster = ServiceCluster(ingestPort: ports[0], environment: environment)
        switch layout {
        case .serve:
            try cluster.spawn("klaxon serve", ["serve"], environment)
        case .separate:
            try cluster.spawn("ingest", ["serve", "ingest"], environment)
            try cluster.spawn("assignment", ["serve", "assignment"], environment)
            try cluster.spawn("notifier", ["serve", "notifier"], environment)
        }
        for port in [ports[0], ports[2], ports[3]] { try await waitForPort(port, what: "klaxon") }
        return cluster
    }

    /// A second Assignment process: timers are claimed with SKIP LOCKED, so none fires twice.
    func addAssignmentReplica() async throws {
        var environment = self.environment
        let port = try await BenchIngestCommand.freePort()
        environment["KLAXON_ASSIGNMENT_LISTEN"] = "127.0.0.1:\(port)"
        try spawn("assignment replica", ["serve", "assignment"], environment)
        try await Self.waitForPort(port, what: "the Assignment replica")
    }

    private func spawn(_ name: String, _ arguments: [String], _ environment: [String: String]) throws {
        let process = ChildProcess()
        process.executableURL = KlaxonBench.productBinary
        process.arguments = arguments
        process.environment = environment
        try process.run()
        processes.append(Child(name: name, process: process))
    }

    func stop() {
        for child in processes where child.process.isRunning { child.process.terminate() }
        for child in processes {
            let end = Date().addingTimeInterval(20)
            while child.process.isRunning, Date() < end { usleep(50_000) }
            child.process.signal(SIGKILL)
        }
        processes.removeAll()
    }

    static func waitForPort(_ port: Int, what: String) async throws {
        let end = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < end {
            if let fd = try? LoadGenerator.connect(port: port) {
                close(fd)
                return
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw BenchError("\(what) did not listen on 127.0.0.1:\(port) within 60 s")
    }
}

/// A plain HTTP/1.1 client on blocking sockets with keep-alive, for the sink's capacity and for
/// Alertmanager's API.
enum HTTPLoad {
    struct Report {
        var startNanos: UInt64
        var seconds: Double
        var errors: Int
        var replyNanos: [UInt64]
        var rate: Double { Double(replyNanos.count) / seconds }
    }

    static func request(path: String, body: String, headers: String = "") -> [UInt8] {
        Array("POST \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\(headers)Content-Length: \(body.utf8.count)\r\n\r\n\(body)".utf8)
    }

    /// Requests/s the sink answers: `connections` connections, 32 requests pipelined at a time,
    /// each a page-sized body.
    static func capacity(port: Int, requests: Int, connections: Int) throws -> Double {
        let body = #"{"dedup_key":"capacity-0","padding":""# + String(repeating: "x", count: 900) + #""}"#
        let one = request(path: "/capacity", body: body)
        let window = 32
        let batch = Array((0..<window).map { _ in one }.joined())
        let start = LoadGenerator.nanos()
        let done = DispatchGroup()
        let failures = NIOLockedValueBox(0)
        for _ in 0..<connections {
            done.enter()
            let thread = Thread {
                defer { done.leave() }
                guard let fd = try? LoadGenerator.connect(port: port) else { failures.withLockedValue { $0 += 1 }; return }
                defer { close(fd) }
                var reader = ResponseReader(fd: fd)
                for _ in 0..<(requests / connections / window) {
                    guard writeAll(fd, batch) else { failures.withLockedValue { $0 += 1 }; return }
                    for _ in 0..<window where reader.next() == nil { failures.withLockedValue { $0 += 1 }; return }
                }
            }
            thread.start()
        }
        done.wait()
        guard failures.withLockedValue({ $0 }) == 0 else { throw BenchError("the sink's capacity run failed") }
        return Double(requests / connections / window * connections * window) / (Double(LoadGenerator.nanos() - start) / 1e9)
    }

    /// POSTs `count` bodies over `connections` keep-alive connections, one request at a time on
    /// each; with a rate, request i is sent no earlier than start + i / rate (open loop).
    static func post(
        port: Int, path: String, count: Int, connections: Int, rate: Double?, headers: String = "", body: @escaping @Sendable (Int) -> String
    ) throws -> Report {
        let requests = (0..<count).map { request(path: path, body: body($0), headers: headers) }
        let replies = LoadGenerator.ReplyTimes(count: count)
        let errors = NIOLockedValueBox(0)
        let start = LoadGenerator.nanos()
        let done = DispatchGroup()
        for c in 0..<connections {
            done.enter()
            let thread = Thread {
                defer { done.leave() }
                guard let fd = try? LoadGenerator.connect(port: port) else { errors.withLockedValue { $0 += 1 }; return }
                defer { close(fd) }
                var reader = ResponseReader(fd: fd)
                for index in stride(from: c, to: count, by: connections) {
                    if let rate {
                        let due = start + UInt64(Double(index) / rate * 1e9)
                        let now = LoadGenerator.nanos()
                        if due > now { usleep(UInt32((due - now) / 1000)) }
                    }
                    guard writeAll(fd, requests[index]), let status = reader.next() else {
                        errors.withLockedValue { $0 += 1 }
                        return
                    }
                    if (200..<300).contains(status) { replies.set(index, LoadGenerator.nanos()) } else { errors.withLockedValue { $0 += 1 } }
                }
            }
            thread.start()
        }
        done.wait()
        let seconds = Double(LoadGenerator.nanos() - start) / 1e9
        let values = replies.values
        return Report(startNanos: start, seconds: seconds, errors: errors.withLockedValue { $0 }, replyNanos: values)
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let written = write(fd, raw.baseAddress! + offset, raw.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                offset += written
            }
            return true
        }
    }

    /// Reads HTTP/1.1 responses (Content-Length framed) off a keep-alive connection.
    struct ResponseReader {
        var fd: Int32
        var buffer: [UInt8] = []

        init(fd: Int32) { self.fd = fd }

        /// The next response's status, or nil when the connection failed.
        mutating func next() -> Int? {
            while true {
                if let end = headerEnd() {
                    let head = String(decoding: buffer[0..<end], as: UTF8.self)
                    let lines = head.split(separator: "\r\n")
                    let status = lines.first.flatMap { Int($0.split(separator: " ").dropFirst().first ?? "") } ?? 0
                    let length = lines.dropFirst().compactMap { line -> Int? in
                        let parts = line.split(separator: ":", maxSplits: 1)
                        guard parts.count == 2, parts[0].lowercased() == "content-length" else { return nil }
                        return Int(parts[1].trimmingCharacters(in: .whitespaces))
                    }.first ?? 0
                    let total = end + 4 + length
                    if buffer.count >= total {
                        buffer.removeFirst(total)
                        return status
                    }
                }
                var chunk = [UInt8](repeating: 0, count: 65_536)
                let count = read(fd, &chunk, chunk.count)
                if count <= 0 { return nil }
                buffer.append(contentsOf: chunk[0..<count])
            }
        }

        private func headerEnd() -> Int? {
            guard buffer.count >= 4 else { return nil }
            for i in 0...(buffer.count - 4)
            where buffer[i] == 13 && buffer[i + 1] == 10 && buffer[i + 2] == 13 && buffer[i + 3] == 10 {
                return i
            }
            return nil
        }
    }
}

/// The benchmarks' services, made through the configuration API like any other: each with its
/// own users (one zero-delay webhook rule each) on a one-level policy, rate limit off.
enum BenchConfig {
    struct Person {
        var name: String
        var email: String
        var webhook: String?
    }

    struct Made {
        var routingKey: String
        var serviceID: Int64
        var userIDs: [Int64]
    }

    static func apply(
        _ pool: PostgresPool, services: [(name: String, people: [Person], ackTimeoutSeconds: Int)], now: Int64
    ) async throws -> [String: Made] {
        var users: [[String: Any]] = []
        var entries: [[String: Any]] = []
        var policies: [[String: Any]] = []
        var keys: [String: String] = [:]
        for service in services {
            for person in service.people {
                var user: [String: Any] = ["name": person.name, "email": person.email]
                if let webhook = person.webhook {
                    user["contact_methods"] = [["name": "hook", "type": "webhook", "address": webhook]]
                    user["notification_rules"] = [["contact_method": "hook", "start_delay_seconds": 0, "urgency": "high"]]
                }
                users.append(user)
            }
            policies.append([
                "name": "\(service.name) policy",
                "levels": [["escalation_delay_seconds": 3600, "targets": service.people.map { ["user": $0.email] }]],
            ])
            let key = Secrets.routingKey()
            keys[service.name] = key
            entries.append([
                "name": service.name, "escalation_policy": "\(service.name) policy", "ack_timeout_seconds": service.ackTimeoutSeconds,
                "events_per_minute": 0, "routing_keys": [["name": "bench", "key": key]],
            ])
        }
        let document: [String: Any] = ["users": users, "escalation_policies": policies, "services": entries]
        let json = String(decoding: try JSONSerialization.data(withJSONObject: document), as: UTF8.self)
        _ = try await Configuration.apply(pool, json: json, now: now)
        var made: [String: Made] = [:]
        for service in services {
            let key = keys[service.name]!
            made[service.name] = try await pool.withConnection { connection in
                let serviceID = try connection.query("SELECT service_id FROM routing_keys WHERE key = $1", [key]).int64(0, "service_id")!
                let emails = PGArray(service.people.map(\.email))
                let rows = try connection.query("SELECT id FROM users WHERE email = ANY($1::text[]) ORDER BY id", [emails])
                return Made(routingKey: key, serviceID: serviceID, userIDs: (0..<rows.count).map { rows.int64($0, "id")! })
            }
        }
        return made
    }
}

/// CPU time by process from the kernel's own accounting (/proc/PID/stat utime + stime, every
/// thread included), so a window's CPU can be split between PostgreSQL (every `postgres`
/// process, backends that started meanwhile too), Klaxon's services and this benchmark (the load
/// generator and the webhook sink). `/proc/stat` gives the whole machine's busy time beside it.
struct CPUAccount {
    /// CPU seconds per pid, with the process's name.
    var byPID: [Int32: (name: String, seconds: Double)] = [:]
    /// The machine's busy and total seconds (all cores).
    var machineBusy = 0.0
    var machineTotal = 0.0

    static let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))

    static func sample() -> CPUAccount {
        var account = CPUAccount()
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        for entry in entries {
            guard let pid = Int32(entry), let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")") else { continue }
            let name = String(stat[stat.index(after: open)..<close])
            // After ") ": state is field 3; utime and stime are fields 14 and 15.
            let fields = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
            guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { continue }
            account.byPID[pid] = (name, (user + system) / ticks)
        }
        if let stat = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
           let line = stat.split(separator: "\n").first(where: { $0.hasPrefix("cpu ") }) {
            let values = line.split(separator: " ").dropFirst().compactMap { Double($0) }
            if values.count >= 5 {
                account.machineTotal = values.prefix(8).reduce(0, +) / ticks
                account.machineBusy = account.machineTotal - (values[3] + values[4]) / ticks  // minus idle and iowait
            }
        }
        return account
    }

    struct Split {
        var postgres = 0.0, klaxon = 0.0, bench = 0.0, other = 0.0
        var machineBusy = 0.0, machineTotal = 0.0
        var wall = 0.0

        func describe() -> String {
            func part(_ seconds: Double) -> String {
                String(format: "%.2f s (%.0f%%)", seconds, machineBusy > 0 ? 100 * seconds / machineBusy : 0)
            }
            return "PostgreSQL \(part(postgres)), Klaxon \(part(klaxon)), load generator + sink \(part(bench)), other \(part(other)); "
                + String(format: "machine busy %.0f%% of %.0f core-seconds", machineTotal > 0 ? 100 * machineBusy / machineTotal : 0, machineTotal)
        }
    }

    /// What each group used between `self` (earlier) and `later`; a process that started
    /// meanwhile counts from zero.
    func split(to later: CPUAccount, klaxon: Set<Int32>, wall: Double) -> Split {
        var split = Split(machineBusy: later.machineBusy - machineBusy, machineTotal: later.machineTotal - machineTotal, wall: wall)
        let me = getpid()
        for (pid, entry) in later.byPID {
            let used = entry.seconds - (byPID[pid]?.seconds ?? 0)
            guard used > 0 else { continue }
            if klaxon.contains(pid) { split.klaxon += used }
            else if pid == me { split.bench += used }
            else if entry.name == "postgres" { split.postgres += used }
            else { split.other += used }
        }
        return split
    }
}
