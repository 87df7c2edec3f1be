import NIOConcurrencyHelpers

/// The bytes of large frames still being received, across every binary listener of a process
/// (`KLAXON_RPC_INBOUND_BUDGET_BYTES`, default 64 MiB). A frame announcing more than
/// `smallFrameBytes` reserves its length when its header arrives and gives it back when it is
/// complete or its connection ends; while the budget is used up such a frame is refused at once
/// (RESOURCE_EXHAUSTED) and small frames still flow. So however many connections announce large
/// frames and trickle them, what they can make the process hold is the budget, not
/// connections × frame limit.
public final class InboundBudget: Sendable {
    public static let defaultBytes = 64 * 1024 * 1024
    /// Frames up to this are never refused for the budget (a trigger is a few hundred bytes).
    public static let smallFrameBytes = 64 * 1024

    public let limit: Int
    private struct State {
        var used = 0
        var loggedPeers: Set<String> = []
    }

    private let state = NIOLockedValueBox(State())

    public init(limit: Int) {
        self.limit = limit
    }

    private static let registry = NIOLockedValueBox<[Int: InboundBudget]>([:])

    /// The process's budget of this size: every listener configured alike shares one.
    public static func process(limit: Int = defaultBytes) -> InboundBudget {
        registry.withLockedValue { registry in
            if let existing = registry[limit] { return existing }
            let made = InboundBudget(limit: limit)
            registry[limit] = made
            return made
        }
    }

    /// Bytes reserved now.
    public var used: Int { state.withLockedValue { $0.used } }

    /// Takes `bytes` if they fit.
    func reserve(_ bytes: Int) -> Bool {
        state.withLockedValue { state in
            guard state.used + bytes <= limit else { return false }
            state.used += bytes
            return true
        }
    }

    func release(_ bytes: Int) {
        state.withLockedValue { state in
            state.used -= bytes
            if state.used == 0 { state.loggedPeers.removeAll() }
        }
    }

    /// True the first time `peer` is refused since the budget was last fully free (one log line
    /// per peer, not one per connection).
    func firstRefusal(of peer: String) -> Bool {
        state.withLockedValue { state in
            if state.loggedPeers.count >= 1024 { return false }
            return state.loggedPeers.insert(peer).inserted
        }
    }
}
