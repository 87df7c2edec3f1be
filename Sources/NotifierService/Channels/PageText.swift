import Foundation

/// What a person reads: one line with everything needed to act, for chat, SMS and push. A major
/// incident's pages add what the response carries: the role asked and the message (a responder
/// request), the update (a status update), and the conference bridge.
public enum PageText {
    public static func render(_ message: WebhookMessage) -> String {
        let incident = message.incident
        var text = "[\(incident.urgency.uppercased())] #\(incident.number) \(incident.title) — service \(incident.service.name), "
            + "status \(incident.status)"
        switch message.reason {
        case "escalated": text += " (escalated to you)"
        case "ack_timeout": text += " (acknowledgement timed out)"
        case "reassigned": text += " (reassigned to you)"
        default: break
        }
        if let response = message.response {
            if message.reason == "responder_request" {
                let role = response["requested_role"].map { " as \($0.replacingOccurrences(of: "_", with: " "))" } ?? ""
                text += ". You are asked to join\(role)"
                if let note = response["message"], !note.isEmpty { text += ": \(note)" }
            }
            if message.reason == "status_update", let update = response["status_update"] { text += ". Status update: \(update)" }
            let bridge = [response["conference_url"], response["conference_phone"]].compactMap { $0 }.filter { !$0.isEmpty }
            if !bridge.isEmpty { text += ". Bridge: \(bridge.joined(separator: " · "))" }
        }
        if let bundle = message.bundleSummary() { text += ". And \(bundle)" }
        if let url = incident.htmlURL { text += " \(url)" }
        return text
    }
}
