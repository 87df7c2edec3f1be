import Foundation
import IncidentEngine
import KlaxonDomain
import Logging
import Shared

/// The page a one-tap link opens (`GET /i/<token>` on Assignment's HTTP listener): the incident,
/// its alerts, who is assigned and who acknowledged, the timeline, and Acknowledge / Resolve
/// buttons. Server-rendered HTML and CSS, no script, readable on a 360-px-wide phone.
///
/// The link's token (`OneTapLink`) is the credential: it acts as its user only, on its incident
/// only, through the same entrance as the binary protocol (`RPCServer.call`: access checks,
/// logging, metrics). The buttons POST with a CSRF token (a cookie the page sets, repeated in the
/// form: another site cannot read it). `POST /i/<token>/ack` acknowledges without a form, for
/// push actions and webhooks (`incident.ack_url`). A GET never changes anything (link previews
/// and mail scanners open links). Expired or tampered links show a page saying so and do nothing.
public struct IncidentPage: Sendable {
    let pool: PostgresPool
    let server: RPCServer
    let clock: any WallClock
    let key: String
    /// The CSRF cookie is `Secure` when people reach the page over https.
    let secureCookie: Bool
    let logger: Logger

    public init(pool: PostgresPool, server: RPCServer, clock: any WallClock, key: String, secureCookie: Bool, logger: Logger) {
        self.pool = pool
        self.server = server
        self.clock = clock
        self.key = key
        self.secureCookie = secureCookie
        self.logger = logger
    }

    public static let csrfCookie = "klaxon_csrf"

    public struct Answer: Sendable, Equatable {
        public var status: Int
        public var contentType = "text/html; charset=utf-8"
        public var body: String
        public var headers: [String: String] = [:]
    }

    /// Who the link acts as.
    struct Holder {
        var link: OneTapLink
        var name: String
        var principal: Principal
    }

    enum Refused: Error {
        case page(Answer)
    }

    /// The link's holder, or the page that says why not.
    func findHolder(_ token: String) async -> Result<Holder, Refused> {
        let link: OneTapLink
        switch OneTapLink.verify(token, key: key, nowMs: clock.nowMs()) {
        case let .success(valid): link = valid
        case let .failure(refusal):
            logger.info("one-tap link refused", metadata: ["link.refusal": "\(refusal)"])
            let status = if case .expired = refusal { 410 } else { 403 }
            return .failure(.page(Self.errorPage(status: status, title: "This link cannot be used", message: refusal.description)))
        }
        do {
            let user = try await pool.withConnection { try UserStore.byID($0, link.userID) }
            guard let name = user?.name, let role = user.flatMap({ TokenRole(rawValue: $0.role) }) else {
                return .failure(.page(Self.errorPage(status: 403, title: "This link cannot be used", message: "the user this link was sent to no longer exists")))
            }
            // The person's own role, never more: an admin's link still acts as that admin alone.
            return .success(Holder(link: link, name: name, principal: Principal(tokenID: 0, name: "one-tap link", role: role, userID: Int64(link.userID))))
        } catch {
            return .failure(.page(Self.errorPage(status: 503, title: "Klaxon cannot answer right now", message: "its database is unavailable; try again in a moment")))
        }
    }

