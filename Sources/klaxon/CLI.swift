import ArgumentParser
import Foundation
import NIOCore
import Shared
import Yams

/// What every operator command shares: where Klaxon is, the token, the output format, and how
/// failures become messages on stderr and documented exit codes.
///
/// Exit codes: 0 done; 1 failed here (a file that cannot be read, an invalid configuration
/// file); 3 refused by the server (invalid, not found, failed precondition, …); 4 cannot reach
/// Klaxon; 5 not authenticated or not allowed; 64 usage (a wrong command, option or value).
enum CLIExit {
    static let failed: Int32 = 1
    static let refused: Int32 = 3
    static let unreachable: Int32 = 4
    static let notAllowed: Int32 = 5
    static let usage: Int32 = 64
}

struct ClientOptions: ParsableArguments {
    @Option(help: "Klaxon's address (Assignment's binary protocol), host:port. Default: $KLAXON_ADDRESS, the CLI config file, or 127.0.0.1:7402.")
    var address: String?
    @Option(help: "Bearer token. Default: $KLAXON_TOKEN or the CLI config file.")
    var token: String?
    @Flag(help: "Print JSON (for scripts) instead of tables.")
    var json = false
    @Option(help: "PEM CA to verify Klaxon's TLS certificate with (turns TLS on). Default: $KLAXON_TLS_CA_FILE or the CLI config file's `ca:`.")
    var ca: String?
    @Flag(help: "TLS verified against the system's roots (a public certificate). On with --ca too.")
    var tls = false
    @Option(help: "PEM client certificate for mutual TLS (with --key). Default: $KLAXON_TLS_CLIENT_CERT_FILE or the CLI config file's `cert:`.")
    var cert: String?
    @Option(help: "PEM private key of --cert. Default: $KLAXON_TLS_CLIENT_KEY_FILE or the CLI config file's `key:`.")
    var key: String?

    /// `$KLAXON_CLI_CONFIG`, else `.klaxon/cli.yaml` in the current folder (written by
    /// scripts/run), else `~/.config/klaxon/cli.yaml`: YAML with `address:` and `token:`.
    static func configFile() -> (path: String, values: [String: String])? {
        let environment = ProcessInfo.processInfo.environment
        var candidates = [".klaxon/cli.yaml"]
        if let home = environment["HOME"] { candidates.append("\(home)/.config/klaxon/cli.yaml") }
        if let explicit = environment["KLAXON_CLI_CONFIG"], !explicit.isEmpty { candidates = [explicit] }
        for path in candidates {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { continue }
            let values = (try? Yams.load(yaml: text) as? [String: Any]).flatMap { $0 }?.compactMapValues { "\($0)" } ?? [:]
            return (path, values)
        }
        return nil
    }

    /// Where Klaxon is, the token and where it comes from (`--token`, `$KLAXON_TOKEN`, or the CLI
    /// config file's path), and TLS: the config file read once for all of them.
    func resolved() throws -> (address: HostPort, display: String, token: String?, tokenSource: String, tls: ClientTLS?) {
        let environment = ProcessInfo.processInfo.environment
        let file = Self.configFile()
        let tls = try Self.clientTLS(ca: ca, tls: tls, cert: cert, key: key, file: file?.values ?? [:])
        let text = address ?? environment["KLAXON_ADDRESS"].flatMap { $0.isEmpty ? nil : $0 } ?? file?.values["address"] ?? "127.0.0.1:7402"
        guard let hostPort = HostPort(text) else {
            throw CLIError(code: CLIExit.usage, message: "the address \"\(text)\" is not host:port")
        }
        if let token { return (hostPort, text, token, "--token", tls) }
        if let bearer = environment["KLAXON_TOKEN"], !bearer.isEmpty { return (hostPort, text, bearer, "$KLAXON_TOKEN", tls) }
        if let file, let bearer = file.values["token"] { return (hostPort, text, bearer, file.path, tls) }
        return (hostPort, text, nil, "", tls)
    }

