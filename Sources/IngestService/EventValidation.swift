import KlaxonDomain
import Shared

/// The limits of PRODUCT.md, Events. One violation per bad field, each naming it (dotted path,
/// `links[2].href` for list elements), so a monitor can fix everything in one go.
public enum EventValidation {
    public static let routingKeyLength = 32
    public static let maxDedupKey = 255
    public static let maxSummary = 1024
    public static let maxSource = 255
    public static let maxShortField = 255  // component, group, class, client, custom_details keys
    public static let maxURL = 2048
    public static let maxLinkText = 1024
    public static let maxLinks = 50
    public static let maxImages = 50
    public static let maxCustomDetails = 500
    public static let maxEncodedEventBytes = 512 * 1024

    public static func violations(of event: Event, encodedSize: Int) -> [FieldViolation] {
        var violations: [FieldViolation] = []
        func add(_ field: String, _ description: String) {
            violations.append(FieldViolation(field: field, description: description))
        }
        func length(_ text: String) -> Int { text.unicodeScalars.count }
        // PostgreSQL text cannot hold NUL: refused here, before any batch, on both front doors
        // (the binary decoder refuses it too), so one event's content never fails its neighbours.
        func noNUL(_ field: String, _ text: String) -> Bool {
            guard text.utf8.contains(0) else { return true }
            add(field, "contains a NUL character")
            return false
        }
        func bounded(_ field: String, _ text: String, _ range: ClosedRange<Int>) {
            guard noNUL(field, text) else { return }
            let count = length(text)
            guard !range.contains(count) else { return }
            if count == 0 {
                add(field, "is required")
            } else {
                add(field, "must be \(range.lowerBound)–\(range.upperBound) characters, got \(count)")
            }
        }
        if encodedSize > maxEncodedEventBytes {
            add("event", "is \(encodedSize) bytes encoded; the limit is \(maxEncodedEventBytes)")
        }
        if noNUL("routing_key", event.routingKey) {
            if event.routingKey.isEmpty {
                add("routing_key", "is required")
            } else if length(event.routingKey) != routingKeyLength {
                add("routing_key", "must be \(routingKeyLength) characters, got \(length(event.routingKey))")
            }
        }
        if noNUL("dedup_key", event.dedupKey), length(event.dedupKey) > maxDedupKey {
            add("dedup_key", "must be at most \(maxDedupKey) characters, got \(length(event.dedupKey))")
        }
        switch event.eventAction {
        case nil:
            add("event_action", "is required: trigger, acknowledge or resolve")
        case .acknowledge?, .resolve?:
            if event.dedupKey.isEmpty { add("dedup_key", "is required for \(event.eventAction!.rawValue)") }
        case .trigger?:
            if let payload = event.payload {
                bounded("payload.summary", payload.summary, 1...maxSummary)
                bounded("payload.source", payload.source, 1...maxSource)
                if payload.severity == nil { add("payload.severity", "is required: critical, error, warning or info") }
                if payload.timestampMs < 0 { add("payload.timestamp_ms", "must not be negative") }
                bounded("payload.component", payload.component, 0...maxShortField)
                bounded("payload.group", payload.group, 0...maxShortField)
                bounded("payload.class", payload.eventClass, 0...maxShortField)
                if payload.customDetails.count > maxCustomDetails {
                    add("payload.custom_details", "has \(payload.customDetails.count) entries; the limit is \(maxCustomDetails)")
                }
                for key in payload.customDetails.keys.sorted() where key.isEmpty || length(key) > maxShortField {
                    add("payload.custom_details", "keys must be 1–\(maxShortField) characters")
                    break
                }
                for (key, value) in payload.customDetails.sorted(by: { $0.key < $1.key }) {
                    if key.utf8.contains(0) || value.utf8.contains(0) {
                        add("payload.custom_details", "contains a NUL character (key \(key.debugDescription))")
                        break
                    }
                }
            } else {
                add("payload", "is required for trigger")
            }
        }
        if event.links.count > maxLinks { add("links", "has \(event.links.count) entries; the limit is \(maxLinks)") }
        for (index, link) in event.links.prefix(maxLinks).enumerated() {
            bounded("links[\(index)].href", link.href, 1...maxURL)
            bounded("links[\(index)].text", link.text, 0...maxLinkText)
        }
        if event.images.count > maxImages { add("images", "has \(event.images.count) entries; the limit is \(maxImages)") }
        for (index, image) in event.images.prefix(maxImages).enumerated() {
            bounded("images[\(index)].src", image.src, 1...maxURL)
            bounded("images[\(index)].href", image.href, 0...maxURL)
            bounded("images[\(index)].alt", image.alt, 0...maxLinkText)
        }
        bounded("client", event.client, 0...maxShortField)
        bounded("client_url", event.clientURL, 0...maxURL)
        return violations
    }
}
