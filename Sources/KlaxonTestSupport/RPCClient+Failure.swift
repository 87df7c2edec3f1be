import Shared

extension RPCClient {
    /// The RPCError a call fails with, or nil when it succeeds: for asserting refusals.
    public func failure<Reply: WireMessage>(_ method: String, _ request: some WireMessage, as reply: Reply.Type) async -> RPCError? {
        do {
            _ = try await call(method, request, as: reply)
            return nil
        } catch let error as RPCError {
            return error
        } catch {
            return RPCError(.unknown, "\(error)")
        }
    }
}