    /// TLS when asked: `--ca`, `$KLAXON_TLS_CA_FILE` or the config file's `ca:` (a private CA),
    /// or `--tls` / `tls: true` (the system's roots); `$KLAXON_TLS_SERVER_NAME` or `server_name:`
    /// is the name checked when the address is an IP. For mutual TLS the CLI presents `--cert`/`--key`,
    /// `$KLAXON_TLS_CLIENT_CERT_FILE`/`_KEY_FILE` or the config file's `cert:`/`key:` (both or neither).
    /// (send-event, which reads no config file, passes none.)
    static func clientTLS(ca: String?, tls: Bool, cert: String?, key: String?, file: [String: String]) throws -> ClientTLS? {
        let environment = ProcessInfo.processInfo.environment
        func setting(_ option: String?, _ variable: String, _ fileKey: String) -> String? {
            option ?? environment[variable].flatMap { $0.isEmpty ? nil : $0 } ?? file[fileKey]
        }
        let caFile = setting(ca, "KLAXON_TLS_CA_FILE", "ca")
        let certFile = setting(cert, "KLAXON_TLS_CLIENT_CERT_FILE", "cert"), keyFile = setting(key, "KLAXON_TLS_CLIENT_KEY_FILE", "key")
        guard (certFile == nil) == (keyFile == nil) else {
            throw CLIError(code: CLIExit.usage, message: "a client certificate needs its key: give --cert and --key (or cert: and key:) together")
        }
        guard caFile != nil || certFile != nil || tls || file["tls"] == "true" else { return nil }
        let name = environment["KLAXON_TLS_SERVER_NAME"].flatMap { $0.isEmpty ? nil : $0 } ?? file["server_name"]
        return ClientTLS(caFile: caFile, serverName: name, certFile: certFile, keyFile: keyFile)
    }

    /// Runs one call; failures become a `CLIError` with a message a person reads.
    func call<Request, Reply>(_ method: RPCMethod<Request, Reply>, _ request: Request, timeout: TimeAmount? = nil) async throws -> Reply {
        let (hostPort, display, bearer, source, tls) = try resolved()
        var configuration = RPCClientConfiguration(host: hostPort.host, port: hostPort.port)
        configuration.tls = tls
        configuration.interceptors.append(BearerInterceptor { bearer })
        let client = RPCClient(configuration: configuration)
        defer { Task { await client.close() } }
        do {
            return try await client.call(method, request, timeout: timeout)
        } catch let error as RPCError {
            throw CLIError.from(error, address: display, hasToken: bearer != nil, tokenSource: source)
        }
    }

    /// Prints `value` as JSON (`--json`) or runs `table`.
    func output(_ value: Any, table: () -> Void) {
        if json { print(JSONOut.text(value)) } else { table() }
    }
}

struct CLIError: Error, CustomStringConvertible {
    var code: Int32
    var message: String
    var description: String { message }

    /// The file a user creates to give the CLI its token (`$KLAXON_CLI_CONFIG` if set).
    static var userConfigPath: String {
        let environment = ProcessInfo.processInfo.environment
        if let explicit = environment["KLAXON_CLI_CONFIG"], !explicit.isEmpty { return explicit }
        return "~/.config/klaxon/cli.yaml"
    }

    static func from(_ error: RPCError, address: String, hasToken: Bool, tokenSource: String = "") -> CLIError {
        switch error.code {
        case .unavailable where ["SSL", "TLS", "certificate", "CERTIFICATE", "handshake"].contains { error.message.contains($0) }:
            return CLIError(
                code: CLIExit.unreachable,
                message: "TLS with Klaxon at \(address) failed: \(error.message) — check --ca (the CA that signed Klaxon's certificate), "
                    + "and --cert/--key when Klaxon requires client certificates")
        case .unavailable where error.message.contains("connect") || error.message.contains("unreachable") || error.message.contains("connection"):
            return CLIError(code: CLIExit.unreachable, message: "cannot reach Klaxon at \(address) — is it running? (scripts/run)")
        case .unauthenticated:
            let hint = hasToken
                ? (tokenSource.isEmpty ? "" : " (the token from \(tokenSource))")
                : """
                   — no token: pass --token, set KLAXON_TOKEN, or create \(userConfigPath) (mode 600) with \
                  `address: \(address)` and `token: <an admin token>`. The first admin token is the one scripts/run \
                  writes there, or the server's KLAXON_BOOTSTRAP_TOKEN
                  """
            return CLIError(code: CLIExit.notAllowed, message: "not authenticated: \(error.message)\(hint)")
        case .permissionDenied:
            return CLIError(code: CLIExit.notAllowed, message: "not allowed: \(error.message)")
        default:
            var lines = ["\(error.code): \(error.message)"]
            for violation in error.status.violations { lines.append("  \(violation.field): \(violation.description)") }
            return CLIError(code: CLIExit.refused, message: lines.joined(separator: "\n"))
        }
    }
}

/// Plain tables: columns padded to their widest cell.
struct Table {
    var headers: [String]
    var rows: [[String]] = []

    init(_ headers: String...) { self.headers = headers }

