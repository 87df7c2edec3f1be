import AsyncHTTPClient
import Foundation
import KlaxonDomain
import Logging
import NIOCore
import IncidentEngine
import Shared

/// Chat commands, Slack-compatible (issue 14, point 8): `POST /chat/slack` on Assignment's HTTP
/// listener takes slash commands (`/klaxon ack 42`, form-encoded) and interactive buttons (the
/// Acknowledge / Resolve / Join / Decline buttons on pages, a form field `payload` holding JSON).
///
/// Every request is verified with the signing secret (`ChatSignature`, Slack's v0 scheme) before
/// anything else: a bad or missing signature, or a timestamp more than 5 minutes off, is 401 and
/// nothing is done. The chat user is mapped to a Klaxon user by their configured chat id (the
/// user's `chat_id`), else by the email the request carries; the command then runs as that
/// user with that user's role, through the same binary-protocol handlers and `AccessPolicy` as
/// a token of that role (an observer may only ask `who`). Replies are Slack's JSON response
/// (`response_type` + `text`): `in_channel` for what others should see, `ephemeral` for
/// refusals and help. Incidents are named by their id, as in the CLI.
///
/// Slack waits 3 s for the answer. A command still running after `replyDeadline` (the database
/// is slow, a lock is held) is answered "still working" at once (after 2 s) and goes on; its result is then
/// POSTed to the request's `response_url`, as Slack expects of slow commands.
public struct ChatCommands: Sendable {
    let pool: PostgresPool
    /// Commands enter as calls on the binary-protocol server: the same middleware chain
    /// (logging, metrics, access by the caller's role, deadline) and handlers as a token's.
    let server: RPCServer
    let secret: String
    let clock: any WallClock
    let logger: Logger
    public var replyDeadline: Duration = .milliseconds(2_000)

    /// Where late replies go out: the pages' client (no redirect turns a POST into a GET; the
    /// system's roots plus KLAXON_TLS_EXTRA_CA_FILE).
    let replies: HTTPClient

    public init(pool: PostgresPool, server: RPCServer, secret: String, clock: any WallClock, logger: Logger, extraCAFile: String = "") {
        self.replies = .pages(trusting: extraCAFile)
        self.pool = pool
        self.server = server
        self.secret = secret
        self.clock = clock
        self.logger = logger
    }

    /// The HTTP answer: status, content type, body.
    public struct Answer: Sendable, Equatable {
        public var status: Int
        public var contentType: String
        public var body: String

        static func text(_ status: Int, _ body: String) -> Answer { Answer(status: status, contentType: "text/plain; charset=utf-8", body: body + "\n") }

        /// Slack's response format.
        static func slack(_ text: String, inChannel: Bool) -> Answer {
            var json = JSONWriter()
            json.beginObject()
            json.field("response_type", inChannel ? "in_channel" : "ephemeral")
            json.field("text", text)
            json.endObject()
            return Answer(status: 200, contentType: "application/json", body: json.string)
        }
    }

    public static let usage = """
        Klaxon commands (incidents by id):
        /klaxon ack 42 · resolve 42 · declare 42 [plan] · role 42 commander @user · status 42 <text>
        /klaxon responders 42 add @user [@user…] · join 42 · decline 42 · who 42
        """

