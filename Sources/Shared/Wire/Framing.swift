import NIOCore

/// Why a frame was refused. The connection that sent it is closed after the reply.
public enum FrameError: Error, Equatable, Sendable, CustomStringConvertible {
    case empty
    case tooLarge(length: UInt32, limit: Int)
    /// A frame begun but not completed within the deadline (a slow or stalled sender).
    case incomplete(milliseconds: Int64)
    /// A large frame announced while the process's inbound budget is in use (`InboundBudget`).
    case overBudget(length: UInt32, budget: Int)

    public var description: String {
        switch self {
        case .empty: "frame length 0 is invalid"
        case let .tooLarge(length, limit): "frame of \(length) bytes exceeds the limit of \(limit) bytes"
        case let .incomplete(ms): "a frame was begun but not completed within " + (ms % 1000 == 0 ? "\(ms / 1000) s" : "\(ms) ms")
        case let .overBudget(length, budget):
            "frame of \(length) bytes refused: the server's budget of \(budget) bytes for large frames being received is in use; "
                + "retry shortly (frames up to \(InboundBudget.smallFrameBytes) bytes are always accepted)"
        }
    }

    public var status: RPCStatus {
        switch self {
        case .empty: RPCStatus(code: .invalidArgument, message: description)
        case .tooLarge, .overBudget: RPCStatus(code: .resourceExhausted, message: description)
        case .incomplete: RPCStatus(code: .deadlineExceeded, message: description)
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
/// With a `frameDeadline`, a frame begun must be complete within it, or `FrameError.incomplete`
/// is raised down the pipeline (the connection handler answers and closes): a client trickling
/// bytes cannot hold a connection forever.
/// With a `budget`, a frame announcing more than `InboundBudget.smallFrameBytes` must fit in it
/// while it is being received, or `FrameError.overBudget` is raised at once.
public struct FrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = ByteBuffer
    public let maxFrameBytes: Int
    public let frameDeadline: TimeAmount?
    public let budget: InboundBudget?
    private var deadline: Scheduled<Void>?
    private var armedAt: NIODeadline?
    /// What the frame being received holds of the budget.
    private var reserved = 0

    public init(maxFrameBytes: Int = Framing.defaultMaxFrameBytes, frameDeadline: TimeAmount? = nil, budget: InboundBudget? = nil) {
        self.maxFrameBytes = maxFrameBytes
        self.frameDeadline = frameDeadline
        self.budget = budget
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let frame = try Framing.readFrame(&buffer, maxFrameBytes: maxFrameBytes) else {
            try reserve(announced: buffer)
            armDeadline(context: context, partial: buffer.readableBytes > 0)
            return .needMoreData
        }
        deadline?.cancel()
        deadline = nil
        releaseReservation()
        context.fireChannelRead(Self.wrapInboundOut(frame))
        return .continue
    }

    /// A large frame's header has arrived and its body has not: it takes its length from the budget.
    private mutating func reserve(announced buffer: ByteBuffer) throws(FrameError) {
        guard let budget, reserved == 0,
              let length = buffer.getInteger(at: buffer.readerIndex, endianness: .big, as: UInt32.self),
              Int(length) > InboundBudget.smallFrameBytes
        else { return }
        guard budget.reserve(Int(length)) else { throw .overBudget(length: length, budget: budget.limit) }
        reserved = Int(length)
    }

    private mutating func releaseReservation() {
        guard reserved > 0 else { return }
        budget?.release(reserved)
        reserved = 0
    }

    private mutating func armDeadline(context: ChannelHandlerContext, partial: Bool) {
        guard let frameDeadline else { return }
        guard partial else {
            deadline?.cancel()
            deadline = nil
            return
        }
        // Armed and not yet due: keep it. (One that fired while the server held reading back is
        // not the peer's fault: it is armed again from now.)
        if deadline != nil, let armedAt, NIODeadline.now() < armedAt + frameDeadline { return }
        armedAt = NIODeadline.now()
        let milliseconds = frameDeadline.nanoseconds / 1_000_000
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        deadline = context.eventLoop.scheduleTask(in: frameDeadline) {
            bound.value.fireErrorCaught(FrameError.incomplete(milliseconds: milliseconds))
        }
    }

    public mutating func decoderRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
        releaseReservation()
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
