import Shared

extension RPCClient {
    /// The RPCError a call fails with, or nil when it succeeds: for asserting refusals.
    public func failure<Request, Reply>(_ method: RPCMethod<Request, Reply>, _ request: Request) async -> RPCError? {
        do {
            _ = try await call(method, request)
            return nil
        } catch let error as RPCError {
            return error
        } catch {
            return RPCError(.unknown, "\(error)")
        }
    }
}
