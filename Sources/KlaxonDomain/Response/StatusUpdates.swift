import Foundation

/// Status updates to subscribers (reason `status_update`, with the bridge) and to subscribed chat
/// channels; who subscribes.
extension ResponseCore {
    static func postStatusUpdate(_ raw: String, actor: String, _ step: inout ResponseStep) throws(IncidentCommandError) {
        let text = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !text.isEmpty, text.count <= maxStatusUpdateLength else {
            throw .invalidArgument(field: "text", description: "must be 1 to \(maxStatusUpdateLength) characters")
        }
        step.effects.append(.recordStatusUpdate(author: actor, text: text, at: step.now))
        step.timeline(.statusUpdate, actor, ["text": text])
        let details = ["response.status_update": text]
        if !step.state.subscribers.isEmpty {
            step.effects.append(.page(users: step.state.subscribers.sorted(), reason: .statusUpdate, details: details))
        }
        if !step.state.channels.isEmpty { step.effects.append(.postToChannels(reason: .statusUpdate, details: details)) }
    }

    static func subscribe(users: [UInt64], channels: [String], actor: String, _ step: inout ResponseStep) {
        step.addSubscribers(users)
        step.addChannels(channels)
        var details: [String: String] = [:]
        if !users.isEmpty { details["subscribed"] = users.map(String.init).joined(separator: ",") }
        if !channels.isEmpty { details["subscribed_channels"] = channels.map(Masking.url).joined(separator: ",") }
        step.timeline(.note, actor, details)
    }

    static func unsubscribe(users: [UInt64], channels: [String], actor: String, _ step: inout ResponseStep) {
        step.state.subscribers.removeAll { users.contains($0) }
        step.state.channels.removeAll { channels.contains($0) }
        var details: [String: String] = [:]
        if !users.isEmpty { details["unsubscribed"] = users.map(String.init).joined(separator: ",") }
        if !channels.isEmpty { details["unsubscribed_channels"] = channels.map(Masking.url).joined(separator: ",") }
        step.timeline(.note, actor, details)
    }
}
