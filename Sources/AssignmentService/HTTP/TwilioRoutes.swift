import HTTPOperations
import HTTPTypes
import Hummingbird
import NIOCore

/// `POST /twilio/sms`, `/twilio/voice`, `/twilio/status` on Assignment's HTTP listener
/// (`TwilioReplies`); without Twilio configured they answer 404 saying so.
enum TwilioRoutes {
    static let maxBody = 16 * 1024

    static func add(to router: Router<BasicRequestContext>, replies: TwilioReplies?) {
        for endpoint in ["sms", "voice", "status"] {
            router.post("/twilio/\(endpoint)") { request, _ -> Response in
                guard let replies else {
                    return OperationsRoutes.text(.notFound, "Twilio is not configured here: set KLAXON_TWILIO_ACCOUNT_SID, KLAXON_TWILIO_AUTH_TOKEN, KLAXON_TWILIO_FROM\n")
                }
                let body: ByteBuffer
                do {
                    body = try await request.body.collect(upTo: maxBody)
                } catch {
                    return OperationsRoutes.text(.contentTooLarge, "the request body is over \(maxBody) bytes\n")
                }
                var query: [String: String] = [:]
                for (name, value) in request.uri.queryParameters { query[String(name)] = String(value) }
                let answer = await replies.handle(
                    endpoint, uri: request.uri.description, query: query, signature: request.headers[HTTPField.Name("X-Twilio-Signature")!],
                    body: String(buffer: body))
                var headers = HTTPFields()
                headers[.contentType] = answer.contentType
                return Response(
                    status: HTTPResponse.Status(code: answer.status), headers: headers, body: .init(byteBuffer: ByteBuffer(string: answer.body)))
            }
        }
    }
}
