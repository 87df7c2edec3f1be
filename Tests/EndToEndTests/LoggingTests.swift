import Foundation
import KlaxonTestSupport
import Testing

/// `KLAXON_LOG_FORMAT=json`: one JSON object a line, metadata as fields (issue 13, point 4).
@Suite struct LoggingTests {
    @Test func jsonLogsAreOneObjectALine() async throws {
        let db = try await TestDatabase.create(migrate: false)
        let cli = try KlaxonCLI(address: "127.0.0.1:1", token: nil)
        let migrated = try await cli("migrate", environment: ["KLAXON_DATABASE_URL": db.url, "KLAXON_LOG_FORMAT": "json"])
        #expect(migrated.status == 0, "\(migrated.err)")
        #expect(migrated.out.hasPrefix("applied: 0001_foundation, "))
        let lines = migrated.err.split(separator: "\n").map(String.init)
        #expect(!lines.isEmpty)
        var versions: [String] = []
        for line in lines {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "not JSON: \(line)")
            #expect(object["level"] as? String == "info")
            #expect((object["ts"] as? String)?.hasSuffix("Z") == true)
            if object["message"] as? String == "applied migration", let version = object["db.migration"] as? String { versions.append(version) }
        }
        #expect(versions.first == "0001_foundation" && versions.count == lines.count)
        let wrong = try await cli("migrate", environment: ["KLAXON_DATABASE_URL": db.url, "KLAXON_LOG_FORMAT": "xml"])
        #expect(wrong.status == 64 && wrong.err == "error: KLAXON_LOG_FORMAT=xml is not plain or json\n")
        await db.drop()
    }
}
