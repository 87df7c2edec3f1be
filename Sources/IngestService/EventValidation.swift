import KlaxonDomain
import Shared

/// The limits of PRODUCT.md, Events. One violation per bad field, each naming it.
public enum EventValidation {
    public static let routingKeyLength = 32
    public static let maxDedupKey = 255
    public static let maxSummary = 1024
    public static let maxSource = 255
    public static let maxEncodedEventBytes = 512 * 1024

    public static func violations(of event: Event, encodedSize: Int? = nil) -> [FieldViolation] {
        var violations: [FieldViolation] = []
        func add(_ field: String, _ description: String) {
            violations.append(FieldViolation(field: field, description: description))
        }
        if let encodedSize, encodedSize > maxEncodedEventBytes {
            add("event", "encoded event is \(encodedSize) bytes; the limit is \(maxEncodedEventBytes)")
        }
        if event.routingKey.isEmpty {
            add("routing_key", "is required")
        } else if event.routingKey.count != routingKeyLength {
            add("routing_key", "must be \(routingKeyLength) characters, got \(event.routingKey.count)")
        }
        guard let action = event.eventAction else {
            add("event_action", "is required: trigger, acknowledge or resolve")
            return violations
        }
        if event.dedupKey.count > maxDedupKey {
            add("dedup_key", "must be at most \(maxDedupKey) characters, got \(event.dedupKey.count)")
        }
        if action != .trigger, event.dedupKey.isEmpty {
            add("dedup_key", "is required for \(action.rawValue)")
        }
        if action == .trigger {
            guard let payload = event.payload else {
                add("payload", "is required for trigger")
                return violations
            }
            if payload.summary.isEmpty || payload.summary.count > maxSummary {
                add("payload.summary", "must be 1–\(maxSummary) characters, got \(payload.summary.count)")
            }
            if payload.source.isEmpty || payload.source.count > maxSource {
                add("payload.source", "must be 1–\(maxSource) characters, got \(payload.source.count)")
            }
        }
        return violations
    }
}
