import NIOCore
@testable import Shared
import Testing

/// The server connection's rules, without sockets.
@Suite struct RPCConnectionStateMachineTests {
    static func request(_ id: UInt64) -> Envelope { Envelope(id: id, method: "m") }

    @Test func startsUpToTheLimitThenHoldsReadsUntilASlotFrees() {
        var state = RPCConnectionStateMachine(maxInFlight: 2)
        let (one, two, three) = (state.received(Self.request(1)), state.received(Self.request(2)), state.received(Self.request(3)))
        #expect(one.start.map(\.id) == [1])
        #expect(two.start.map(\.id) == [2])
        #expect(three.start.isEmpty, "past the limit: waits, not dropped")
        let held = state.readRequested()
        #expect(held == false, "backpressure: no more reading")
        #expect(state.readHeld)
        let freed = state.finished()
        #expect(freed.start.map(\.id) == [3])
        #expect(freed.read == false, "still full")
        let again = state.finished()
        #expect(again.start.isEmpty && again.read, "a slot and nothing waiting: reading resumes")
        let reads = state.readRequested()
        #expect(reads)
    }

    @Test func aPeerThatDoesNotReadItsRepliesIsNotReadFrom() {
        var state = RPCConnectionStateMachine(maxInFlight: 64)
        #expect(state.received(Self.request(1)).start.map(\.id) == [1])
        // Replies pile up unread: the outbound buffer passes its high watermark.
        #expect(state.writabilityChanged(false) == .init())
        let reads = state.readRequested()
        #expect(reads == false, "not writable: stop reading though slots are free")
        // The peer reads: below the low watermark, reading resumes.
        #expect(state.writabilityChanged(true).read)
        let again = state.readRequested()
        #expect(again)
    }

    @Test func aRefusalIsAnsweredOnceAndClosesAfterTheCallsInFlight() {
        var state = RPCConnectionStateMachine(maxInFlight: 1)
        _ = state.received(Self.request(1))
        _ = state.received(Self.request(2))  // waiting
        let refused = state.refuse(RPCStatus(code: .invalidArgument, message: "malformed envelope"))
        #expect(refused.reject?.code == .invalidArgument)
        #expect(refused.close == false, "call 1 is still running")
        #expect(state.pending.isEmpty, "what was read after it is not run")
        let second = state.refuse(RPCStatus(code: .invalidArgument))
        #expect(second == .init(), "answered once")
        let late = state.received(Self.request(3))
        #expect(late == .init(), "nothing more is read")
        let readsAfter = state.readRequested()
        #expect(readsAfter == false)
        let done = state.finished()
        #expect(done.start.isEmpty && done.close)
    }

    @Test func gracefulShutdownAnswersWhatWasReadThenCloses() {
        var state = RPCConnectionStateMachine(maxInFlight: 1)
        _ = state.received(Self.request(1))
        _ = state.received(Self.request(2))
        let quiesced = state.quiesce()
        #expect(quiesced.close == false)
        let reads = state.readRequested()
        #expect(reads == false)
        let first = state.finished()
        #expect(first.start.map(\.id) == [2], "read before the shutdown: still answered")
        #expect(first.close == false)
        let last = state.finished()
        #expect(last.close)
        var idle = RPCConnectionStateMachine(maxInFlight: 1)
        let idleQuiesce = idle.quiesce()
        #expect(idleQuiesce.close, "nothing in flight: closes at once")
    }

    @Test func aRefusedConnectionWithNothingInFlightClosesAtOnce() {
        var state = RPCConnectionStateMachine(maxInFlight: 4)
        let refused = state.refuse(RPCStatus(code: .resourceExhausted, message: "too many connections"))
        #expect(refused.reject?.code == .resourceExhausted && refused.close)
    }
}
