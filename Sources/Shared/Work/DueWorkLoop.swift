import KlaxonDomain
import Logging
import ServiceLifecycle

/// Runs `step` whenever work may be due: at the earliest due instant it reported, on a poke, and
/// at least every `maxSleep` (work written by other replicas pokes only them). A failing step is
/// logged and retried after `errorBackoff`. Ends on graceful shutdown or cancellation.
public struct DueWorkLoop: Sendable {
    public var name: String
    public var clock: any WallClock
    public var waker: Waker
    public var maxSleep: Duration = .seconds(2)
    public var errorBackoff: Duration = .milliseconds(500)
    /// Run the step once more after a graceful shutdown began (an outbox relay delivers what the
    /// last calls wrote, as far as its peer still answers; what it cannot stays for the next start).
    public var finalStepOnShutdown = false
    public var logger: Logger

    public init(name: String, clock: any WallClock, waker: Waker, logger: Logger) {
        self.name = name
        self.clock = clock
        self.waker = waker
        self.logger = logger
    }

    /// `step` does the work due at `now` and returns the next due instant, if it knows one.
    public func run(_ step: @escaping @Sendable (_ now: Millis) async throws -> Millis?) async {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                var wakeAt: Millis
                do {
                    let now = clock.nowMs()
                    wakeAt = now + maxSleep.milliseconds
                    waker.setBusy(true)
                    defer { waker.setBusy(false) }
                    if let next = try await step(now) { wakeAt = min(wakeAt, max(next, now)) }
                } catch is CancellationError {
                    return
                } catch {
                    logger.error("work loop step failed", metadata: ["loop": "\(name)", "error": "\(error)"])
                    wakeAt = clock.nowMs() + errorBackoff.milliseconds
                }
                if wakeAt > clock.nowMs() { await waker.wait(until: wakeAt, on: clock) }
            }
        }
        // Graceful shutdown (not cancellation): one last step, if asked.
        guard finalStepOnShutdown, !Task.isCancelled else { return }
        do {
            _ = try await step(clock.nowMs())
        } catch {
            logger.info("final step at shutdown did not complete; its work stays for the next start", metadata: [
                "loop": "\(name)", "error": "\(error)"])
        }
    }
}
