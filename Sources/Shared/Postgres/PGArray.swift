/// Array parameters for set-based statements such as
/// `INSERT … SELECT … FROM unnest($1::bigint[], $2::text[])`: one statement for a whole batch.
///
/// Sent in PostgreSQL's binary array format: no quoting or escaping on our side and no text
/// parsing on the server's (JSON documents full of quotes and backslashes go through as they
/// are). The element type must be the one the statement casts the parameter to: bigint[] for
/// integers, text[] for strings, bytea[] for bytes, boolean[] for flags.
public struct PGArray: PGEncodable {
    public let bytes: [UInt8]

    private enum ElementType: UInt32 {
        case bool = 16
        case bytea = 17
        case int8 = 20
        case text = 25
    }

    public init(_ values: [Int64]) {
        var writer = Writer(type: .int8, count: values.count, hasNulls: false, payload: values.count * 12)
        for value in values {
            writer.int32(8)
            writer.int64(value)
        }
        bytes = writer.bytes
    }

    /// Integers with NULLs (an absent instant).
    public init(_ values: [Int64?]) {
        var writer = Writer(type: .int8, count: values.count, hasNulls: values.contains(nil), payload: values.count * 12)
        for value in values {
            guard let value else {
                writer.int32(-1)
                continue
            }
            writer.int32(8)
            writer.int64(value)
        }
        bytes = writer.bytes
    }

    public init(_ values: [Bool]) {
        var writer = Writer(type: .bool, count: values.count, hasNulls: false, payload: values.count * 5)
        for value in values {
            writer.int32(1)
            writer.bytes.append(value ? 1 : 0)
        }
        bytes = writer.bytes
    }

    public init(_ values: [Int]) {
        self.init(values.map(Int64.init))
    }

    public init(_ values: [String?]) {
        let payload = values.reduce(0) { $0 + 4 + ($1?.utf8.count ?? 0) }
        var writer = Writer(type: .text, count: values.count, hasNulls: values.contains(nil), payload: payload)
        for value in values {
            guard var value else {
                writer.int32(-1)
                continue
            }
            value.withUTF8 { utf8 in
                writer.int32(Int32(utf8.count))
                writer.bytes.append(contentsOf: utf8)
            }
        }
        bytes = writer.bytes
    }

    public init(_ values: [String]) {
        self.init(values.map(Optional.some))
    }

    public init(bytea values: [[UInt8]]) {
        var writer = Writer(type: .bytea, count: values.count, hasNulls: false, payload: values.reduce(0) { $0 + 4 + $1.count })
        for value in values {
            writer.int32(Int32(value.count))
            writer.bytes.append(contentsOf: value)
        }
        bytes = writer.bytes
    }

    public var pgParam: PGParam { .bytes(bytes) }

    /// The header of a one-dimensional array (array_send's layout), then the caller's elements.
    private struct Writer {
        var bytes: [UInt8] = []

        init(type: ElementType, count: Int, hasNulls: Bool, payload: Int) {
            bytes.reserveCapacity(20 + payload)
            int32(count == 0 ? 0 : 1)  // dimensions: an empty array has none
            int32(hasNulls ? 1 : 0)
            int32(Int32(bitPattern: type.rawValue))
            if count > 0 {
                int32(Int32(count))
                int32(1)  // lower bound
            }
        }

        mutating func int32(_ value: Int32) {
            withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
        }

        mutating func int64(_ value: Int64) {
            withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
        }
    }
}
