import Foundation

/// What a person reads: one line with everything needed to act, for chat, SMS and push.
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
        if let url = incident.htmlURL { text += " \(url)" }
        return text
    }
}
