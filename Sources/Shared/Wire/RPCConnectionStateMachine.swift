import NIOCore

/// What one server connection does with its calls, as a value: requests read but not started,
/// calls in flight, whether reading is held back, whether it is closing. Each event returns the
/// actions to take; the channel handler only carries them out, so every rule here is tested
/// without sockets (RPCConnectionStateMachineTests).
///
/// Rules: at most `maxInFlight` calls run at once; past that, requests already read wait and the
/// connection stops reading (backpressure, nothing dropped). A refusal (malformed envelope or
/// frame, too many connections) is answered once, reading stops, and the connection closes when
/// the calls before it are answered. Graceful shutdown: stop reading, answer what was read, close.
/// A peer that does not read its replies (the channel is not writable: replies pile up in its
/// outbound buffer) is not read from until it does, so unread replies cannot grow without bound.
struct RPCConnectionStateMachine {
    struct Actions: Equatable {
        /// Calls to start now, in order.
        var start: [Envelope] = []
        /// Ask the channel for more bytes.
        var read = false
        /// Answer with this status (envelope id 0) before anything else.
        var reject: RPCStatus?
        var close = false
    }

    let maxInFlight: Int
    private(set) var pending = CircularBuffer<Envelope>()
    private(set) var inFlight = 0
    private(set) var readHeld = false
    private(set) var closing = false
    private(set) var writable = true

    init(maxInFlight: Int) {
        self.maxInFlight = max(1, maxInFlight)
    }

    mutating func received(_ request: Envelope) -> Actions {
        guard !closing else { return Actions() }
        pending.append(request)
        return startPending()
    }

    /// A malformed envelope, a bad frame or a refused connection.
    mutating func refuse(_ status: RPCStatus) -> Actions {
        guard !closing else { return Actions() }
        closing = true
        pending.removeAll()
        return Actions(reject: status, close: inFlight == 0)
    }

    /// The channel asks whether to read: true to read now; otherwise reading resumes when a slot frees.
    mutating func readRequested() -> Bool {
        if closing { return false }
        if inFlight >= maxInFlight || !pending.isEmpty || !writable {
            readHeld = true
            return false
        }
        return true
    }

    /// The channel's outbound buffer crossed its high (false) or low (true) watermark.
    mutating func writabilityChanged(_ writable: Bool) -> Actions {
        self.writable = writable
        return startPending()
    }

    mutating func finished() -> Actions {
        inFlight -= 1
        var actions = startPending()
        actions.close = closing && inFlight == 0 && pending.isEmpty
        return actions
    }

    mutating func quiesce() -> Actions {
        guard !closing else { return Actions() }
        closing = true
        return Actions(close: inFlight == 0 && pending.isEmpty)
    }

    mutating func closed() {
        closing = true
        pending.removeAll()
    }

    private mutating func startPending() -> Actions {
        var actions = Actions()
        while inFlight < maxInFlight, let request = pending.popFirst() {
            inFlight += 1
            actions.start.append(request)
        }
        if readHeld, inFlight < maxInFlight, pending.isEmpty, writable, !closing {
            readHeld = false
            actions.read = true
        }
        return actions
    }
}
