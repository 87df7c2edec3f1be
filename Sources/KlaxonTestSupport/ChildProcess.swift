import CSpawn
import Foundation

/// A child process started with posix_spawn, for the tests and the benchmark.
///
/// Foundation's `Process.run()` on Linux crashes its caller now and then
/// (swift-corelibs-foundation #5472: it copies 256 bytes of every `/proc/self/fd` entry, past the
/// end of glibc's buffer; fixed upstream after the toolchain here). This keeps the part of
/// `Process`'s shape the suites use, so a suite reads the same either way.
///
/// - `standardInput`, `standardOutput`, `standardError`: nil inherits the parent's, a `Pipe`
///   gives the child its end (the parent's copy of that end is closed once the child runs), a
///   `FileHandle` is used as it is (`FileHandle.nullDevice` is /dev/null).
/// - Every other descriptor is closed in the child, and its signals are back to their defaults.
public final class ChildProcess: @unchecked Sendable {
    public enum TerminationReason: Sendable { case exit, uncaughtSignal }

    public struct SpawnError: Error, CustomStringConvertible {
        public var path: String
        public var code: Int32
        public var description: String { "cannot start \(path): \(String(cString: strerror(code)))" }
    }

    public var executableURL: URL?
    public var arguments: [String] = []
    /// nil: the parent's environment.
    public var environment: [String: String]?
    public var currentDirectoryURL: URL?
    public var standardInput: Any?
    public var standardOutput: Any?
    public var standardError: Any?

    private let state = NSCondition()
    private var pid: pid_t = 0
    private var waitStatus: Int32?

    public init() {}

    public var processIdentifier: Int32 { state.withLock { pid } }

    public var isRunning: Bool { state.withLock { pid != 0 && waitStatus == nil } }

    /// The exit code, or the signal that ended the child (as Foundation's `Process` reports it).
    public var terminationStatus: Int32 {
        state.withLock {
            guard let status = waitStatus else { return 0 }
            return status & 0x7f == 0 ? (status >> 8) & 0xff : status & 0x7f
        }
    }

    public var terminationReason: TerminationReason {
        state.withLock { (waitStatus ?? 0) & 0x7f == 0 ? .exit : .uncaughtSignal }
    }

    public func run() throws {
        guard let executable = executableURL?.path else { throw SpawnError(path: "(no executable)", code: ENOENT) }
        var opened: [Int32] = []
        var parentsCopies: [FileHandle] = []
        defer { for fd in opened { close(fd) } }
        func descriptor(_ value: Any?, input: Bool) -> Int32 {
            switch value {
            case let pipe as Pipe:
                let childs = input ? pipe.fileHandleForReading : pipe.fileHandleForWriting
                parentsCopies.append(childs)
                return childs.fileDescriptor
            case let handle as FileHandle where handle.fileDescriptor >= 0:
                return handle.fileDescriptor
            case is FileHandle:
                let fd = open("/dev/null", O_RDWR | O_CLOEXEC)
                if fd >= 0 { opened.append(fd) }
                return fd
            default:
                return -1
            }
        }
        let input = descriptor(standardInput, input: true)
        let output = descriptor(standardOutput, input: false)
        let error = descriptor(standardError, input: false)
        let environment = (environment ?? ProcessInfo.processInfo.environment).map { "\($0.key)=\($0.value)" }
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup($0) } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var child: pid_t = 0
        let code = state.withLock {
            let code = klaxon_spawn(&child, executable, argv, envp, currentDirectoryURL?.path, input, output, error)
            if code == 0 { pid = child }
            return code
        }
        guard code == 0 else { throw SpawnError(path: executable, code: code) }
        for handle in parentsCopies { try? handle.close() }
        let spawned = child
        let reaper = Thread { [self] in
            var status: Int32 = 0
            while waitpid(spawned, &status, 0) < 0, errno == EINTR {}
            state.withLock {
                waitStatus = status
                state.broadcast()
            }
        }
        reaper.name = "reap \(child)"
        reaper.start()
    }

    public func waitUntilExit() {
        state.withLock {
            while pid != 0, waitStatus == nil { state.wait() }
        }
    }

    /// Waits off the cooperative pool; true once the child has exited.
    public func exited(within timeout: Duration) async -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while isRunning, clock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        return !isRunning
    }

    public func terminate() { signal(SIGTERM) }

    public func interrupt() { signal(SIGINT) }

    /// Sends `signal` while the child runs (never to a reaped pid that may have been reused).
    public func signal(_ number: Int32) {
        state.withLock {
            if pid != 0, waitStatus == nil { _ = kill(pid, number) }
        }
    }
}
