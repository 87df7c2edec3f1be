import Foundation

/// TwiML (Twilio's call and message markup) Klaxon answers with: the voice page that reads the
/// incident and gathers one key (1 acknowledge, 2 resolve, 3 repeat), and SMS replies.
public enum TwiML {
    /// What a call says: the incident, then the keys. A long title is cut (Twilio takes at most
    /// 4,000 characters of TwiML, and nobody listens to more).
    public static func spoken(number: UInt64, title: String, urgency: String, service: String, status: String) -> String {
        let said = title.count > 300 ? String(title.prefix(300)) + "…" : title
        return "Klaxon page. \(urgency) urgency incident \(number): \(said). Service \(service). Status \(status)."
    }

    /// The call: says `text`, gathers one key posted to `action` (a URL Klaxon composed: Twilio
    /// signs its request to it), says it again once if nothing was pressed.
    public static func gather(_ text: String, action: String) -> String {
        let keys = "Press 1 to acknowledge, 2 to resolve, 3 to repeat."
        let gather = "<Gather numDigits=\"1\" timeout=\"8\" method=\"POST\" action=\"\(Markup.escape(action))\"><Say>\(Markup.escape(text)) \(keys)</Say></Gather>"
        return "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response>\(gather)\(gather)<Say>No key was pressed. Goodbye.</Say></Response>"
    }

    public static func say(_ text: String) -> String {
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Say>\(Markup.escape(text))</Say><Hangup/></Response>"
    }

    public static func message(_ text: String) -> String {
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>\(Markup.escape(text))</Message></Response>"
    }
}

/// Twilio's REST API as Klaxon uses it (`KLAXON_TWILIO_BASE_URL` and the rest): the base URL (Twilio's, or a provider
/// that speaks its API), the account, its auth token (Basic auth out, signature key in), the
/// number pages come from, and where Twilio calls back (`KLAXON_PUBLIC_URL`).
public struct TwilioAccount: Sendable, Equatable {
    public var baseURL: String
    public var accountSID: String
    public var authToken: String
    public var from: String
    public var publicURL: String

    public init(baseURL: String, accountSID: String, authToken: String, from: String, publicURL: String) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.accountSID = accountSID
        self.authToken = authToken
        self.from = from
        self.publicURL = publicURL.hasSuffix("/") ? String(publicURL.dropLast()) : publicURL
    }

    public var messagesURL: String { "\(baseURL)/2010-04-01/Accounts/\(accountSID)/Messages.json" }
    public var callsURL: String { "\(baseURL)/2010-04-01/Accounts/\(accountSID)/Calls.json" }
    public func statusCallback(notificationID: String) -> String { "\(publicURL)/twilio/status?n=\(notificationID)" }
    public func voiceAction(userID: UInt64, incidentID: UInt64) -> String { "\(publicURL)/twilio/voice?u=\(userID)&i=\(incidentID)" }
}
