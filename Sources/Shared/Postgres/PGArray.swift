/// Array parameters in PostgreSQL's text array syntax, for set-based statements such as
/// `INSERT … SELECT … FROM unnest($1::bigint[], $2::text[])`: one statement for a whole batch.
public struct PGArray: PGEncodable {
    public let literal: String

    public init(_ values: [Int64]) {
        literal = "{" + values.map(String.init).joined(separator: ",") + "}"
    }

    public init(_ values: [Int]) {
        literal = "{" + values.map(String.init).joined(separator: ",") + "}"
    }

    public init(_ values: [String?]) {
        var bytes: [UInt8] = [UInt8(ascii: "{")]
        bytes.reserveCapacity(values.reduce(2) { $0 + ($1?.utf8.count ?? 4) + 3 })
        for (index, value) in values.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            if let value { Self.appendQuoted(value, to: &bytes) } else { bytes.append(contentsOf: "NULL".utf8) }
        }
        bytes.append(UInt8(ascii: "}"))
        literal = String(decoding: bytes, as: UTF8.self)
    }

    public init(_ values: [String]) {
        self.init(values.map(Optional.some))
    }

    /// bytea elements, hex-encoded (`\x0a0b…`).
    public init(bytea values: [[UInt8]]) {
        let digits = Array("0123456789abcdef".utf8)
        literal = "{" + values.map { bytes in
            var hex = [UInt8]("\"\\\\x".utf8)
            hex.reserveCapacity(bytes.count * 2 + 5)
            for byte in bytes {
                hex.append(digits[Int(byte >> 4)])
                hex.append(digits[Int(byte & 0x0F)])
            }
            hex.append(UInt8(ascii: "\""))
            return String(decoding: hex, as: UTF8.self)
        }.joined(separator: ",") + "}"
    }

    public var pgParam: PGParam { .text(literal) }

    /// A double-quoted element: backslash and double quote escaped, everything else literal.
    static func quote(_ value: String) -> String {
        var quoted: [UInt8] = []
        appendQuoted(value, to: &quoted)
        return String(decoding: quoted, as: UTF8.self)
    }

    static func appendQuoted(_ value: String, to bytes: inout [UInt8]) {
        bytes.append(UInt8(ascii: "\""))
        var value = value
        value.withUTF8 { utf8 in
            if !utf8.contains(where: { $0 == UInt8(ascii: "\\") || $0 == UInt8(ascii: "\"") }) {
                bytes.append(contentsOf: utf8)  // the common case: nothing to escape
                return
            }
            for byte in utf8 {
                if byte == UInt8(ascii: "\\") || byte == UInt8(ascii: "\"") { bytes.append(UInt8(ascii: "\\")) }
                bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}
