import ArgumentParser
import AssignmentService
import Foundation
import Shared
import Yams

/// A configuration file: YAML read into the JSON document the Admin API takes, remembering the
/// line each path came from so the server's errors name the file's line.
struct ConfigFile {
    var path: String
    var json: String
    var lines: [String: Int]

    static func load(_ path: String) throws -> ConfigFile {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw CLIError(code: CLIExit.failed, message: "\(path): cannot read the file")
        }
        return try parse(text, path: path)
    }

    static func parse(_ text: String, path: String) throws -> ConfigFile {
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw CLIError(code: CLIExit.failed, message: "\(path): not valid YAML: \(error)")
        }
        var lines: [String: Int] = [:]
        let value = node.map { convert($0, path: "", lines: &lines) } ?? [String: Any]()
        guard JSONSerialization.isValidJSONObject(value) else {
            throw CLIError(code: CLIExit.failed, message: "\(path):1: the document must be a mapping (users, schedules, escalation_policies, services, surge)")
        }
        let data = try JSONSerialization.data(withJSONObject: value, options: [.sortedKeys])
        return ConfigFile(path: path, json: String(decoding: data, as: UTF8.self), lines: lines)
    }

    static func convert(_ node: Node, path: String, lines: inout [String: Int]) -> Any {
        if let mark = node.mark, lines[path] == nil { lines[path] = mark.line }
        switch node {
        case let .scalar(scalar):
            // Unquoted scalars are typed as YAML reads them; quoted ones are strings.
            let text = scalar.string
            guard scalar.style == .plain || scalar.style == .any else { return text }
            if ["", "~", "null", "Null", "NULL"].contains(text) { return NSNull() }
            if ["true", "True", "TRUE"].contains(text) { return true }
            if ["false", "False", "FALSE"].contains(text) { return false }
            if let number = Int(text) { return number }
            if let number = Double(text), text.contains(".") { return number }
            return text
        case let .mapping(mapping):
            var out: [String: Any] = [:]
            for (key, value) in mapping {
                let name = key.string ?? "\(key)"
                let child = path.isEmpty ? name : "\(path).\(name)"
                if let mark = key.mark { lines[child] = mark.line }
                out[name] = convert(value, path: child, lines: &lines)
            }
            return out
        case let .sequence(sequence):
            return sequence.enumerated().map { index, item in convert(item, path: "\(path)[\(index)]", lines: &lines) }
        case .alias:
            return NSNull()
        }
    }

    /// The line of `field` (a path such as `services[0].escalation_policy`), or of the nearest
    /// enclosing path the file has.
    func line(of field: String) -> Int? {
        var path = field
        while !path.isEmpty {
            if let line = lines[path] { return line }
            if let cut = path.lastIndex(where: { $0 == "." || $0 == "[" }) { path = String(path[..<cut]) } else { break }
        }
        return nil
    }

    /// The server's refusal, one line per problem: file:line: path: what is wrong.
    func describe(_ error: RPCError) -> String {
        guard !error.status.violations.isEmpty else { return "\(path): \(error.code): \(error.message)" }
        return error.status.violations.map { violation in
            let line = line(of: violation.field).map { ":\($0)" } ?? ""
            return "\(path)\(line): \(violation.field): \(violation.description)"
        }.joined(separator: "\n")
    }

    /// JSON (an export) as YAML, keys in the order people read them (name first).
    static func yaml(fromJSON json: String) throws -> String {
        let value = try JSONSerialization.jsonObject(with: Data(json.utf8))
        let node = yamlNode(value, list: nil)
        return try Yams.serialize(node: node, indent: 2, width: -1, allowUnicode: true)
    }

    static func yamlNode(_ value: Any, list: String?) -> Node {
        switch value {
        case let map as [String: Any]:
            let order = list.flatMap { ConfigKeys.allowed[$0] } ?? ConfigKeys.topLevel
            let keys = map.keys.sorted { (order.firstIndex(of: $0) ?? 99, $0) < (order.firstIndex(of: $1) ?? 99, $1) }
            return .mapping(Node.Mapping(keys.map { key in (Node(key), yamlNode(map[key]!, list: key)) }))
        case let items as [Any]:
            return .sequence(Node.Sequence(items.map { yamlNode($0, list: list) }))
        case let number as NSNumber where String(cString: number.objCType) == "c":  // a JSON boolean
            return Node(number.boolValue ? "true" : "false", Tag(.bool))
        case let number as NSNumber:
            return Node("\(number.int64Value)", Tag(.int))
        case let text as String:
            let plain = text.first?.isLetter == true && text.allSatisfy { $0.isLetter || $0.isNumber || " _.@/+-".contains($0) }
                && !["true", "false", "null", "yes", "no", "on", "off", "y", "n", "~"].contains(text.lowercased())
            return Node(text, Tag(.str), plain ? .plain : .doubleQuoted)
        default:
            return Node("null", Tag(.null))
        }
    }
}

