import Foundation
import KlaxonTestSupport
import Testing

/// The posix_spawn child the suites and the benchmark start their servers and tools with.
@Suite struct ChildProcessTests {
    /// Runs `script` under /bin/sh and returns its status, reason and standard output.
    static func shell(_ script: String, directory: String? = nil) async throws -> (Int32, ChildProcess.TerminationReason, String) {
        try await offCooperativePool {
            let process = ChildProcess()
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", script]
            process.environment = ["KLAXON_CHILD": "seen"]
            if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
            let out = Pipe()
            process.standardOutput = out
            process.standardError = FileHandle.nullDevice
            try process.run()
            // EOF arrives only if the parent's copy of the write end was closed.
            let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            return (process.terminationStatus, process.terminationReason, text)
        }
    }

    @Test func exitCodeOutputDirectoryAndEnvironmentReachTheParent() async throws {
        let (status, reason, text) = try await Self.shell("pwd; echo $KLAXON_CHILD; echo oops >&2; exit 3", directory: "/tmp")
        #expect(status == 3)
        #expect(reason == .exit)
        #expect(text == "/tmp\nseen\n")
    }

    @Test func theChildHoldsOnlyItsThreeStandardDescriptors() async throws {
        // A pipe the parent holds (Foundation's are not close-on-exec) must not leak into the child.
        let held = Pipe()
        defer { try? held.fileHandleForWriting.close() }
        let (status, _, text) = try await Self.shell("ls /proc/$$/fd")
        #expect(status == 0)
        #expect(text.split(separator: "\n").sorted() == ["0", "1", "2"])
    }

    @Test func aSignalledChildReportsTheSignal() async throws {
        let process = ChildProcess()
        process.executableURL = URL(fileURLWithPath: "/bin/sleep")
        process.arguments = ["30"]
        try process.run()
        #expect(process.isRunning)
        #expect(process.processIdentifier > 0)
        process.terminate()
        #expect(await process.exited(within: .seconds(10)))
        #expect(process.terminationReason == .uncaughtSignal)
        #expect(process.terminationStatus == SIGTERM)
    }

    @Test func aMissingExecutableIsAnErrorNamingIt() throws {
        let process = ChildProcess()
        process.executableURL = URL(fileURLWithPath: "/nonexistent/klaxon-tool")
        #expect(throws: ChildProcess.SpawnError.self) { try process.run() }
        #expect(!process.isRunning)
    }
}