    /// `GET /i/<token>`: the page, with a fresh CSRF cookie.
    public func show(token: String, notice: String? = nil) async -> Answer {
        let holder: Holder
        switch await findHolder(token) {
        case let .success(found): holder = found
        case let .failure(.page(page)): return page
        }
        let request = GetIncidentRequest(incidentID: holder.link.incidentID)
        let info: IncidentInfo, timeline: GetTimelineReply
        do {
            info = try await server.call(Assignment.GetIncident, request, as: holder.principal)
            timeline = try await server.call(Assignment.GetTimeline, request, as: holder.principal)
        } catch let error as RPCError {
            return Self.errorPage(status: error.code == .notFound ? 404 : 403, title: "This incident cannot be shown", message: error.message)
        } catch {
            return Self.errorPage(status: 503, title: "Klaxon cannot answer right now", message: "try again in a moment")
        }
        let state = info.state ?? IncidentView()
        let alerts: [(summary: String, source: String, count: Int, lastAt: Int64)]
        let names: [UInt64: String]
        do {
            (alerts, names) = try await pool.withConnection { connection in
                let rows = try connection.query(
                    "SELECT summary, source, count, last_at_ms FROM alerts WHERE incident_id = $1 ORDER BY last_at_ms DESC LIMIT 20",
                    [Int64(info.id)])
                let alerts = (0..<rows.count).map { row in
                    (rows.string(row, "summary") ?? "", rows.string(row, "source") ?? "", rows.int(row, "count") ?? 1,
                     rows.int64(row, "last_at_ms") ?? 0)
                }
                return (alerts, try UserStore.names(connection, ids: Array(Set(state.assigneeIDs + state.acknowledgements.map(\.userID)))))
            }
        } catch {
            return Self.errorPage(status: 503, title: "Klaxon cannot answer right now", message: "its database is unavailable; try again in a moment")
        }
        let csrf = Secrets.text(count: 32)
        var html = Self.head(title: "#\(info.number) \(info.title)")
        html += "<header><p class=\"who\">Klaxon · for \(Markup.escape(holder.name))</p>"
        html += "<h1>#\(info.number) \(Markup.escape(info.title))</h1>"
        let status = state.status?.rawValue ?? "triggered"
        html += "<p><span class=\"status \(status)\">\(status)</span> <span class=\"urgency\">\(Markup.escape(info.urgency?.rawValue ?? "high")) urgency</span>"
        html += " · \(Markup.escape(info.serviceName))</p></header>"
        if let notice { html += "<p class=\"notice\" role=\"status\">\(Markup.escape(notice))</p>" }
        if status != "resolved" {
            html += "<form method=\"post\" class=\"actions\">"
            html += "<input type=\"hidden\" name=\"csrf\" value=\"\(csrf)\">"
            if status == "triggered" {
                html += "<button name=\"action\" value=\"acknowledge\" class=\"ack\">Acknowledge</button>"
            }
            html += "<button name=\"action\" value=\"resolve\" class=\"resolve\">Resolve</button></form>"
        }
        html += "<section><h2>People</h2><ul>"
        for id in state.assigneeIDs {
            let acked = state.acknowledgements.first { $0.userID == id && $0.closedAtMs == 0 }
            html += "<li>\(Markup.escape(names[id] ?? "user \(id)"))"
            html += acked.map { " — acknowledged \(Self.time($0.atMs))" } ?? " — assigned"
            html += "</li>"
        }
        if state.assigneeIDs.isEmpty { html += "<li>nobody is assigned</li>" }
        html += "</ul></section>"
        html += "<section><h2>Alerts (\(info.alertCount))</h2><ul>"
        for alert in alerts {
            html += "<li>\(Markup.escape(alert.summary)) <small>\(Markup.escape(alert.source))"
            html += alert.count > 1 ? " · ×\(alert.count)" : ""
            html += " · \(Self.time(alert.lastAt))</small></li>"
        }
        html += "</ul></section>"
        html += "<section><h2>Timeline <small>(newest first)</small></h2><ul class=\"timeline\">"
        for entry in timeline.entries.suffix(50).reversed() {
            html += "<li><time>\(Self.time(entry.atMs))</time> \(Markup.escape(entry.type.replacingOccurrences(of: "_", with: " ")))"
            if !entry.actor.isEmpty { html += " <small>by \(Markup.escape(entry.actor))</small>" }
            html += "</li>"
        }
        html += "</ul></section>"
        html += "<footer>Opened \(Self.time(info.createdAtMs)) · link valid until \(Self.time(holder.link.expiresAtMs))</footer></body></html>\n"
        var cookie = "\(Self.csrfCookie)=\(csrf); Path=/i/; HttpOnly; SameSite=Strict"
        if secureCookie { cookie += "; Secure" }
        return Answer(status: 200, body: html, headers: ["Set-Cookie": cookie, "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"])
    }

    /// `POST /i/<token>` from the page's buttons: `action` (acknowledge, resolve) and `csrf`, which
    /// must equal the page's cookie. Then back to the page (303), saying what was done.
    public func act(token: String, form: [String: String], cookie: String?) async -> Answer {
        let holder: Holder
        switch await findHolder(token) {
        case let .success(found): holder = found
        case let .failure(.page(page)): return page
        }
        guard let sent = form["csrf"], let kept = Self.cookieValue(cookie, Self.csrfCookie), !sent.isEmpty,
              Secrets.constantTimeEquals(Array(sent.utf8), Array(kept.utf8))
        else {
            logger.info("one-tap action refused: CSRF token missing or wrong", metadata: ["incident.id": "\(holder.link.incidentID)"])
            return Self.errorPage(status: 403, title: "Nothing was done", message: "this form is stale or did not come from Klaxon's page: open the link again and press the button there")
        }
        let notice: String
        switch form["action"] {
        case "acknowledge": notice = await perform(Assignment.Acknowledge, holder, done: "Acknowledged by you.")
        case "resolve": notice = await perform(Assignment.Resolve, holder, done: "Resolved by you.")
        default: return Self.errorPage(status: 400, title: "Nothing was done", message: "unknown action; use the page's buttons")
        }
        return Answer(
            status: 303, contentType: "text/plain; charset=utf-8", body: notice + "\n",
            headers: ["Location": "/i/\(token)?done=\(notice.hasSuffix("by you.") ? (form["action"] ?? "") : "refused")", "Cache-Control": "no-store"])
    }

