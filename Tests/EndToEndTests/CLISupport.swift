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
            let process = ChildProcess()
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

/// A local server answering as another pager's REST API does (a Python script the test writes):
/// launched off the cooperative pool with the test's environment, as the CLI runs are. It writes
/// its port to a file, and exits when `stop` closes its stdin (pyenv's shim is a process of its
/// own, so killing the started pid would leave the server running).
struct FixtureServer {
    let url: String
    private let stdin: Pipe

    /// Appended to every script (which defines `Handler`, reads `sys.argv[1]` as the port file).
    static let serving = """

        import os, sys, threading
        from http.server import ThreadingHTTPServer
        threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
        threading.Timer(600, lambda: os._exit(0)).start()
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        open(sys.argv[1], "w").write(str(server.server_address[1]))
        server.serve_forever()

        """

    /// Runs `python3 script portFile arguments…` from the CLI's folder; the script defines
    /// `Handler` (a BaseHTTPRequestHandler), the serving is appended.
    static func start(_ cli: KlaxonCLI, name: String, script: String, arguments: [String]) async throws -> FixtureServer {
        let path = try cli.write("\(name).py", script + serving)
        let portFile = cli.folder.appendingPathComponent("\(name).port").path
        let environment = ProcessInfo.processInfo.environment
        let stdin = try await offCooperativePool { () -> Pipe in
            let process = ChildProcess()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3", path, portFile] + arguments
            process.environment = environment
            let stdin = Pipe()
            process.standardInput = stdin
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            return stdin
        }
        let started = await eventually(timeout: .seconds(10)) { !((try? String(contentsOfFile: portFile, encoding: .utf8)) ?? "").isEmpty }
        guard started else {
            try? stdin.fileHandleForWriting.close()
            throw FixtureError(message: "the \(name) fixture server did not start")
        }
        return FixtureServer(url: "http://127.0.0.1:\(try String(contentsOfFile: portFile, encoding: .utf8))", stdin: stdin)
    }

    func stop() { try? stdin.fileHandleForWriting.close() }

    struct FixtureError: Error { var message: String }
}
