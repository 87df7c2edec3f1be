import Foundation

/// PostgreSQL's text form of a one-dimensional array of plain values (`{1,2}`, `{a,b}`), as
/// `array::text` reads it back (no quoting inside the values used here).
public enum PGTextArray {
    public static func parse(_ text: String) -> [String] {
        let inner = text.trimmingCharacters(in: CharacterSet(charactersIn: "{}"))
        guard !inner.isEmpty else { return [] }
        return inner.split(separator: ",").map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "\"")) }
    }
}