struct ApplyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply",
        abstract: "Make Klaxon's configuration match a YAML file (users, contact methods, rules, schedules, policies, services, routing keys).",
        discussion: """
            Prints the plan first: + create, ~ change, - delete (deletes only with --prune). Applies it in one transaction:
            everything, or on any error nothing. Running it again changes nothing. Generated routing keys are printed once.
            """)
    @OptionGroup var client: ClientOptions
    @Option(name: .shortAndLong, help: "The configuration file (YAML).") var file: String
    @Flag(help: "Print the plan and change nothing.") var dryRun = false
    @Flag(help: "Also delete what Klaxon holds and the file does not name.") var prune = false

    func run() async throws {
        let config = try ConfigFile.load(file)
        let reply: ApplyReply
        do {
            reply = try await client.call(Admin.ApplyConfiguration, ConfigDocument(json: config.json, dryRun: dryRun, prune: prune))
        } catch let error as CLIError where error.code == CLIExit.refused {
            // Name the file's lines: ask again for the status (the CLIError flattened it).
            throw CLIError(code: CLIExit.refused, message: try await Self.locate(error, config))
        }
        client.output(reply) {
            if reply.changes.isEmpty { print("no changes: Klaxon already matches \(file)") }
            for change in reply.changes {
                print("\(change.op == "-" ? "−" : change.op) \(change.kind) \(change.name)\(change.detail.isEmpty ? "" : " (\(change.detail))")")
            }
            if !reply.changes.isEmpty {
                print(reply.applied ? "applied \(reply.changes.count) change(s)" : "dry run: nothing changed (\(reply.changes.count) change(s) planned)")
            }
            for key in reply.createdKeys {
                print("routing key \(key.name) of service \(key.serviceID), shown this once: \(key.key)")
            }
        }
    }

    /// The server's violations with the file's line numbers.
    static func locate(_ error: CLIError, _ config: ConfigFile) async throws -> String {
        var lines: [String] = []
        var messageLines = error.message.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        // With violations, the first line only lists their fields: each gets its own line below.
        if messageLines.count > 1 { messageLines.removeFirst() }
        for text in messageLines {
            guard text.hasPrefix("  "), let colon = text.dropFirst(2).firstIndex(of: ":") else {
                lines.append("\(config.path): \(text)")
                continue
            }
            let field = String(text[text.index(text.startIndex, offsetBy: 2)..<colon])
            let rest = text[text.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            let number = config.line(of: field).map { ":\($0)" } ?? ""
            lines.append("\(config.path)\(number): \(field): \(rest)")
        }
        return lines.joined(separator: "\n") + "\nnothing was applied"
    }
}

struct ExportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export", abstract: "Print Klaxon's configuration as YAML that `klaxon apply -f` takes (routing keys by name only).")
    @OptionGroup var client: ClientOptions

    func run() async throws {
        let document: ConfigDocument = try await client.call(Admin.ExportConfiguration, Empty())
        if client.json { return print(document.json) }
        print("# Klaxon configuration, exported \(CLITime.text(Int64(Date().timeIntervalSince1970 * 1000))).")
        print("# Routing keys are secrets shown once: they appear by name only.")
        print(try ConfigFile.yaml(fromJSON: document.json), terminator: "")
    }
}