    /// Handles one request. `timestamp` and `signature` are the X-Slack-Request-Timestamp and
    /// X-Slack-Signature headers; `body` the raw body (the signature covers its exact bytes).
    public func handle(timestamp: String?, signature: String?, body: [UInt8]) async -> Answer {
        guard !secret.isEmpty else {
            return .text(404, "chat commands are off: set KLAXON_CHAT_SIGNING_SECRET to the chat app's signing secret")
        }
        let form = Self.form(String(decoding: body, as: UTF8.self))
        // Slack checks the endpoint's certificate now and then with `ssl_check=1` and no command:
        // answered 200, nothing read or done, signed or not.
        if form["ssl_check"] == "1", form["command"] == nil, form["payload"] == nil { return Answer(status: 200, contentType: "text/plain", body: "") }
        if let refusal = ChatSignature.check(secret: secret, timestamp: timestamp, signature: signature, body: body, nowMs: clock.nowMs()) {
            logger.warning("chat request refused", metadata: ["reason": "\(refusal)"])
            return .text(401, "refused: \(refusal)")
        }
        var responseURL = form["response_url"]
        let run: @Sendable () async -> Answer
        if let payload = form["payload"] {
            guard let click = Click(payload) else {
                return .text(400, "the payload is not a button action (type block_actions with user.id and actions[0].action_id/value)")
            }
            responseURL = click.responseURL
            run = { await self.button(click) }
        } else {
            let text = (form["text"] ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
            let user = form["user_id"] ?? "", email = form["user_email"] ?? ""
            run = { await self.command(text, chatUser: user, email: email) }
        }
        // Whichever comes first: the answer, or the deadline (Slack's 3 s, on the service's clock so a
        // test drives it). The command itself is never cancelled.
        let work = Task { await run() }
        let first = Latch<Answer?>()
        let deadline = replyDeadline
        let timer = Task {
            try? await clock.sleep(for: deadline)
            first.resolve(.success(nil))
        }
        Task { first.resolve(.success(await work.value)) }
        let answer = (try? await first.wait()) ?? nil
        timer.cancel()
        if let answer { return answer }
        guard let url = responseURL, AddressRules.httpURLProblem(url) == nil else {
            // Nowhere to send the result: wait for it (Slack shows a timeout, the command still ran).
            return await work.value
        }
        let logger = self.logger
        Task {
            let answer = await work.value
            if let host = URL(string: url)?.host, let why = await OutboundGuard.refusal(host: host) {
                logger.warning("chat response_url refused", metadata: ["reason": "\(why)"])
                return
            }
            var request = HTTPClientRequest(url: url)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: answer.body))
            do {
                let response = try await replies.execute(request, timeout: .seconds(10))
                _ = try? await response.body.collect(upTo: 64 * 1024)
                if response.status.code >= 300 {
                    logger.warning("chat response_url refused the late reply", metadata: ["status": "\(response.status.code)"])
                }
            } catch {
                logger.warning("cannot post a late chat reply to response_url", metadata: ["error": "\(error)"])
            }
        }
        return .slack("Klaxon is still working on that; the result will follow here.", inChannel: false)
    }

    // MARK: Who

    struct Caller {
        var userID: Int64
        var name: String
        var role: TokenRole
        var chatID: String

        var principal: Principal { Principal(tokenID: 0, name: "chat \(chatID)", role: role, userID: userID) }
    }

    /// The Klaxon user behind a chat user: by configured chat id, else by email.
    func caller(chatUser: String, email: String) async throws -> Caller? {
        try await pool.withConnection { connection in
            guard let found = try UserStore.byChat(connection, chatID: chatUser, email: email), let role = TokenRole(rawValue: found.role)
            else { return nil }
            return Caller(userID: Int64(found.id), name: found.name, role: role, chatID: chatUser)
        }
    }

    /// A user named in a command: `<@U123|name>` or `<@U123>` (a chat mention), `@name`, an
    /// email, a chat id or a Klaxon user id.
    func mentioned(_ token: String) async throws -> (id: UInt64, name: String)? {
        var key = token
        if key.hasPrefix("<@"), key.hasSuffix(">") {
            key = String(key.dropFirst(2).dropLast())
            if let bar = key.firstIndex(of: "|") { key = String(key[..<bar]) }
        } else if key.hasPrefix("@") {
            key = String(key.dropFirst())
        }
        guard !key.isEmpty else { return nil }
        let lookup = key
        return try await pool.withConnection { connection in
            try UserStore.mentioned(connection, lookup).map { ($0.id, $0.name) }
        }
    }

    // MARK: Commands

    func command(_ text: String, chatUser: String, email: String) async -> Answer {
        let words = text.split(whereSeparator: \.isWhitespace).map(String.init)
        guard let verb = words.first?.lowercased(), verb != "help" else { return .slack(Self.usage, inChannel: false) }
        guard !chatUser.isEmpty else { return .text(400, "the request names no user (user_id)") }
        let caller: Caller
        do {
            guard let found = try await self.caller(chatUser: chatUser, email: email) else {
                return .slack(
                    "Your chat account \(chatUser) is not linked to a Klaxon user, so nothing was done. Ask an admin to set your chat id "
                        + "(`chat_id: \(chatUser)` in the YAML file, or `klaxon user create … --chat-id \(chatUser)`).", inChannel: false)
            }
            caller = found
        } catch {
            return .slack("Klaxon cannot reach its database; nothing was done. Try again.", inChannel: false)
        }
        guard words.count >= 2, let id = UInt64(words[1].trimmingCharacters(in: CharacterSet(charactersIn: "#"))), id > 0 else {
            return .slack("`\(verb)` needs an incident id, e.g. `/klaxon \(verb) 42`.\n" + Self.usage, inChannel: false)
        }
        let rest = Array(words.dropFirst(2))
        logger.info("chat command", metadata: ["chat.user": "\(chatUser)", "user.id": "\(caller.userID)", "command": "\(verb)", "incident.id": "\(id)"])
        do {
            switch verb {
            case "ack", "acknowledge":
                _ = try await call(Assignment.Acknowledge, IncidentActionRequest(incidentID: id), as: caller)
                return .slack("\(caller.name) acknowledged incident \(id).", inChannel: true)
            case "resolve":
                _ = try await call(Assignment.Resolve, IncidentActionRequest(incidentID: id, text: rest.joined(separator: " ")), as: caller)
                return .slack("\(caller.name) resolved incident \(id).", inChannel: true)
            case "declare":
                let info = try await call(
                    Assignment.DeclareMajor, DeclareMajorRequest(incidentID: id, responsePlan: rest.joined(separator: " ")), as: caller)
                let plan = rest.isEmpty ? "" : " with the plan \"\(rest.joined(separator: " "))\""
                return .slack("\(caller.name) declared incident \(id) major (\(info.priority))\(plan): \(info.title)", inChannel: true)
            case "role":
                guard rest.count == 2 else { return .slack("Usage: `/klaxon role \(id) commander @user`", inChannel: false) }
                let role = rest[0].lowercased().replacingOccurrences(of: "-", with: "_")
                guard let user = try await mentioned(rest[1]) else { return .slack("No Klaxon user matches \(rest[1]).", inChannel: false) }
                _ = try await call(Assignment.AssignRole, AssignRoleRequest(incidentID: id, role: role, userID: user.id), as: caller)
                return .slack("\(user.name) is now \(role.replacingOccurrences(of: "_", with: " ")) of incident \(id) (set by \(caller.name)).", inChannel: true)
            case "status":
                let update = rest.joined(separator: " ")
                guard !update.isEmpty else { return .slack("Usage: `/klaxon status \(id) <text>`", inChannel: false) }
                _ = try await call(Assignment.PostStatusUpdate, PostStatusUpdateRequest(incidentID: id, text: update), as: caller)
                return .slack("Status update on incident \(id) by \(caller.name): \(update)", inChannel: true)
            case "responders":
                guard rest.count >= 2, rest[0].lowercased() == "add" else {
                    return .slack("Usage: `/klaxon responders \(id) add @user [@user…]`", inChannel: false)
                }
                var users: [(id: UInt64, name: String)] = []
                for token in rest.dropFirst() {
                    guard let user = try await mentioned(token) else { return .slack("No Klaxon user matches \(token); nobody was asked.", inChannel: false) }
                    users.append(user)
                }
                _ = try await call(
                    Assignment.RequestResponders,
                    RequestRespondersRequest(incidentID: id, userIDs: users.map(\.id), message: "\(caller.name) asks you to join (chat)"), as: caller)
                return .slack("\(caller.name) asked \(users.map(\.name).joined(separator: ", ")) to join incident \(id).", inChannel: true)
            case "join", "decline":
                _ = try await call(Assignment.AnswerResponderRequest, ResponderAnswer(incidentID: id, join: verb == "join"), as: caller)
                return .slack("\(caller.name) \(verb == "join" ? "joined" : "declined") incident \(id).", inChannel: true)
            case "who":
                return .slack(try await who(id, as: caller), inChannel: false)
            default:
                return .slack("Unknown command `\(verb)`.\n" + Self.usage, inChannel: false)
            }
        } catch let error as RPCError {
            return .slack(Self.refusal(error), inChannel: false)
        } catch {
            logger.error("chat command failed", metadata: ["command": "\(verb)", "incident.id": "\(id)", "error": "\(error)"])
            return .slack("Klaxon could not do that (\(error)); nothing was done.", inChannel: false)
        }
    }

    static func refusal(_ error: RPCError) -> String {
        let violations = error.status.violations.map { "\($0.field) \($0.description)" }
        return "Refused (\(error.code)): " + (violations.isEmpty ? error.message : violations.joined(separator: "; "))
    }

    /// `who 42`: the response at a glance.
    func who(_ id: UInt64, as caller: Caller) async throws -> String {
        let info = try await call(Assignment.GetIncident, GetIncidentRequest(incidentID: id), as: caller)
        let response = try await call(Assignment.GetResponse, GetIncidentRequest(incidentID: id), as: caller)
        let ids = Set(response.roles.map(\.userID) + response.requests.map(\.userID))
        let names = try await pool.withConnection { try UserStore.names($0, ids: Array(ids)) }
        let name = { (user: UInt64) in names[user] ?? "user \(user)" }
        var lines = ["Incident \(id) #\(info.number) \(info.title) — \(info.state?.status?.rawValue ?? "?")\(info.priority.isEmpty ? "" : ", \(info.priority)")"]
        if !response.conferenceURL.isEmpty || !response.conferencePhone.isEmpty {
            lines.append("Bridge: " + [response.conferenceURL, response.conferencePhone].filter { !$0.isEmpty }.joined(separator: " · "))
        }
        if !response.chatChannel.isEmpty { lines.append("Channel: \(response.chatChannel)") }
        for role in Role.allCases {
            let holders = response.roles.filter { $0.role == role.rawValue }.map { name($0.userID) }
            if !holders.isEmpty { lines.append("\(role.spoken): \(holders.joined(separator: ", "))") }
        }
        for state in [RequestState.joined, .pending, .declined, .noAnswer, .cancelled] {
            let people = response.requests.filter { $0.state == state.rawValue }.map { name($0.userID) }
            if !people.isEmpty { lines.append("\(state.rawValue.replacingOccurrences(of: "_", with: " ")): \(people.joined(separator: ", "))") }
        }
        return lines.joined(separator: "\n")
    }

    // MARK: Buttons

    /// A button click (`payload`, Slack's block_actions JSON): who clicked, which button, its value.
    struct Click: Sendable {
        var chatUser, email, actionID, value: String
        var responseURL: String?

        init?(_ payload: String) {
            guard let object = try? JSONSerialization.jsonObject(with: Data(payload.utf8)) as? [String: Any],
                  let user = object["user"] as? [String: Any], let chatUser = user["id"] as? String,
                  let action = (object["actions"] as? [[String: Any]])?.first, let actionID = action["action_id"] as? String,
                  let value = action["value"] as? String
            else { return nil }
            (self.chatUser, self.email, self.actionID, self.value) = (chatUser, user["email"] as? String ?? "", actionID, value)
            responseURL = object["response_url"] as? String
        }
    }

    /// The buttons on pages: `klaxon_ack`, `klaxon_resolve`, `klaxon_join`, `klaxon_decline`,
    /// each with the incident id as its value.
    func button(_ click: Click) async -> Answer {
        let verbs = ["klaxon_ack": "ack", "klaxon_resolve": "resolve", "klaxon_join": "join", "klaxon_decline": "decline"]
        guard let verb = verbs[click.actionID] else { return .slack("Unknown button \(click.actionID).", inChannel: false) }
        return await command("\(verb) \(click.value)", chatUser: click.chatUser, email: click.email)
    }

    // MARK: Calls

    /// Runs a binary-protocol method as the caller, through the server's middleware chain.
    func call<Request, Reply>(_ method: RPCMethod<Request, Reply>, _ request: Request, as caller: Caller) async throws -> Reply {
        try await server.call(method, request, as: caller.principal)
    }

    /// application/x-www-form-urlencoded → fields (the last of a repeated name wins).
    static func form(_ body: String) -> [String: String] {
        Dictionary(FormEncoding.decode(body), uniquingKeysWith: { _, last in last })
    }
}
