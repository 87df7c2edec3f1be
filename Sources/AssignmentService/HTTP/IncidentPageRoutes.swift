import HTTPOperations
import HTTPTypes
import Hummingbird
import NIOCore

/// The one-tap link routes on Assignment's HTTP listener (`IncidentPage`): `GET /i/<token>`,
/// `POST /i/<token>` (the page's buttons), `POST /i/<token>/ack` (push actions, webhooks).
enum IncidentPageRoutes {
    static let maxBody = 8 * 1024

    static func add(to router: Router<BasicRequestContext>, page: IncidentPage?) {
        guard let page else {
            let off = "one-tap links are not served here: set KLAXON_PUBLIC_URL and KLAXON_LINK_SIGNING_KEY\n"
            router.get("/i/:token") { _, _ in OperationsRoutes.text(.notFound, off) }
            router.post("/i/:token") { _, _ in OperationsRoutes.text(.notFound, off) }
            router.post("/i/:token/ack") { _, _ in OperationsRoutes.text(.notFound, off) }
            return
        }
        router.get("/i/:token") { request, context -> Response in
            let token = context.parameters.get("token") ?? ""
            return response(await page.show(token: token, notice: IncidentPage.notice(done: request.uri.queryParameters.get("done"))))
        }
        router.post("/i/:token") { request, context -> Response in
            let token = context.parameters.get("token") ?? ""
            let body: ByteBuffer
            do {
                body = try await request.body.collect(upTo: maxBody)
            } catch {
                return OperationsRoutes.text(.contentTooLarge, "the form is over \(maxBody) bytes\n")
            }
            let form = ChatCommands.form(String(buffer: body))
            return response(await page.act(token: token, form: form, cookie: request.headers[.cookie]))
        }
        router.post("/i/:token/ack") { _, context -> Response in
            response(await page.acknowledge(token: context.parameters.get("token") ?? ""))
        }
    }

    static func response(_ answer: IncidentPage.Answer) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = answer.contentType
        for (name, value) in answer.headers {
            if let field = HTTPField.Name(name) { headers[field] = value }
        }
        return Response(status: HTTPResponse.Status(code: answer.status), headers: headers, body: .init(byteBuffer: ByteBuffer(string: answer.body)))
    }
}
