import HTTPOperations
import HTTPTypes
import Hummingbird
import NIOCore

/// `POST /chat/slack` on Assignment's HTTP listener: the body (at most 64 KiB, Slack's are a few
/// KB) and the signature headers go to `ChatCommands`, its answer back as the HTTP reply.
enum ChatRoute {
    static let maxBody = 64 * 1024

    static func add(to router: Router<BasicRequestContext>, chat: ChatCommands) {
        router.post("/chat/slack") { request, _ -> Response in
            let body: ByteBuffer
            do {
                body = try await request.body.collect(upTo: maxBody)
            } catch {
                return OperationsRoutes.text(.contentTooLarge, "the request body is over \(maxBody) bytes\n")
            }
            let answer = await chat.handle(
                timestamp: request.headers[HTTPField.Name("X-Slack-Request-Timestamp")!],
                signature: request.headers[HTTPField.Name("X-Slack-Signature")!], body: Array(buffer: body))
            var headers = HTTPFields()
            headers[.contentType] = answer.contentType
            return Response(
                status: HTTPResponse.Status(code: answer.status), headers: headers, body: .init(byteBuffer: ByteBuffer(string: answer.body)))
        }
    }

    /// Without chat commands configured, the route says so.
    static func addOff(to router: Router<BasicRequestContext>) {
        router.post("/chat/slack") { _, _ -> Response in OperationsRoutes.text(.notFound, "chat commands are not served here\n") }
    }
}
