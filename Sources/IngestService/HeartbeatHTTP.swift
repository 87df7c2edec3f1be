import Foundation
import Hummingbird
import IncidentEngine
import KlaxonDomain
import NIOCore
import Shared

/// Heartbeat pings on Ingest's HTTP listener (PRODUCT.md, "Heartbeat monitors"):
/// `GET|HEAD|POST /heartbeat/{id}` (success), `/heartbeat/{id}/start`, `/fail`, `/log`,
/// `/{exit code}` (0 success, else failure), and Opsgenie's `/v2/heartbeats/{name}/ping` with
/// the GenieKey. A POST's body (the job's output, cut to 10 KiB) is kept as the last ping's.
/// 200 "OK" once the ping is committed (with the incident it triggered or resolved); 404 for an
/// unknown monitor; 503 when it could not be stored (ping again).
extension IngestHTTP {
    static let maxPingBodyBytes = 100 * 1024

    static func addHeartbeats(to router: Router<BasicRequestContext>, processor: EventProcessor) {
        for method in [HTTPRequest.Method.get, .head, .post] {
            router.on("/heartbeat/:id", method: method) { request, context in
                await Self.heartbeat(request, id: context.parameters.get("id") ?? "", signal: .success, processor: processor)
            }
            router.on("/heartbeat/:id/:signal", method: method) { request, context in
                let text = context.parameters.get("signal") ?? ""
                guard let signal = Self.signal(text) else {
                    return Self.text(.notFound, "unknown heartbeat signal \"\(text)\": use start, fail, log or an exit code 0–255\n")
                }
                return await Self.heartbeat(request, id: context.parameters.get("id") ?? "", signal: signal, processor: processor)
            }
            router.on("/v2/heartbeats/:name/ping", method: method) { request, context in
                await Self.opsgenieHeartbeat(request, name: context.parameters.get("name") ?? "", processor: processor)
            }
        }
    }

    static func signal(_ text: String) -> HeartbeatMonitor.Signal? {
        switch text {
        case "start": return .start
        case "fail": return .fail
        case "log": return .log
        default:
            guard let code = Int(text), (0...255).contains(code) else { return nil }
            return .exitCode(code)
        }
    }

    static func text(_ status: HTTPResponse.Status, _ body: String) -> Response {
        Response(status: status, headers: [.contentType: "text/plain; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    static func heartbeat(_ request: Request, id: String, signal: HeartbeatMonitor.Signal, processor: EventProcessor) async -> Response {
        guard let bytes = await body(request, limit: maxPingBodyBytes) else {
            return text(.contentTooLarge, "body exceeds \(maxPingBodyBytes) bytes\n")
        }
        switch await ping(id: id, signal: signal, body: String(decoding: bytes, as: UTF8.self), processor: processor, serviceID: nil) {
        case .stored: return text(.ok, "OK\n")
        case .unknown: return text(.notFound, "not found: no heartbeat monitor with this id\n")
        case let .failed(error): return text(.serviceUnavailable, "the ping could not be stored (\(error)); ping again\n")
        }
    }

    /// Opsgenie's heartbeat ping: the monitor by name, the GenieKey one of its service's routing keys.
    static func opsgenieHeartbeat(_ request: Request, name: String, processor: EventProcessor) async -> Response {
        await opsgenie(request, processor: processor) { _, target, _, requestID in
            let started = ContinuousClock.now
            switch await Self.ping(id: name, signal: .success, body: "", processor: processor, serviceID: target.serviceID) {
            case .stored:
                return (.accepted, PagerDutyEvents.body(["result": "PONG - Heartbeat received", "took": took(started), "requestId": requestID]))
            case .unknown:
                return (.notFound, OpsgenieAlerts.failure("Heartbeat with name [\(name)] does not exist.", requestID: requestID))
            case let .failed(error):
                return (.serviceUnavailable, OpsgenieAlerts.failure("Service unavailable: \(error)", requestID: requestID))
            }
        }
    }

    enum PingResult {
        case stored, unknown
        case failed(Error)
    }

    /// The ping and what it triggers or resolves, in one transaction. With `serviceID`, only a
    /// monitor of that service (by name) counts.
    static func ping(id: String, signal: HeartbeatMonitor.Signal, body: String, processor: EventProcessor, serviceID: Int64?) async -> PingResult {
        guard !id.isEmpty, id.utf8.count <= 255 else { return .unknown }
        let now = processor.clock.nowMs()
        do {
            let outcome = try await processor.pool.transaction { connection -> HeartbeatStore.Outcome? in
                // The secret URL takes the id only; Opsgenie's ping the name, with a key of its service.
                let key: HeartbeatStore.PingKey = serviceID.map { .name(id, serviceID: $0) } ?? .id(id)
                return try HeartbeatStore.ping(connection, key, signal: signal, body: body, now: now)
            }
            guard let outcome else { return .unknown }
            KlaxonMetrics.heartbeat(event: signal.name.hasPrefix("exit") ? "exit" : signal.name)
            if outcome.created { processor.assignmentOutbox.poke() }
            return .stored
        } catch {
            return .failed(error)
        }
    }
}
