import Foundation

/// Small JSON helpers for jsonb columns holding string maps.
public enum JSON {
    /// A flat string map as a JSON object, keys sorted.
    public static func object(_ values: [String: String]) -> String {
        var writer = JSONWriter(capacity: 64 + values.count * 32)
        writer.object(values)
        return writer.string
    }

    public static func stringMap(_ text: String) -> [String: String] {
        guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else { return [:] }
        return object.mapValues { value in
            if let string = value as? String { return string }
            if let data = try? JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed, .sortedKeys]) {
                return String(decoding: data, as: UTF8.self)
            }
            return "\(value)"
        }
    }
}
