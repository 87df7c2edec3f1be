import Foundation
import HTTPOperations
import HTTPTypes
import Hummingbird
import IncidentEngine
import KlaxonDomain
import Logging
import NIOCore
import Shared

/// Assignment's HTTP listener: chat commands, schedule feeds, /healthz, /readyz.
public enum AssignmentHTTP {
    public static func application(
        pool: PostgresPool, readiness: Readiness, clock: any WallClock, listen: HostPort, logger: Logger, chat: ChatCommands? = nil,
        page: IncidentPage? = nil, twilio: TwilioReplies? = nil, onRunning: @escaping @Sendable (Int) async -> Void = { _ in }, tls: ServerTLS? = nil
    ) -> some ApplicationProtocol {
        let router = Router()
        if let chat { ChatRoute.add(to: router, chat: chat) } else { ChatRoute.addOff(to: router) }
        IncidentPageRoutes.add(to: router, page: page)
        TwilioRoutes.add(to: router, replies: twilio)
        router.get("/schedules/:file") { request, context -> Response in
            let file = context.parameters.get("file") ?? ""
            let token = request.uri.queryParameters.get("token")
            let now = clock.nowMs()
            let answer: ScheduleFeeds.Answer
            do {
                answer = try await pool.withConnection { try ScheduleFeeds.feed($0, file: file, token: token, now: now) }
            } catch {
                return text(.serviceUnavailable, "cannot read the schedule: database unavailable\n")
            }
            switch answer {
            case let .calendar(body):
                var headers = HTTPFields()
                headers[.contentType] = "text/calendar; charset=utf-8"
                headers[.cacheControl] = "no-store"
                return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
            case let .notFound(message): return text(.notFound, message + "\n")
            case let .unauthorized(message): return text(.unauthorized, message + "\n")
            }
        }
        OperationsRoutes.add(to: router, readiness: readiness)
        return Application(
            router: router, server: OperationsRoutes.server(tls, logger: logger), configuration: .init(address: .hostname(listen.host, port: listen.port), serverName: "klaxon-assignment"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? 0) }, logger: logger)
    }

    static func text(_ status: HTTPResponse.Status, _ body: String) -> Response { OperationsRoutes.text(status, body) }
}
