import Logging
import NIOCore
import NIOEmbedded
import NIOTestUtils
@testable import Shared
import KlaxonTestSupport
import Testing

@Suite struct FramingTests {
    static func frame(_ payload: [UInt8]) -> ByteBuffer {
        var buffer = ByteBuffer()
        Framing.writeFrame(payload, into: &buffer)
        return buffer
    }

    @Test func decodesEveryFragmentationOfSeveralFrames() throws {
        let payloads: [[UInt8]] = [[1], Array("hello".utf8), Array(repeating: 0xAB, count: 300)]
        let inputs = payloads.map { (Self.frame($0), [ByteBuffer(bytes: $0)]) }
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: inputs) {
            FrameDecoder(maxFrameBytes: 1024)
        }
    }

    @Test func zeroLengthFrameIsRefused() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(maxFrameBytes: 1024)))
        #expect(throws: FrameError.empty) {
            try channel.writeInbound(ByteBuffer(bytes: [0, 0, 0, 0]))
        }
        #expect(try channel.readInbound(as: ByteBuffer.self) == nil)
    }

    @Test func oversizedFrameIsRefusedBeforeItsBodyArrives() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(maxFrameBytes: 1024)))
        // Only the header: the decoder must not wait for (or buffer) the 1025 bytes.
        #expect(throws: FrameError.tooLarge(length: 1025, limit: 1024)) {
            try channel.writeInbound(ByteBuffer(bytes: [0, 0, 0x04, 0x01]))
        }
        #expect(FrameError.tooLarge(length: 1025, limit: 1024).status.code == .resourceExhausted)
    }

    @Test func garbageHeaderIsRefusedAsOversized() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(maxFrameBytes: 4 * 1024 * 1024)))
        #expect(throws: FrameError.tooLarge(length: 0xFFFF_FFFF, limit: 4 * 1024 * 1024)) {
            try channel.writeInbound(ByteBuffer(bytes: [0xFF, 0xFF, 0xFF, 0xFF, 0x13, 0x37]))
        }
    }

    /// The inbound budget: a large frame holds its announced length from its header to its end
    /// (or its connection's); a second one that does not fit is refused at its header; small
    /// frames never count; what was held comes back either way.
    @Test func largeFramesBeingReceivedAreHeldToTheBudget() throws {
        let budget = InboundBudget(limit: 200_000)
        func connection() -> EmbeddedChannel {
            EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(maxFrameBytes: 1 << 20, budget: budget)))
        }
        func header(_ length: Int) -> ByteBuffer {
            var buffer = ByteBuffer()
            buffer.writeInteger(UInt32(length), endianness: .big)
            buffer.writeRepeatingByte(1, count: 1000)
            return buffer
        }
        let first = connection(), second = connection(), third = connection()
        try first.writeInbound(header(150_000))
        #expect(budget.used == 150_000)
        #expect(throws: FrameError.overBudget(length: 100_000, budget: 200_000)) { try second.writeInbound(header(100_000)) }
        #expect(FrameError.overBudget(length: 100_000, budget: 200_000).status.code == .resourceExhausted)
        #expect(budget.used == 150_000, "a refused frame kept part of the budget")
        // A small frame flows whatever the budget.
        try third.writeInbound(Self.frame(Array(repeating: 9, count: InboundBudget.smallFrameBytes)))
        #expect(try third.readInbound(as: ByteBuffer.self)?.readableBytes == InboundBudget.smallFrameBytes)
        // The large frame completes: its share comes back.
        try first.writeInbound(ByteBuffer(repeating: 2, count: 149_000))
        #expect(try first.readInbound(as: ByteBuffer.self)?.readableBytes == 150_000)
        #expect(budget.used == 0)
        // A connection that ends mid-frame gives its share back too.
        let fourth = connection()
        try fourth.writeInbound(header(180_000))
        #expect(budget.used == 180_000)
        _ = try? fourth.finish()
        #expect(budget.used == 0)
    }

    @Test func frameAtExactlyTheLimitIsAccepted() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(maxFrameBytes: 16)))
        try channel.writeInbound(Self.frame(Array(repeating: 7, count: 16)))
        #expect(try channel.readInbound(as: ByteBuffer.self)?.readableBytes == 16)
        #expect(try channel.finish().isClean)
    }

    @Test func truncatedFrameYieldsNothing() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(maxFrameBytes: 1024)))
        var partial = Self.frame(Array("complete".utf8))
        partial.writeBytes([0, 0, 0, 10, 1, 2, 3])  // a second frame cut short
        try channel.writeInbound(partial)
        #expect(try channel.readInbound(as: ByteBuffer.self) == ByteBuffer(string: "complete"))
        #expect(try channel.readInbound(as: ByteBuffer.self) == nil)
        // At EOF the cut frame is dropped, never delivered as a short frame.
        _ = try? channel.finish()
        #expect(try channel.readInbound(as: ByteBuffer.self) == nil)
    }

    @Test func encoderPrefixesTheLength() throws {
        let channel = EmbeddedChannel(handler: MessageToByteHandler(FrameEncoder()))
        try channel.writeOutbound(ByteBuffer(string: "abc"))
        let written = try #require(try channel.readOutbound(as: ByteBuffer.self))
        #expect(Array(written.readableBytesView) == [0, 0, 0, 3] + Array("abc".utf8))
        #expect(try channel.finish().isClean)
    }
}

