import Foundation

/// A heartbeat monitor's rules (PRODUCT.md, "Heartbeat monitors"): pure, `now` comes in as a
/// value. A job pings on success (or `start`, `fail`, an exit code, `log`); the monitor is down
/// when no success came by the deadline — last success + period + grace, or the cron schedule's
/// next expected run + grace — when a start had no success within the start timeout, or on a
/// failure. A new monitor is armed by its first ping.
public struct HeartbeatMonitor: Sendable, Equatable {
    public enum Status: String, Sendable, CaseIterable {
        /// Never pinged: nothing is expected yet.
        case new
        case up
        /// A start came; its success is awaited.
        case started
        case down
    }

    public enum Signal: Sendable, Equatable {
        case success, start, fail, log
        /// `/{exit code}`: 0 is a success, anything else a failure.
        case exitCode(Int)

        public var name: String {
            switch self {
            case .success: "success"
            case .start: "start"
            case .fail: "fail"
            case .log: "log"
            case let .exitCode(code): "exit \(code)"
            }
        }
    }

    /// What a ping or a deadline does beyond the monitor's own row.
    public enum Effect: Sendable, Equatable {
        /// Trigger the incident `heartbeat:{id}`: why, in words.
        case trigger(reason: String)
        /// Resolve it.
        case resolve
    }

    public static let maxBody = 10 * 1024
    public static let periodRange: ClosedRange<UInt32> = 60...(366 * 86_400)
    public static let graceRange: ClosedRange<UInt32> = 0...(30 * 86_400)

    public var periodSeconds: UInt32
    public var cron: CronSchedule?
    public var timeZone: String
    public var graceSeconds: UInt32
    /// 0 = no start timeout.
    public var startTimeoutSeconds: UInt32

    public var status: Status = .new
    public var startedAt: Millis?
    public var lastPingAt: Millis?
    public var lastPingKind = ""
    public var lastPingBody = ""
    public var lastSuccessAt: Millis?
    public var deadline: Millis?
    public var downReason = ""

    public init(periodSeconds: UInt32, cron: CronSchedule? = nil, timeZone: String = "UTC", graceSeconds: UInt32, startTimeoutSeconds: UInt32 = 0) {
        self.periodSeconds = periodSeconds
        self.cron = cron
        self.timeZone = timeZone
        self.graceSeconds = graceSeconds
        self.startTimeoutSeconds = startTimeoutSeconds
    }

    var zone: TimeZone { TimeZone(identifier: timeZone) ?? TimeZone(identifier: "UTC")! }

    /// When a success at `at` next has to be followed by another: the next expected run
    /// (period later, or the cron schedule's next run) plus grace.
    public func successDeadline(after at: Millis) -> Millis? {
        let grace = Millis(graceSeconds) * 1000
        if let cron { return cron.next(after: at, in: zone).map { $0 + grace } }
        return at + Millis(periodSeconds) * 1000 + grace
    }

    /// A ping at `now`, with its body (cut to 10 KiB).
    public mutating func ping(_ signal: Signal, body: String, at now: Millis) -> Effect? {
        lastPingAt = now
        lastPingKind = signal.name
        lastPingBody = body.utf8.count <= Self.maxBody ? body : String(decoding: Array(body.utf8.prefix(Self.maxBody)), as: UTF8.self)
        switch signal {
        case .log:
            return nil
        case .success, .exitCode(0):
            let wasDown = status == .down
            status = .up
            startedAt = nil
            lastSuccessAt = now
            downReason = ""
            deadline = successDeadline(after: now)
            return wasDown ? .resolve : nil
        case .start:
            if status == .down { startedAt = now; return nil }  // still down until a success
            startedAt = now
            status = .started
            if startTimeoutSeconds > 0 {
                let startDeadline = now + Millis(startTimeoutSeconds) * 1000
                deadline = min(deadline ?? startDeadline, startDeadline)
            }
            return nil
        case .fail, .exitCode:
            let wasDown = status == .down
            status = .down
            deadline = nil
            startedAt = nil
            downReason = signal == .fail ? "the job reported a failure" : "the job exited with code \(Self.code(signal))"
            return wasDown ? nil : .trigger(reason: downReason)
        }
    }

    static func code(_ signal: Signal) -> Int { if case let .exitCode(code) = signal { code } else { 0 } }

    /// The deadline at `now`: down, and what the incident says.
    public mutating func deadlinePassed(at now: Millis) -> Effect? {
        guard let deadline, deadline <= now, status == .up || status == .started else { return nil }
        if status == .started, let startedAt, startTimeoutSeconds > 0, deadline == startedAt + Millis(startTimeoutSeconds) * 1000 {
            downReason = "started \(Self.seconds(now - startedAt)) ago with no success within the start timeout of \(startTimeoutSeconds) s"
        } else if let lastSuccessAt {
            downReason = "no success ping since \(RFC3339.string(millis: lastSuccessAt)) (expected by \(RFC3339.string(millis: deadline)), grace \(graceSeconds) s)"
        } else {
            downReason = "no success ping since it was armed (expected by \(RFC3339.string(millis: deadline)))"
        }
        status = .down
        self.deadline = nil
        return .trigger(reason: downReason)
    }

    /// Klaxon itself could not watch from `lastChecked` to `now` (an outage, an upgrade): a
    /// deadline that fell in that gap gives the job a whole period plus grace from `now` before
    /// it counts as missed, instead of every monitor paging at once.
    public mutating func afterOutage(lastChecked: Millis, now: Millis) {
        guard let deadline, deadline <= now, deadline > lastChecked - 1 else { return }
        if status == .started, let startedAt, startTimeoutSeconds > 0, deadline == startedAt + Millis(startTimeoutSeconds) * 1000 {
            self.deadline = now + Millis(startTimeoutSeconds) * 1000
            self.startedAt = now
        } else {
            self.deadline = successDeadline(after: now)
        }
    }

    static func seconds(_ ms: Millis) -> String { "\(ms / 1000) s" }
}
