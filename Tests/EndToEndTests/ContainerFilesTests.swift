import Foundation
import Testing

/// The container files name the Swift release the package needs: docker/Dockerfile's default
/// build image and compose's build ARG are the official `swift:X.Y-bookworm` for Package.swift's
/// swift-tools-version (the image once said 6.0 while the package needed 6.1, and nothing built).
@Suite struct ContainerFilesTests {
    static func text(_ path: String) throws -> String {
        try String(contentsOf: KlaxonCLI.root.appendingPathComponent(path), encoding: .utf8)
    }

    static func firstMatch(_ pattern: String, in text: String) -> String? {
        guard let range = text.range(of: pattern, options: .regularExpression) else { return nil }
        return String(text[range])
    }

    @Test func theBuildImageMatchesPackageSwift() throws {
        let package = try Self.text("Package.swift")
        let tools = try #require(Self.firstMatch(#"swift-tools-version:\s*[0-9]+\.[0-9]+"#, in: package)?
            .split(separator: ":").last.map { $0.trimmingCharacters(in: .whitespaces) })
        let dockerfile = try Self.text("docker/Dockerfile")
        let dockerImage = try #require(Self.firstMatch(#"(?m)^ARG SWIFT_IMAGE=\S+"#, in: dockerfile)?.split(separator: "=").last.map(String.init))
        #expect(dockerImage == "swift:\(tools)-bookworm", "Dockerfile builds on \(dockerImage); Package.swift needs tools \(tools)")
        let compose = try Self.text("docker/compose.yaml")
        let composeImage = try #require(Self.firstMatch(#"SWIFT_IMAGE: \$\{KLAXON_SWIFT_IMAGE:-[^}]+\}"#, in: compose))
        #expect(composeImage.hasSuffix(":-\(dockerImage)}"), "compose builds on \(composeImage), the Dockerfile on \(dockerImage)")
        // The source build's context leaves out what is not source (a .build is gigabytes).
        let ignored = try Self.text(".dockerignore").split(separator: "\n").map(String.init)
        #expect(ignored.contains(".build") && ignored.contains(".klaxon"))
    }
}