/// The connection handler under arbitrary input: valid calls, mutated and truncated frames,
/// random bytes. Nothing crashes, and everything it writes back is a well-formed reply frame.
@Suite struct ConnectionHandlerRobustnessTests {
    static let echo = RPCMethod<Event, EventResult>("klaxon.test.v1.Test/Echo")

    @Test func arbitraryInputNeverCrashesAndEveryReplyIsAnEnvelope() throws {
        var router = RPCRouter()
        router.registerOnLoop(Self.echo) { (event: Event, _, loop) in
            loop.makeSucceededFuture(EventResult(dedupKey: event.routingKey, incidentID: 1, outcome: .created))
        }
        let event = Event(routingKey: "r", eventAction: .trigger, payload: Payload(summary: "s", source: "s"))
        let envelope = Envelope(id: 7, method: Self.echo.name, body: event.wireBytes()).wireBytes()
        let frame = Array(FramingTests.frame(envelope).readableBytesView)
        var random = SplitMix(state: 2026)
        var replies = 0
        for _ in 0..<3_000 {
            var input: [UInt8] = []
            for _ in 0..<Int.random(in: 1...4, using: &random) {
                switch Int.random(in: 0..<4, using: &random) {
                case 0: input += frame
                case 1:  // a valid frame with a few bytes changed
                    var mutated = frame
                    for _ in 0..<Int.random(in: 1...4, using: &random) {
                        mutated[Int.random(in: 0..<mutated.count, using: &random)] = UInt8.random(in: 0...255, using: &random)
                    }
                    input += mutated
                case 2: input += frame.prefix(Int.random(in: 0..<frame.count, using: &random))
                default: input += (0..<Int.random(in: 1...64, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
                }
            }
            let (_, jobs) = AsyncStream.makeStream(of: RPCConnectionHandler.Job.self)
            let channel = EmbeddedChannel()
            try channel.pipeline.syncOperations.addHandler(MessageToByteHandler(FrameEncoder()))
            try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder(maxFrameBytes: 1024)))
            try channel.pipeline.syncOperations.addHandler(RPCConnectionHandler(
                router: router, middleware: [], maxInFlight: 2, refusal: nil, jobs: jobs, logger: Logger(label: "robustness", factory: { _ in SwiftLogNoOpLogHandler() })))
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
            _ = try? channel.writeInbound(ByteBuffer(bytes: input))
            channel.embeddedEventLoop.run()
            var output = ByteBuffer()
            while var part = try channel.readOutbound(as: ByteBuffer.self) { output.writeBuffer(&part) }
            while let reply = try Framing.readFrame(&output, maxFrameBytes: Framing.defaultMaxFrameBytes) {
                let decoded = try Envelope(frame: reply)
                #expect(decoded.status != nil)
                replies += 1
            }
            #expect(output.readableBytes == 0, "a partial reply frame was written")
            _ = try? channel.finish()
        }
        #expect(replies > 1_000)  // plenty of the inputs were answered, not just dropped
    }
}
