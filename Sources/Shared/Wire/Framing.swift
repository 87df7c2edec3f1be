import NIOCore

/// Why a frame was refused. The connection that sent it is closed after the reply.
public enum FrameError: Error, Equatable, Sendable, CustomStringConvertible {
    case empty
    case tooLarge(length: UInt32, limit: Int)

    public var description: String {
        switch self {
        case .empty: "frame length 0 is invalid"
        case let .tooLarge(length, limit): "frame of \(length) bytes exceeds the limit of \(limit) bytes"
        }
    }

    public var status: RPCStatus {
        switch self {
        case .empty: RPCStatus(code: .invalidArgument, message: description)
        case .tooLarge: RPCStatus(code: .resourceExhausted, message: description)
        }
    }
}

public enum Framing {
    public static let defaultMaxFrameBytes = 4 * 1024 * 1024
    public static let headerBytes = 4

    /// Reads one frame off the front of `buffer`: nil when more bytes are needed. The length is
    /// checked against `maxFrameBytes` before the body arrives, so a peer cannot make us buffer
    /// more than the limit.
    public static func readFrame(_ buffer: inout ByteBuffer, maxFrameBytes: Int) throws(FrameError) -> ByteBuffer? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, endianness: .big, as: UInt32.self) else {
            return nil
        }
        guard length > 0 else { throw .empty }
        guard UInt64(length) <= UInt64(maxFrameBytes) else { throw .tooLarge(length: length, limit: maxFrameBytes) }
        guard buffer.readableBytes >= headerBytes + Int(length) else { return nil }
        buffer.moveReaderIndex(forwardBy: headerBytes)
        return buffer.readSlice(length: Int(length))
    }

    public static func writeFrame(_ payload: [UInt8], into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt32(payload.count), endianness: .big)
        buffer.writeBytes(payload)
    }
}

/// Splits the byte stream into frames: 4-byte big-endian length N (0 < N ≤ limit), N bytes.
public struct FrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = ByteBuffer
    public let maxFrameBytes: Int

    public init(maxFrameBytes: Int = Framing.defaultMaxFrameBytes) {
        self.maxFrameBytes = maxFrameBytes
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let frame = try Framing.readFrame(&buffer, maxFrameBytes: maxFrameBytes) else { return .needMoreData }
        context.fireChannelRead(Self.wrapInboundOut(frame))
        return .continue
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws
        -> DecodingState
    {
        // A truncated frame at EOF is dropped with the connection; whole frames still go through.
        while try decode(context: context, buffer: &buffer) == .continue {}
        return .needMoreData
    }
}

/// Prefixes each outbound envelope with its length.
public final class FrameEncoder: MessageToByteEncoder {
    public typealias OutboundIn = ByteBuffer
    public init() {}
    public func encode(data: ByteBuffer, out: inout ByteBuffer) throws {
        out.writeInteger(UInt32(data.readableBytes), endianness: .big)
        out.writeImmutableBuffer(data)
    }
}

extension Envelope {
    public init(frame: ByteBuffer) throws(WireError) {
        try self.init(wire: Array(frame.readableBytesView))
    }

    public func frameBuffer(allocator: ByteBufferAllocator = ByteBufferAllocator()) -> ByteBuffer {
        let bytes = wireBytes()
        var buffer = allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        return buffer
    }
}
