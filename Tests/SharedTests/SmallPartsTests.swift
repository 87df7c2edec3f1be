import Foundation
import Shared
import KlaxonTestSupport
import Testing

@Suite struct RandomIDTests {
    @Test func idsAreVersion4UUIDsInLowercaseAndDistinct() {
        var seen = Set<String>()
        for _ in 0..<10_000 {
            let id = RandomID.uuid()
            let parts = id.split(separator: "-", omittingEmptySubsequences: false).map(String.init)
            #expect(parts.map(\.count) == [8, 4, 4, 4, 12], "\(id)")
            #expect(id.allSatisfy { "0123456789abcdef-".contains($0) }, "\(id)")
            #expect(parts[2].first == "4", "version 4: \(id)")
            #expect("89ab".contains(parts[3].first!), "RFC 4122 variant: \(id)")
            #expect(UUID(uuidString: id)?.uuidString.lowercased() == id)
            seen.insert(id)
        }
        #expect(seen.count == 10_000)
    }
}

@Suite struct OutboxBundleTests {
    @Test func bundlesRoundTripAndPlainRowsAreThemselves() throws {
        let messages: [(method: String, body: [UInt8])] = [("a.v1.A/One", [1, 2, 3]), ("a.v1.A/Two", []), ("a.v1.A/One", Array(repeating: 7, count: 70_000))]
        let decoded = try Outbox.messages(method: Outbox.bundleMethod, body: Outbox.bundle(messages))
        #expect(decoded.map(\.method) == messages.map(\.method))
        #expect(decoded.map(\.body) == messages.map(\.body))
        let plain = try Outbox.messages(method: "a.v1.A/One", body: [9])
        #expect(plain.count == 1 && plain[0].method == "a.v1.A/One" && plain[0].body == [9])
    }

    @Test func malformedBundlesAreRefusedNotGuessed() {
        let good = Outbox.bundle([("a.v1.A/One", [1, 2, 3])])
        for bad in [Array(good.dropLast()), [0, 0, 0, 0], [0, 0, 1], [0, 0, 0, 3, 0xFF, 0xFF, 0xFF], good + [0, 0]] {
            #expect(throws: (any Error).self) { try Outbox.messages(method: Outbox.bundleMethod, body: bad) }
        }
    }
}

/// The configuration reference and the code agree both ways (issue 13, point 7): every
/// `KLAXON_*` variable the sources read is documented in README.md (a service's in the
/// configuration table), and every variable in that table is one the code reads.
@Suite struct ConfigurationReferenceTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Variables named in the sources (string literals and `variable(key)`-made names of settings).
    static func variablesInSources() throws -> Set<String> {
        var found = Set(KlaxonConfig.settings.map(\.variable))
        let pattern = try NSRegularExpression(pattern: #"KLAXON_[A-Z0-9_]*[A-Z0-9]"#)
        let sources = root.appendingPathComponent("Sources")
        let files = FileManager.default.enumerator(at: sources, includingPropertiesForKeys: nil)!
        for case let file as URL in files where file.pathExtension == "swift" {
            // Test fixtures are not the product.
            if file.path.contains("/KlaxonTestSupport/") { continue }
            let text = try String(contentsOf: file, encoding: .utf8)
            for match in pattern.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                found.insert(String(text[Range(match.range, in: text)!]))
            }
        }
        return found
    }

    @Test func readmeDocumentsEveryVariableTheCodeReadsAndNoOther() throws {
        let readme = try String(contentsOf: Self.root.appendingPathComponent("README.md"), encoding: .utf8)
        let inCode = try Self.variablesInSources()
        // The CLI's own (documented in the CLI section) and the benchmarks' are not service settings.
        let clientSide: Set<String> = ["KLAXON_ADDRESS", "KLAXON_TOKEN", "KLAXON_CLI_CONFIG", "KLAXON_BENCH_LOG_LEVEL"]
        let tableRows = readme.split(separator: "\n").filter { $0.hasPrefix("| `KLAXON_") }
        let inTable = Set(tableRows.compactMap { row -> String? in
            let name = row.dropFirst(3).prefix { $0 != "`" }
            return name.isEmpty ? nil : String(name)
        })
        #expect(inCode.count > 25, "the scan found too little: \(inCode.sorted())")
        for variable in inCode.sorted() {
            if clientSide.contains(variable) {
                #expect(readme.contains("`\(variable)`") || readme.contains("$\(variable)"), "README does not mention \(variable), which the code reads")
            } else {
                #expect(inTable.contains(variable), "README's configuration reference lacks \(variable), which the code reads")
            }
        }
        for variable in inTable.sorted() {
            #expect(inCode.contains(variable), "README documents \(variable), which no code reads")
        }
    }
}

