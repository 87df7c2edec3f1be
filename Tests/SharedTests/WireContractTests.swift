import Foundation
import Shared
import Testing

/// Every message generated from proto/, checked the same way: it round-trips through
/// libprotobuf-c, and the golden encodings recorded in Golden/ still decode to what they meant.
///
/// A golden fixture is the encoding of a message's `sample` at the time it was recorded
/// (`NAME.bin`) and what each field held (`NAME.fields`, one `path=value` per line). Fixtures are
/// never rewritten: a change that renumbers or retypes a field makes the old bytes decode to other
/// values, and this test fails. A new field is fine (old bytes simply lack it: rolling deploys).
/// A new message gets its fixture with `KLAXON_RECORD_GOLDEN=1 swift test --filter WireContractTests`.
@Suite struct WireContractTests {
    static let golden = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden")

    @Test func everyMessageRoundTrips() throws {
        for type in WireMessages.all { try Self.roundTrip(type) }
    }

    static func roundTrip<M: GeneratedMessage>(_ type: M.Type) throws {
        let sample = M.sample
        #expect(try M(wire: sample.wireBytes()) == sample, "\(M.protoName) sample does not round-trip")
        let empty = try M(wire: [])
        #expect(try M(wire: empty.wireBytes()) == empty, "\(M.protoName) default does not round-trip")
        #expect(empty.wireBytes().isEmpty, "\(M.protoName) default must encode to nothing")
    }

    @Test func goldenEncodingsStillDecodeToWhatTheyMeant() throws {
        let record = ProcessInfo.processInfo.environment["KLAXON_RECORD_GOLDEN"] == "1"
        for type in WireMessages.all { try Self.checkGolden(type, record: record) }
    }

    static func checkGolden<M: GeneratedMessage>(_ type: M.Type, record: Bool) throws {
        let bin = golden.appendingPathComponent("\(M.protoName).bin")
        let fields = golden.appendingPathComponent("\(M.protoName).fields")
        guard let bytes = FileManager.default.contents(atPath: bin.path),
              let expected = FileManager.default.contents(atPath: fields.path).flatMap({ String(data: $0, encoding: .utf8) })
        else {
            if record {
                try FileManager.default.createDirectory(at: golden, withIntermediateDirectories: true)
                try Data(M.sample.wireBytes()).write(to: bin)
                try (flatten(M.sample).joined(separator: "\n") + "\n").write(to: fields, atomically: true, encoding: .utf8)
                return
            }
            Issue.record("no golden fixture for \(M.protoName): record it with KLAXON_RECORD_GOLDEN=1 swift test --filter WireContractTests")
            return
        }
        let decoded = try M(wire: [UInt8](bytes))
        let now = Set(flatten(decoded))
        for line in expected.split(separator: "\n").map(String.init) where !now.contains(line) {
            Issue.record("\(M.protoName): the golden encoding no longer decodes to \(line) (a field renumbered or retyped?)")
        }
    }

    /// `path=value` for every leaf of a message value, sorted.
    static func flatten(_ value: Any) -> [String] {
        var lines: [String] = []
        func walk(_ value: Any, _ path: String) {
            let mirror = Mirror(reflecting: value)
            switch mirror.displayStyle {
            case .optional:
                if let child = mirror.children.first { walk(child.value, path) } else { lines.append("\(path)=nil") }
            case .struct:
                for child in mirror.children {
                    let label = child.label ?? "?"
                    walk(child.value, path.isEmpty ? label : "\(path).\(label)")
                }
            case .collection:
                for (index, child) in mirror.children.enumerated() { walk(child.value, "\(path)[\(index)]") }
            case .dictionary:
                for child in mirror.children {
                    let pair = Array(Mirror(reflecting: child.value).children)
                    walk(pair[1].value, "\(path)[\(pair[0].value)]")
                }
            default:
                lines.append("\(path)=\(value)")
            }
        }
        walk(value, "")
        return lines.sorted()
    }
}
