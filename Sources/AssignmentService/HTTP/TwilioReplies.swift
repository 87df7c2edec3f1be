import Foundation
import IncidentEngine
import KlaxonDomain
import Logging
import Shared

/// What Twilio sends back to Klaxon's HTTP listener (under `KLAXON_PUBLIC_URL`): SMS replies
/// (`POST /twilio/sms`: "4a" acknowledges, "4r" resolves the incident of the sender's reply code
/// 4), key presses in a page call (`POST /twilio/voice?u=<user>&i=<incident>`: 1 acknowledge,
/// 2 resolve, 3 repeat) and status callbacks (`POST /twilio/status?n=<notification>`). Every
/// request must carry Twilio's signature (`X-Twilio-Signature`, the auth token's HMAC over the
/// URL and the form): without a valid one, 403, logged, nothing done. Replies and keys act as the
/// person through the RPC server's entrance (their role, access checks, logging), like the CLI.
public struct TwilioReplies: Sendable {
    let pool: PostgresPool
    let server: RPCServer
    let clock: any WallClock
    let account: TwilioAccount
    let window: DeliveryWindow
    let logger: Logger

    public init(pool: PostgresPool, server: RPCServer, clock: any WallClock, account: TwilioAccount, window: DeliveryWindow, logger: Logger) {
        self.pool = pool
        self.server = server
        self.clock = clock
        self.account = account
        self.window = window
        self.logger = logger
    }

    public struct Answer: Sendable, Equatable {
        public var status: Int
        public var contentType: String
        public var body: String

        static func twiml(_ body: String) -> Answer { Answer(status: 200, contentType: "text/xml; charset=utf-8", body: body) }
        static func text(_ status: Int, _ body: String) -> Answer { Answer(status: status, contentType: "text/plain; charset=utf-8", body: body + "\n") }
    }

    /// `uri` is the request's path and query as received; the signature is checked over
    /// `KLAXON_PUBLIC_URL` + `uri`, as Twilio requested it.
    public func handle(_ endpoint: String, uri: String, query: [String: String], signature: String?, body: String) async -> Answer {
        let fields = FormEncoding.decode(body)
        guard TwilioSignature.valid(signature: signature, url: account.publicURL + uri, fields: fields, authToken: account.authToken) else {
            logger.warning("Twilio request refused: missing or wrong X-Twilio-Signature", metadata: ["twilio.endpoint": "\(endpoint)"])
            KlaxonMetrics.refused("twilio_signature")
            return .text(403, "signature does not match (X-Twilio-Signature): nothing was done")
        }
        let form = Dictionary(fields, uniquingKeysWith: { first, _ in first })
        switch endpoint {
        case "sms": return await sms(from: form["From"] ?? "", text: form["Body"] ?? "")
        case "voice":
            guard let user = query["u"].flatMap(UInt64.init), let incident = query["i"].flatMap(UInt64.init) else {
                return .text(400, "u and i (user and incident) are required")
            }
            return await voice(user: user, incident: incident, digits: form["Digits"] ?? "")
        case "status":
            return await status(notification: query["n"] ?? "", form: form)
        default:
            return .text(404, "unknown Twilio endpoint")
        }
    }

    /// Who a user is, as a caller of the incident API.
    private func principal(_ userID: UInt64, via door: String) async throws -> (Principal, String)? {
        guard let user = try await pool.withConnection({ try UserStore.byID($0, userID) }), let role = TokenRole(rawValue: user.role) else { return nil }
        return (Principal(tokenID: 0, name: door, role: role, userID: Int64(userID)), user.name)
    }

    private func incidentLine(_ incidentID: UInt64) async throws -> (number: UInt64, title: String, urgency: String, service: String, status: String)? {
        let rows = try await pool.withConnection { connection in
            try connection.query(
                "SELECT i.number, i.title, i.urgency, i.status, s.name FROM incidents i JOIN services s ON s.id = i.service_id WHERE i.id = $1",
                [Int64(incidentID)])
        }
        guard let number = rows.int64(0, "number") else { return nil }
        return (UInt64(number), rows.string(0, "title") ?? "", rows.string(0, "urgency") ?? "high", rows.string(0, "name") ?? "",
                rows.string(0, "status") ?? "")
    }