    mutating func add(_ cells: String...) { rows.append(cells) }

    func print(empty: String = "(none)") {
        guard !rows.isEmpty else {
            Swift.print(empty)
            return
        }
        let widths = headers.indices.map { column in ([headers] + rows).map { $0.indices.contains(column) ? $0[column].count : 0 }.max() ?? 0 }
        for row in [headers] + rows {
            let cells = row.enumerated().map { index, cell in index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0) }
            Swift.print(cells.joined(separator: "  "))
        }
    }
}

/// Messages as JSON for `--json`: every stored property by its snake_case name (the proto's
/// field names), enums by their names, optionals absent when nil.
enum JSONOut {
    static func text(_ value: Any) -> String {
        let object = convert(value)
        guard JSONSerialization.isValidJSONObject(object) || object is [Any] else { return "\(object)" }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    static func convert(_ value: Any) -> Any {
        switch value {
        case let text as String: return text
        case let flag as Bool: return flag
        case let number as Int: return number
        case let number as Int64: return number
        case let number as UInt64: return number
        case let number as UInt32: return number
        case let number as Int32: return number
        case let number as Double: return number
        case let bytes as [UInt8]: return bytes.map { String(format: "%02x", $0) }.joined()
        case let map as [String: String]: return map
        case let list as [Any]: return list.map(convert)
        case let map as [String: Any]: return map.mapValues(convert)
        default: break
        }
        let mirror = Mirror(reflecting: value)
        if mirror.displayStyle == .optional {
            return mirror.children.first.map { convert($0.value) } ?? NSNull()
        }
        if mirror.displayStyle == .enum {
            if let raw = (value as? any RawRepresentable)?.rawValue { return convert(raw) }
            return "\(value)"
        }
        if mirror.displayStyle == .collection { return mirror.children.map { convert($0.value) } }
        var object: [String: Any] = [:]
        for child in mirror.children {
            guard let label = child.label else { continue }
            let converted = convert(child.value)
            if converted is NSNull { continue }
            object[snake(label)] = converted
        }
        return object
    }

    static func snake(_ name: String) -> String {
        var out = ""
        for character in name {
            if character.isUppercase {
                if !out.isEmpty, !(out.last == "_") { out.append("_") }
                out += character.lowercased()
            } else {
                out.append(character)
            }
        }
        return out.replacingOccurrences(of: "i_d", with: "id").replacingOccurrences(of: "u_r_l", with: "url")
    }
}

enum CLITime {
    static func text(_ millis: Int64) -> String {
        guard millis != 0 else { return "-" }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: Date(timeIntervalSince1970: Double(millis) / 1000))
    }

    /// RFC 3339 or "now".
    static func parse(_ text: String) throws -> Int64 {
        if text == "now" { return Int64(Date().timeIntervalSince1970 * 1000) }
        let formatter = ISO8601DateFormatter()
        for options: ISO8601DateFormatter.Options in [[.withInternetDateTime, .withFractionalSeconds], [.withInternetDateTime]] {
            formatter.formatOptions = options
            if let date = formatter.date(from: text) { return Int64((date.timeIntervalSince1970 * 1000).rounded()) }
        }
        throw CLIError(code: CLIExit.usage, message: "\"\(text)\" is not an instant: use RFC 3339 such as 2026-12-01T09:00:00Z, or now")
    }

    /// "90", "90s", "30m", "4h", "7d" → seconds.
    static func duration(_ text: String) throws -> UInt32 {
        let units: [Character: UInt32] = ["s": 1, "m": 60, "h": 3600, "d": 86_400]
        var digits = text
        var unit: UInt32 = 1
        if let last = text.last, let factor = units[last] {
            digits = String(text.dropLast())
            unit = factor
        }
        guard let value = UInt32(digits), value.multipliedReportingOverflow(by: unit).overflow == false else {
            throw CLIError(code: CLIExit.usage, message: "\"\(text)\" is not a duration: use seconds or 30s, 15m, 4h, 7d")
        }
        return value * unit
    }
}

/// Parses a list of ids: "1,2,3".
func idList(_ text: String, _ option: String) throws -> [UInt64] {
    let ids = text.split(separator: ",").map { UInt64($0.trimmingCharacters(in: .whitespaces)) }
    guard !ids.isEmpty, ids.allSatisfy({ $0 != nil && $0 != 0 }) else {
        throw CLIError(code: CLIExit.usage, message: "\(option) must be a comma-separated list of ids, got \"\(text)\"")
    }
    return ids.map { $0! }
}
