import NIOCore

/// Turns the flushes issued during one event-loop tick into one: with many pipelined calls in
/// flight, replies (or requests) leave in one write syscall instead of one each.
final class FlushCoalescer: ChannelOutboundHandler {
    typealias OutboundIn = Any
    private var flushPending = false

    func flush(context: ChannelHandlerContext) {
        guard !flushPending else { return }
        flushPending = true
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.assumeIsolated().execute {
            let (coalescer, context) = loopBound.value
            guard coalescer.flushPending else { return }  // a close already flushed
            coalescer.flushPending = false
            context.flush()
        }
    }

    /// Whatever was written goes out before the channel closes (e.g. the error reply to a bad frame).
    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        if flushPending {
            flushPending = false
            context.flush()
        }
        context.close(mode: mode, promise: promise)
    }
}
