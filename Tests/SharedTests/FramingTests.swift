import NIOCore
import NIOEmbedded
import NIOTestUtils
import Shared
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
