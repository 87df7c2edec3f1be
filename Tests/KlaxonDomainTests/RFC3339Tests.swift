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

    /// Parsing, by arithmetic too: what Alertmanager, Opsgenie and PagerDuty send.
    @Test func parsesWhatMonitorsSend() {
        #expect(RFC3339.millis("2026-12-05T10:00:00Z") == 1_796_464_800_000)
        #expect(RFC3339.millis("2026-12-05T10:00:00.5Z") == 1_796_464_800_500)
        #expect(RFC3339.millis("2026-12-05T10:00:00.123456789Z") == 1_796_464_800_123)
        #expect(RFC3339.millis("2026-12-05T11:30:00+01:30") == 1_796_464_800_000)
        #expect(RFC3339.millis("2015-07-17T08:42:58.315+0000") == 1_437_122_578_315)  // PagerDuty's own example
        #expect(RFC3339.millis("2026-12-05T05:00:00-05:00") == 1_796_464_800_000)
        #expect(RFC3339.millis("0001-01-01T00:00:00Z") == -62_135_596_800_000)  // Go's zero time
        for bad in ["", "2026-12-05", "2026-12-05T10:00:00", "2026-13-05T10:00:00Z", "2026-02-30T10:00:00Z", "2026-12-05T10:00:00.Z",
                    "2026-12-05T10:00:00Zx", "2026-12-05T24:00:00Z", "2026-12-05T10:00:00+1:00", "２026-12-05T10:00:00Z"] {
            #expect(RFC3339.millis(bad) == nil, "\(bad)")
        }
    }

    @Test func parsingRoundTripsWithFormatting() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2_000 {
            let millis = Int64.random(in: 0...4_102_444_800_000, using: &generator)
            #expect(RFC3339.millis(RFC3339.string(millis: millis)) == millis, "\(millis)")
        }
    }
}