/// Settings live in one table (KlaxonConfig.settings): environment parsing and the README's
/// configuration reference both follow it.
@Suite struct KlaxonConfigTests {
    @Test func everySettingIsReadAndDocumentedWithItsDefault() throws {
        let readme = try String(contentsOf: URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("README.md"), encoding: .utf8)
        for setting in KlaxonConfig.settings {
            let row = readme.split(separator: "\n").first { $0.hasPrefix("| `\(setting.variable)` |") }
            #expect(row != nil, "README's configuration table lacks \(setting.variable)")
            if let row, !setting.defaultValue.isEmpty {
                #expect(row.contains("| \(setting.defaultValue) |") || setting.key.hasSuffix(".address"), "README's default of \(setting.variable)")
            }
        }
        let environment = ["KLAXON_DATABASE_URL": "postgresql://x", "KLAXON_RPC_MAX_IN_FLIGHT": "7", "KLAXON_NOTIFIER_LISTEN": "0.0.0.0:9000",
                           "KLAXON_SMTP_SERVER": "mail:25"]
        let config = try KlaxonConfig.fromEnvironment(environment)
        #expect(config.maxInFlightPerConnection == 7)
        #expect(config.notifierAddress == HostPort(host: "0.0.0.0", port: 9000), "the address follows the listener unless set")
        #expect(config.smtpServer == "mail:25")
        #expect(throws: ConfigError.self) { try KlaxonConfig.fromEnvironment(["KLAXON_DATABASE_URL": "x", "KLAXON_RPC_MAX_IN_FLIGHT": "0"]) }
        #expect(throws: ConfigError.self) { try KlaxonConfig.fromEnvironment(["KLAXON_DATABASE_URL": "x", "KLAXON_SMTP_SERVER": "nope"]) }
        // `environment` is the inverse: another process configured by it reads the same settings.
        var original = config
        original.ingestHTTPListen = HostPort(host: "127.0.0.1", port: 0)
        original.notifierAddress = HostPort(host: "notifier", port: 7403)
        original.frameDeadlineSeconds = 3
        let copy = try KlaxonConfig.fromEnvironment(original.environment)
        for setting in KlaxonConfig.settings {
            #expect(copy.environment[setting.variable] == original.environment[setting.variable], "\(setting.variable)")
        }
        #expect(copy.notifierAddress == HostPort(host: "notifier", port: 7403) && copy.frameDeadlineSeconds == 3)
    }
}

/// One-tap link tokens: what was signed verifies; any change, another key, or time past the
/// expiry does not.
@Suite struct OneTapLinkTokenTests {
    @Test func aTokenVerifiesOnlyUnchangedUnexpiredAndWithItsKey() {
        let key = "k-0123456789abcdef0123456789abcdef"
        let link = OneTapLink(userID: 7, incidentID: 42, expiresAtMs: 1_000_000 + OneTapLink.lifetimeMs)
        let token = link.token(key: key)
        #expect(OneTapLink.verify(token, key: key, nowMs: 1_000_000) == .success(link))
        #expect(OneTapLink.verify(token, key: key, nowMs: link.expiresAtMs) == .failure(.expired(atMs: link.expiresAtMs)))
        #expect(OneTapLink.verify(token, key: key + "x", nowMs: 1_000_000) == .failure(.tampered))
        #expect(OneTapLink.verify(token.replacingOccurrences(of: "v1.7.", with: "v1.8."), key: key, nowMs: 1_000_000) == .failure(.tampered))
        #expect(OneTapLink.verify(token.replacingOccurrences(of: ".42.", with: ".43."), key: key, nowMs: 1_000_000) == .failure(.tampered))
        #expect(OneTapLink.verify(String(token.dropLast(3)), key: key, nowMs: 1_000_000) == .failure(.tampered))
        #expect(OneTapLink.verify("v1.7.42", key: key, nowMs: 0) == .failure(.malformed))
        #expect(OneTapLink.verify("", key: key, nowMs: 0) == .failure(.malformed))
        #expect(link.url(publicURL: "https://k.example/", key: key) == "https://k.example/i/" + token)
    }

