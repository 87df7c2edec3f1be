import Foundation
import KlaxonTestSupport
import Testing

/// The committed protoc-c output and Swift messages must be what scripts/gen-proto makes from
/// proto/ today.
@Suite struct GeneratedCodeTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static var protocCInstalled: Bool {
        (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").contains {
            FileManager.default.isExecutableFile(atPath: "\($0)/protoc-c")
        }
    }

    @Test(.enabled(if: protocCInstalled, "protoc-c is not installed")) func committedCIsCurrent() async throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("klaxon-gen-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: out) }
        let status = try await offCooperativePool { () -> Int32 in
            let process = ChildProcess()
            process.executableURL = Self.root.appendingPathComponent("scripts/gen-proto")
            process.arguments = [out.path]
            try process.run()
            process.waitUntilExit()
            return process.terminationStatus
        }
        try #require(status == 0)
        let committed = Self.root.appendingPathComponent("Sources/KlaxonProto")
        let fresh = try Self.files(out)
        #expect(fresh.keys.sorted() == (try Self.files(committed)).keys.sorted())
        for (path, contents) in fresh {
            let current = try Data(contentsOf: committed.appendingPathComponent(path))
            #expect(current == contents, "\(path) is stale: run scripts/gen-proto and commit the result")
        }
        let swift = try Data(contentsOf: out.appendingPathComponent("Generated.swift"))
        #expect(try Data(contentsOf: Self.root.appendingPathComponent("Sources/Shared/Messages/Generated.swift")) == swift,
                "Sources/Shared/Messages/Generated.swift is stale: run scripts/gen-proto and commit the result")
    }

    static func files(_ folder: URL) throws -> [String: Data] {
        var files: [String: Data] = [:]
        for path in try FileManager.default.subpathsOfDirectory(atPath: folder.path)
        where path.hasSuffix(".c") || path.hasSuffix(".h") {
            files[path] = try Data(contentsOf: folder.appendingPathComponent(path))
        }
        return files
    }
}
