import Foundation
import KlaxonTestSupport
import Testing

/// Runs the built `klaxon` binary (.build/debug/klaxon, made by `swift build --build-tests`) as a
/// person would, against a running Pipeline: address and token from the environment.
struct KlaxonCLI {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static var binary: String { root.appendingPathComponent(".build/debug/klaxon").path }

    var address: String
    var token: String?
    /// Where the commands run (no .klaxon/cli.yaml there).
    let folder: URL

    init(address: String, token: String?) throws {
        self.address = address
        self.token = token
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("klaxon-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    struct Result {
        var status: Int32
        var out: String
        var err: String
        var lines: [String] { out.split(separator: "\n").map(String.init) }
    }

    func callAsFunction(_ arguments: String..., environment extra: [String: String] = [:]) async throws -> Result {
        try await run(arguments, environment: extra)
    }

    func run(_ arguments: [String], environment extra: [String: String] = [:]) async throws -> Result {
        try #require(FileManager.default.isExecutableFile(atPath: Self.binary), "build the CLI first: swift build --build-tests")
        var environment = ProcessInfo.processInfo.environment
        environment["KLAXON_ADDRESS"] = address
        environment["KLAXON_TOKEN"] = token ?? ""
        environment["KLAXON_CLI_CONFIG"] = folder.appendingPathComponent("no-config.yaml").path
        environment["HOME"] = folder.path
        for (key, value) in extra { environment[key] = value }
        let folder = self.folder
        let environmentFinal = environment
        return try await offCooperativePool {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: Self.binary)
            process.arguments = arguments
            process.environment = environmentFinal
            process.currentDirectoryURL = folder
            let out = Pipe(), err = Pipe()
            process.standardOutput = out
            process.standardError = err
            try process.run()
            // Read both pipes at once: a full pipe would block the child.
            let errData = NIOLockedData()
            let reader = Thread { errData.set(err.fileHandleForReading.readAllRetrying()) }
            reader.start()
            let outData = out.fileHandleForReading.readAllRetrying()
            process.waitUntilExit()
            while !errData.done { usleep(1000) }
            return Result(status: process.terminationStatus, out: String(decoding: outData, as: UTF8.self), err: String(decoding: errData.data, as: UTF8.self))
        }
    }

    func write(_ name: String, _ text: String) throws -> String {
        let path = folder.appendingPathComponent(name).path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}

final class NIOLockedData: @unchecked Sendable {
    private let lock = NSLock()
    private var value = Data()
    private var finished = false
    func set(_ data: Data) { lock.lock(); value = data; finished = true; lock.unlock() }
    var done: Bool { lock.lock(); defer { lock.unlock() }; return finished }
    var data: Data { lock.lock(); defer { lock.unlock() }; return value }
}
