import HTTPOperations
import Hummingbird
import Logging
import NIOCore
import Shared

/// Ingest's HTTP listener: PagerDuty Events API v2 (`POST /v2/enqueue`, alias `/v2/events`) and
/// the health endpoints.
public enum IngestHTTP {
    /// Bodies above this are refused before parsing (the event limit itself is 512 KiB).
    public static let maxBodyBytes = 1024 * 1024

    public static func application(
        processor: EventProcessor, readiness: Readiness, listen: HostPort, logger: Logger,
        onRunning: @escaping @Sendable (Int) async -> Void = { _ in }, tls: ServerTLS? = nil
    ) -> some ApplicationProtocol {
        let router = Router()
        let enqueue: @Sendable (Request, BasicRequestContext) async throws -> Response = { request, _ in
            try await Self.enqueue(request, processor: processor)
        }
        router.post("/v2/enqueue", use: enqueue)
        router.post("/v2/events", use: enqueue)
        // /healthz, /readyz and /metrics: the same shape as every other listener (README, Operations).
        OperationsRoutes.add(to: router, readiness: readiness)
        return Application(
            router: router, server: OperationsRoutes.server(tls, logger: logger), configuration: .init(address: .hostname(listen.host, port: listen.port), serverName: "klaxon-ingest"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? 0) }, logger: logger)
    }

    static func enqueue(_ request: Request, processor: EventProcessor) async throws -> Response {
        var request = request
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: maxBodyBytes)
        } catch {
            return json(.contentTooLarge, PagerDutyEvents.invalid(
                [FieldViolation(field: "event", description: "body exceeds \(maxBodyBytes) bytes")], message: "Event object is too large"))
        }
        let bytes = Array(body.readableBytesView)
        let parsed = PagerDutyEvents.parse(bytes)
        guard parsed.violations.isEmpty, let event = parsed.event else {
            // Report the limits too, so one answer names everything to fix.
            let limits = parsed.event.map { EventValidation.violations(of: $0, encodedSize: bytes.count) } ?? []
            let shape = Set(parsed.violations.map(\.field))
            return json(.badRequest, PagerDutyEvents.invalid(parsed.violations + limits.filter { !shape.contains($0.field) }))
        }
        let result = await processor.process([IngestRequest(event: event, encodedSize: bytes.count, customDetailsJSON: parsed.customDetailsJSON)])[0]
        switch result {
        case let .success(outcome):
            return json(.accepted, PagerDutyEvents.accepted(dedupKey: outcome.dedupKey))
        case let .failure(error):
            switch error.code {
            case .invalidArgument:
                return json(.badRequest, PagerDutyEvents.invalid(error.status.violations))
            case .resourceExhausted:
                var response = json(.tooManyRequests, PagerDutyEvents.throttled(error.message))
                if let retryMs = error.status.violations.first(where: { $0.field == "retry_after_ms" }).flatMap({ Int($0.description) }) {
                    response.headers[.retryAfter] = String(max(1, (retryMs + 999) / 1000))
                }
                return response
            case .unavailable, .aborted:
                return json(.serviceUnavailable, PagerDutyEvents.failed(error.message))
            default:
                return json(.internalServerError, PagerDutyEvents.failed(error.message))
            }
        }
    }

    static func json(_ status: HTTPResponse.Status, _ body: [UInt8]) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}
