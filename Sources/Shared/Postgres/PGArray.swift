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
        literal = "{" + values.map { $0.map(Self.quote) ?? "NULL" }.joined(separator: ",") + "}"
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
        var quoted: [UInt8] = [UInt8(ascii: "\"")]
        quoted.reserveCapacity(value.utf8.count + 8)
        for byte in value.utf8 {
            if byte == UInt8(ascii: "\\") || byte == UInt8(ascii: "\"") { quoted.append(UInt8(ascii: "\\")) }
            quoted.append(byte)
        }
        quoted.append(UInt8(ascii: "\""))
        return String(decoding: quoted, as: UTF8.self)
    }
}