    private func act(_ action: String, incident: UInt64, as principal: Principal) async -> String? {
        let request = IncidentActionRequest(incidentID: incident, userID: UInt64(principal.userID ?? 0))
        do {
            _ = try await server.call(action == "a" ? Assignment.Acknowledge : Assignment.Resolve, request, as: principal)
            return nil
        } catch let error as RPCError {
            return error.message
        } catch {
            return "Klaxon cannot answer right now; try again"
        }
    }

    func sms(from: String, text: String) async -> Answer {
        do {
            guard let sender = try await pool.withConnection({ try PhoneStore.user($0, phone: from) }) else {
                return .twiml(TwiML.message("Klaxon does not know this number."))
            }
            let words = text.trimmingCharacters(in: .whitespacesAndNewlines).lowercased().filter { !$0.isWhitespace }
            guard let letter = words.last, letter == "a" || letter == "r", let code = Int(words.dropLast()), code > 0 else {
                return .twiml(TwiML.message("Reply with the code from the page and a (acknowledge) or r (resolve), e.g. 4a."))
            }
            guard let incident = try await pool.withConnection({ try PhoneStore.incident($0, userID: sender.id, code: code) }),
                  let (principal, _) = try await principal(sender.id, via: "sms reply")
            else {
                return .twiml(TwiML.message("Code \(code) names no open incident of yours."))
            }
            let line = try await incidentLine(incident)
            let what = line.map { "#\($0.number) \($0.title)" } ?? "incident \(incident)"
            if let refusal = await act(String(letter), incident: incident, as: principal) {
                return .twiml(TwiML.message("Not done (\(what)): \(refusal)"))
            }
            logger.info("SMS reply acted", metadata: ["incident.id": "\(incident)", "user.id": "\(sender.id)", "action": "\(letter)"])
            return .twiml(TwiML.message("\(letter == "a" ? "Acknowledged" : "Resolved") \(what)"))
        } catch {
            return .text(503, "database unavailable; Twilio will retry")
        }
    }

    func voice(user: UInt64, incident: UInt64, digits: String) async -> Answer {
        do {
            guard let (principal, _) = try await principal(user, via: "phone key"), let line = try await incidentLine(incident) else {
                return .twiml(TwiML.say("This page is no longer valid. Goodbye."))
            }
            let action = account.voiceAction(userID: user, incidentID: incident)
            let spoken = TwiML.spoken(number: line.number, title: line.title, urgency: line.urgency, service: line.service, status: line.status)
            switch digits {
            case "1", "2":
                if let refusal = await act(digits == "1" ? "a" : "r", incident: incident, as: principal) {
                    return .twiml(TwiML.say("Not done: \(refusal). Goodbye."))
                }
                logger.info("phone key acted", metadata: ["incident.id": "\(incident)", "user.id": "\(user)", "key": "\(digits)"])
                return .twiml(TwiML.say("Incident \(line.number) \(digits == "1" ? "acknowledged" : "resolved"). Goodbye."))
            case "3":
                return .twiml(TwiML.gather(spoken, action: action))
            default:
                return .twiml(TwiML.gather("Unknown key. " + spoken, action: action))
            }
        } catch {
            return .twiml(TwiML.say("Klaxon cannot answer right now. Goodbye."))
        }
    }

    func status(notification: String, form: [String: String]) async -> Answer {
        let status = form["MessageStatus"] ?? form["CallStatus"] ?? form["SmsStatus"] ?? ""
        guard !status.isEmpty else { return .text(400, "MessageStatus or CallStatus is required") }
        let providerID = form["MessageSid"] ?? form["CallSid"] ?? ""
        let now = clock.nowMs(), window = self.window
        do {
            let done = try await pool.transaction { connection in
                try PhoneStore.providerReport(
                    connection, notificationID: notification, status: status, providerID: providerID, errorCode: form["ErrorCode"] ?? "",
                    now: now, window: window)
            }
            logger.info("provider status", metadata: ["notification.id": "\(notification)", "status": "\(status)", "outcome": "\(done)"])
            return .text(200, done)
        } catch {
            return .text(503, "database unavailable; Twilio will retry")
        }
    }
}
