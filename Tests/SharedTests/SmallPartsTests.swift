import Foundation
import Shared
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
    }
}