    /// `POST /i/<token>/ack`: acknowledge at once (ntfy's action button, `incident.ack_url`).
    public func acknowledge(token: String) async -> Answer {
        let holder: Holder
        switch await findHolder(token) {
        case let .success(found): holder = found
        case let .failure(.page(page)):
            return Answer(status: page.status, contentType: "text/plain; charset=utf-8", body: Self.plain(page.body) + "\n")
        }
        do {
            let view = try await server.call(
                Assignment.Acknowledge, IncidentActionRequest(incidentID: holder.link.incidentID, userID: holder.link.userID), as: holder.principal)
            return Answer(status: 200, contentType: "text/plain; charset=utf-8", body: "incident \(view.incidentID) acknowledged by \(holder.name)\n")
        } catch let error as RPCError {
            return Answer(status: error.code == .permissionDenied ? 403 : 409, contentType: "text/plain; charset=utf-8", body: "not acknowledged: \(error.message)\n")
        } catch {
            return Answer(status: 503, contentType: "text/plain; charset=utf-8", body: "not acknowledged: try again in a moment\n")
        }
    }

    private func perform(_ method: RPCMethod<IncidentActionRequest, IncidentView>, _ holder: Holder, done: String) async -> String {
        do {
            _ = try await server.call(method, IncidentActionRequest(incidentID: holder.link.incidentID, userID: holder.link.userID), as: holder.principal)
            return done
        } catch let error as RPCError {
            return "Nothing was done: \(error.message)"
        } catch {
            return "Nothing was done: Klaxon cannot answer right now; try again in a moment"
        }
    }

    /// What `?done=` says on the page after a button.
    public static func notice(done: String?) -> String? {
        switch done {
        case "acknowledge": "Acknowledged by you."
        case "resolve": "Resolved by you."
        case "refused": "Nothing was done: the incident may have changed meanwhile (see its status below)."
        default: nil
        }
    }

    static func cookieValue(_ header: String?, _ name: String) -> String? {
        guard let header else { return nil }
        for part in header.split(separator: ";") {
            let pair = part.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1)
            if pair.count == 2, pair[0] == name { return String(pair[1]) }
        }
        return nil
    }

    static func errorPage(status: Int, title: String, message: String) -> Answer {
        var html = head(title: title)
        html += "<header><p class=\"who\">Klaxon</p><h1>\(Markup.escape(title))</h1></header>"
        html += "<p class=\"problem\" role=\"alert\">\(Markup.escape(message.prefix(1).uppercased() + message.dropFirst())).</p>"
        html += "<p>Nothing was changed.</p></body></html>\n"
        return Answer(status: status, body: html, headers: ["Cache-Control": "no-store", "Referrer-Policy": "no-referrer"])
    }

    static func head(title: String) -> String {
        """
        <!doctype html><html lang="en"><head><meta charset="utf-8">\
        <meta name="viewport" content="width=device-width, initial-scale=1">\
        <title>\(Markup.escape(title))</title><style>\(css)</style></head><body>
        """
    }

    static let css = """
        body{font:16px/1.4 system-ui,-apple-system,sans-serif;margin:0 auto;max-width:40rem;padding:12px;color:#1a1a1a;background:#fafafa}\
        h1{font-size:1.3rem;margin:.2rem 0;overflow-wrap:anywhere}h2{font-size:1rem;margin:1.2rem 0 .4rem;color:#555}\
        .who{margin:0;color:#666;font-size:.85rem}.status{font-weight:600;padding:2px 8px;border-radius:4px;color:#fff;background:#c62828}\
        .status.acknowledged{background:#ef6c00}.status.resolved{background:#2e7d32}.urgency{color:#555}\
        .actions{display:flex;gap:8px;margin:1rem 0}.actions button{flex:1;font-size:1.1rem;padding:14px 8px;border:0;border-radius:8px;color:#fff}\
        .ack{background:#ef6c00}.resolve{background:#2e7d32}.notice{background:#e8f5e9;padding:8px;border-radius:6px}\
        .problem{background:#ffebee;padding:8px;border-radius:6px}ul,ol{padding-left:1.2rem;margin:0}li{margin:.25rem 0;overflow-wrap:anywhere}\
        small,time,footer{color:#666;font-size:.85rem}footer{margin-top:1.5rem}
        """

    /// UTC, to the minute: what a person at 3 a.m. needs.
    static func time(_ ms: Int64) -> String {
        guard ms > 0 else { return "—" }
        let text = RFC3339.string(millis: ms)
        return String(text.prefix(16)).replacingOccurrences(of: "T", with: " ") + " UTC"
    }

    /// An error page's message as plain text.
    static func plain(_ html: String) -> String {
        guard let start = html.range(of: "role=\"alert\">"), let end = html.range(of: "</p>", range: start.upperBound..<html.endIndex) else { return html }
        return String(html[start.upperBound..<end.lowerBound])
    }
}