    /// The signature's base64url is written by hand: the same text as Foundation's base64 with
    /// `+/` made `-_` and the padding dropped, for every length and every byte value.
    @Test func base64urlIsFoundationsWithoutPadding() {
        var generator = SplitMix(state: 29)
        for length in 0...70 {
            let bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: generator.next()) } + (length == 64 ? Array(0...255).map(UInt8.init) : [])
            let expected = Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
                .replacingOccurrences(of: "=", with: "")
            #expect(bytes.withUnsafeBytes { OneTapLink.base64url($0) } == expected, "length \(bytes.count)")
        }
    }
}

/// Twilio's signature scheme, against a value computed by the `twilio` package's
/// RequestValidator (`compute_signature('https://x.example/twilio/sms?a=1', {'Body': '4a', 'From': '+4917'})`
/// with auth token "tok"): the same bytes, and any change refused.
@Suite struct TwilioSignatureTests {
    @Test func matchesTwiliosOwnValidator() {
        let url = "https://x.example/twilio/sms?a=1", fields = [("From", "+4917"), ("Body", "4a")]
        #expect(TwilioSignature.sign(url: url, fields: fields, authToken: "tok") == "EAgACqLGgj9GCAv2cvt3WLFyY5s=")
        #expect(TwilioSignature.valid(signature: "EAgACqLGgj9GCAv2cvt3WLFyY5s=", url: url, fields: fields, authToken: "tok"))
        #expect(!TwilioSignature.valid(signature: "EAgACqLGgj9GCAv2cvt3WLFyY5s=", url: url, fields: [("From", "+4917"), ("Body", "4r")], authToken: "tok"))
        #expect(!TwilioSignature.valid(signature: "EAgACqLGgj9GCAv2cvt3WLFyY5s=", url: url + "&b=2", fields: fields, authToken: "tok"))
        #expect(!TwilioSignature.valid(signature: nil, url: url, fields: fields, authToken: "tok"))
        #expect(!TwilioSignature.valid(signature: "EAgACqLGgj9GCAv2cvt3WLFyY5s=", url: url, fields: fields, authToken: "other"))
    }
}

/// An outbox relay's second lane: a poke reaches the overflow waker only while the first loop is
/// busy (running a step), so an idle relay claims alone and a busy one gets help at once.
@Suite struct WakerOverflowTests {
    /// Waits on `waker` until `ms` from now; true when a poke ended the wait before the deadline.
    static func poked(_ waker: Waker, withinMs ms: Int64) async -> Bool {
        let clock = SystemWallClock()
        let deadline = clock.nowMs() + ms
        await waker.wait(until: deadline, on: clock)
        return clock.nowMs() < deadline
    }

    @Test func aPokeReachesTheOverflowOnlyWhileBusy() async {
        let lane = Waker()
        let waker = Waker(overflow: lane)
        waker.poke()  // idle: the loop itself takes it
        #expect(await Self.poked(waker, withinMs: 5_000))
        #expect(await !Self.poked(lane, withinMs: 100))
        waker.setBusy(true)
        waker.poke()  // busy: the lane too, and the loop keeps it for after its step
        #expect(await Self.poked(lane, withinMs: 5_000))
        waker.setBusy(false)
        #expect(await Self.poked(waker, withinMs: 5_000))
    }
}
