import Foundation
import KlaxonDomain
import Testing

@Suite struct RFC3339Tests {
    @Test func knownInstants() {
        #expect(RFC3339.string(millis: 0) == "1970-01-01T00:00:00.000Z")
        #expect(RFC3339.string(millis: 1_764_554_940_123) == "2025-12-01T02:09:00.123Z")
        #expect(RFC3339.string(millis: 951_782_400_000) == "2000-02-29T00:00:00.000Z")  // a leap day
        #expect(RFC3339.string(millis: -1) == "1969-12-31T23:59:59.999Z")
    }

    /// The same text as Foundation's formatter, which pages used before, over many instants.
    @Test func agreesWithFoundation() {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        formatter.timeZone = TimeZone(identifier: "UTC")
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2_000 {
            let millis = Int64.random(in: 0...4_102_444_800_000, using: &generator)  // 1970 – 2100
            let expected = formatter.string(from: Date(timeIntervalSince1970: Double(millis) / 1000))
            // Foundation rounds through a Double: compare to the second, and the milliseconds exactly.
            let ours = RFC3339.string(millis: millis)
            #expect(ours.prefix(19) == expected.prefix(19), "\(millis)")
            #expect(ours.hasSuffix(String(format: ".%03dZ", Int(millis % 1000))), "\(millis)")
        }
    }
}
