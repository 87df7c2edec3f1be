import AsyncHTTPClient
import Foundation
import KlaxonDomain
import NIOCore
import Shared

/// SMS and voice through Twilio's REST API (`KLAXON_TWILIO_ACCOUNT_SID`, `KLAXON_TWILIO_AUTH_TOKEN`, `KLAXON_TWILIO_FROM`), or a provider that speaks it.
/// An SMS is the page in one segment where it fits ("Reply 4a to ack, 4r to resolve" included),
/// then the one-tap link; a call reads the page and gathers one key (1 acknowledge, 2 resolve,
/// 3 repeat) posted back to Klaxon. Both ask Twilio to report the outcome to
/// `/twilio/status?n=<notification>` (a failed, undelivered or unanswered page is retried).
/// Twilio answering 201 means it took the page: the attempt counts as sent until it reports otherwise.
public struct TwilioChannel: DeliveryChannel {
    public enum Mode: Sendable { case sms, voice }

    let http: HTTPClient
    let account: TwilioAccount
    let mode: Mode
    let timeout: TimeAmount

    public init(http: HTTPClient = .pages, account: TwilioAccount, mode: Mode, timeout: TimeAmount) {
        self.http = http
        self.account = account
        self.mode = mode
        self.timeout = timeout
    }

    /// GSM-7's single segment.
    public static let segment = 160

    /// The SMS text: the page (the title cut to fit one segment with the reply hint), then the link.
    public static func smsText(_ message: WebhookMessage) -> String {
        let incident = message.incident
        let hint = message.replyCode.map { code in incident.status == "triggered" ? " Reply \(code)a to ack, \(code)r to resolve" : " Reply \(code)r to resolve" } ?? ""
        let head = "[\(incident.urgency.uppercased())] #\(incident.number) "
        var tail = " (\(incident.service.name))" + (incident.status == "triggered" ? "" : " \(incident.status)") + "."
        if let bundle = message.bundleSummary(titles: 2) {
            // A bundle names how many and which first; the rest of the segment is the title's.
            let cut = bundle.count > 90 ? String(bundle.prefix(89)) + "…" : bundle
            tail += " +\(cut)."
        }
        tail += hint
        let room = max(Self.segment - head.count - tail.count, 12)
        let title = incident.title.count > room ? String(incident.title.prefix(room - 1)) + "…" : incident.title
        var text = head + title + tail
        if let link = incident.htmlURL { text += "\n" + link }
        return text
    }

    /// A code or test page: an SMS with its text, or a call that says it (no keys to press).
    public func send(_ notice: Notice, to address: String) async throws {
        var fields = [("To", address), ("From", account.from)]
        switch mode {
        case .sms: fields.append(("Body", notice.text))
        case .voice: fields.append(("Twiml", TwiML.say(notice.spoken)))
        }
        try await request(mode == .sms ? account.messagesURL : account.callsURL, fields, idempotencyKey: notice.id)
    }

    public func deliver(to address: String, idempotencyKey: String, message: WebhookMessage) async throws {
        var fields = [("To", address), ("From", account.from), ("StatusCallback", account.statusCallback(notificationID: message.notificationID))]
        let url: String
        switch mode {
        case .sms:
            url = account.messagesURL
            fields.append(("Body", Self.smsText(message)))
        case .voice:
            url = account.callsURL
            let incident = message.incident
            var spoken = TwiML.spoken(
                number: incident.number, title: incident.title, urgency: incident.urgency, service: incident.service.name, status: incident.status)
            if !message.bundled.isEmpty { spoken += " And \(counted(message.bundled.count, "more incident")) since the last call." }
            fields.append(("Twiml", TwiML.gather(spoken, action: account.voiceAction(userID: message.user.id, incidentID: incident.id))))
        }
        try await request(url, fields, idempotencyKey: idempotencyKey)
    }

    private func request(_ url: String, _ fields: [(String, String)], idempotencyKey: String) async throws {
        let basic = Data("\(account.accountSID):\(account.authToken)".utf8).base64EncodedString()
        // Twilio answering 2xx took the page (its JSON names the message or call; a provider
        // speaking its API may answer less): the attempt counts as sent.
        try await post(
            http, url, idempotencyKey: idempotencyKey, body: Array(FormEncoding.encode(fields).utf8), timeout: timeout,
            what: mode == .sms ? "Twilio SMS" : "Twilio call", contentType: "application/x-www-form-urlencoded",
            headers: [("Authorization", "Basic \(basic)"), ("Accept", "application/json")])
    }
}

extension ChannelKind {
    /// `sms` and `phone`: Twilio when configured, else the provider webhook.
    static func phoneKind(_ kind: ContactKind, _ mode: TwilioChannel.Mode) -> ChannelKind {
        ChannelKind(
            kind: kind,
            channel: { config, timeout in
                let http = HTTPClient.pages(trusting: config.tlsExtraCAFile)
                if let account = config.twilio { return TwilioChannel(http: http, account: account, mode: mode, timeout: timeout) }
                return config.notifyProviderURL.isEmpty ? nil : ProviderChannel(
                    http: http, providerURL: config.notifyProviderURL, token: config.notifyProviderToken, channel: kind.name, timeout: timeout)
            },
            notConfigured: "no provider configured for \(kind.name): set KLAXON_TWILIO_ACCOUNT_SID, KLAXON_TWILIO_AUTH_TOKEN and KLAXON_TWILIO_FROM (or KLAXON_NOTIFY_PROVIDER_URL)")
    }
}
