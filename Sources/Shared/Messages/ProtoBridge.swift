import CProtobufC
import KlaxonProto

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A message body that could not be decoded: the field it concerns (dotted path, empty when the
/// whole message is malformed) and what is wrong with it.
public struct WireError: Error, Equatable, Sendable, CustomStringConvertible {
    public var field: String
    public var reason: String
    public init(field: String, reason: String) {
        self.field = field
        self.reason = reason
    }
    public var description: String { field.isEmpty ? reason : "\(field): \(reason)" }
}

/// A protobuf message with a Swift value type, encoded and decoded through libprotobuf-c.
public protocol WireMessage: Sendable {
    init(wire bytes: [UInt8]) throws(WireError)
    func wireBytes() -> [UInt8]
}

/// A message generated from proto/ (Sources/Shared/Messages/Generated.swift): its full proto
/// name and a sample with every field set, for the generic round-trip, golden and fuzz checks.
public protocol GeneratedMessage: WireMessage, Equatable {
    static var protoName: String { get }
    static var sample: Self { get }
}

/// A proto enum's Swift form with its wire numbers written out (generated, never by case order).
///
/// Rule for values a newer peer sends (rolling deploys): a number this build does not know reads
/// as unspecified (nil), like 0; the rest of the message still decodes. A request that needs the
/// field is then refused by its handler as if the value were missing, naming the field; replies,
/// snapshots and lists carry on without it. Unknown values in a repeated enum field are dropped.
public protocol ProtoEnum: Sendable, Equatable {
    init?(wire: Int32)
    var wire: Int32 { get }
}

/// One RPC: its full name on the wire and its request and reply types. Generated per service
/// (`Ingest.SendEvent`); servers register and clients call these, never a method-name string.
public struct RPCMethod<Request: WireMessage, Reply: WireMessage>: Sendable, CustomStringConvertible {
    public let name: String
    public init(_ name: String) { self.name = name }
    public var description: String { name }
}

/// The bridge between a Swift message struct and its protoc-c struct.
/// `init(c:)` reads an unpacked C message (strings already checked for UTF-8 and NUL);
/// `fill(_:arena:)` writes into a C message whose memory belongs to `arena`.
protocol CBridged: WireMessage {
    associatedtype CMessage
    static var descriptor: UnsafePointer<ProtobufCMessageDescriptor> { get }
    init(c: UnsafePointer<CMessage>) throws(WireError)
    func fill(_ c: UnsafeMutablePointer<CMessage>, arena: CArena)
}

extension CBridged {
    public init(wire bytes: [UInt8]) throws(WireError) {
        self = try ProtoCodec.decode(Self.self, bytes)
    }

    public func wireBytes() -> [UInt8] {
        let arena = CArena()
        return ProtoCodec.pack(makeC(arena: arena))
    }

    func makeC(arena: CArena) -> UnsafeMutablePointer<CMessage> {
        let c = arena.message(CMessage.self, Self.descriptor)
        fill(c, arena: arena)
        return c
    }
}

/// A descriptor's real address, read from a message the generated `__init` set up (a Swift copy
/// of the C global would have another address, which protobuf-c rejects). Also for map entries.
func messageDescriptor<C>(_ initialize: (UnsafeMutablePointer<C>) -> Void) -> UnsafePointer<ProtobufCMessageDescriptor> {
    let raw = UnsafeMutableRawPointer.allocate(byteCount: MemoryLayout<C>.size, alignment: MemoryLayout<C>.alignment)
    defer { raw.deallocate() }
    initialize(raw.bindMemory(to: C.self, capacity: 1))
    return raw.assumingMemoryBound(to: ProtobufCMessage.self).pointee.descriptor
}

/// C memory for building one message tree to pack; everything is freed when the arena goes.
final class CArena {
    private var blocks: [UnsafeMutableRawPointer] = []

    deinit {
        for block in blocks { free(block) }
    }

    private func allocate(_ bytes: Int) -> UnsafeMutableRawPointer {
        let block = calloc(1, max(bytes, 1))!
        blocks.append(block)
        return block
    }

    /// A NUL-terminated copy. Values reaching here come from validated wire input or from
    /// PostgreSQL text, neither of which can hold NUL.
    func string(_ value: String) -> UnsafeMutablePointer<CChar> {
        var utf8 = Array(value.utf8)
        utf8.append(0)
        let block = allocate(utf8.count)
        block.copyMemory(from: utf8, byteCount: utf8.count)
        return block.assumingMemoryBound(to: CChar.self)
    }

    func bytes(_ value: [UInt8]) -> ProtobufCBinaryData {
        let block = allocate(value.count)
        if !value.isEmpty { block.copyMemory(from: value, byteCount: value.count) }
        return ProtobufCBinaryData(len: value.count, data: block.assumingMemoryBound(to: UInt8.self))
    }

    func message<C>(_ type: C.Type, _ descriptor: UnsafePointer<ProtobufCMessageDescriptor>)
        -> UnsafeMutablePointer<C>
    {
        let block = allocate(max(MemoryLayout<C>.size, Int(descriptor.pointee.sizeof_message)))
        protobuf_c_message_init(descriptor, block)
        return block.assumingMemoryBound(to: C.self)
    }

    /// A C array of pointers to messages, as protobuf-c lays out repeated message fields.
    func messages<T: CBridged>(_ values: [T]) -> (Int, UnsafeMutablePointer<UnsafeMutablePointer<T.CMessage>?>?) {
        scalars(values.map { Optional($0.makeC(arena: self)) })
    }

    /// A repeated string field: a C array of NUL-terminated copies.
    func strings(_ values: [String]) -> (Int, UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) {
        scalars(values.map { Optional(string($0)) })
    }

    /// A repeated scalar field: a C array of values.
    func scalars<T>(_ values: [T]) -> (Int, UnsafeMutablePointer<T>?) {
        guard !values.isEmpty else { return (0, nil) }
        let array = allocate(values.count * MemoryLayout<T>.stride).bindMemory(to: T.self, capacity: values.count)
        for (index, value) in values.enumerated() { array[index] = value }
        return (values.count, array)
    }

    /// A map field: protobuf-c represents it as repeated entry messages with key and value;
    /// `initialize` is the entry's generated `__init`. Sorted keys make the encoding deterministic.
    func map<Entry>(
        _ values: [String: String], _ initialize: (UnsafeMutablePointer<Entry>) -> Void,
        set: (UnsafeMutablePointer<Entry>, UnsafeMutablePointer<CChar>, UnsafeMutablePointer<CChar>) -> Void
    ) -> (Int, UnsafeMutablePointer<UnsafeMutablePointer<Entry>?>?) {
        scalars(values.keys.sorted().map { key -> UnsafeMutablePointer<Entry>? in
            let entry = allocate(MemoryLayout<Entry>.size).bindMemory(to: Entry.self, capacity: 1)
            initialize(entry)
            set(entry, string(key), string(values[key]!))
            return entry
        })
    }
}

/// Reading helpers for unpacked C messages.
enum CRead {
    static func string(_ pointer: UnsafeMutablePointer<CChar>?) -> String {
        guard let pointer else { return "" }
        return String(cString: pointer)
    }

    static func bytes(_ data: ProtobufCBinaryData) -> [UInt8] {
        guard data.len > 0, let base = data.data else { return [] }
        return Array(UnsafeBufferPointer(start: base, count: data.len))
    }

    static func messages<T: CBridged>(
        _ count: Int, _ array: UnsafeMutablePointer<UnsafeMutablePointer<T.CMessage>?>?, field: String
    ) throws(WireError) -> [T] {
        guard count > 0, let array else { return [] }
        var result: [T] = []
        result.reserveCapacity(count)
        for index in 0..<count {
            guard let element = array[index] else { continue }
            do throws(WireError) {
                result.append(try T(c: element))
            } catch {
                throw WireError(field: "\(field)[\(index)].\(error.field)", reason: error.reason)
            }
        }
        return result
    }

    static func map<Entry>(
        _ count: Int, _ array: UnsafeMutablePointer<UnsafeMutablePointer<Entry>?>?,
        _ read: (UnsafeMutablePointer<Entry>) -> (String, String)
    ) -> [String: String] {
        guard count > 0, let array else { return [:] }
        var result: [String: String] = [:]
        for index in 0..<count {
            guard let entry = array[index] else { continue }
            let (key, value) = read(entry)
            result[key] = value  // protobuf semantics: the last entry for a key wins
        }
        return result
    }

    static func strings(_ count: Int, _ array: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> [String] {
        guard count > 0, let array else { return [] }
        return (0..<count).map { string(array[$0]) }
    }

    static func scalars<T>(_ count: Int, _ array: UnsafeMutablePointer<T>?) -> [T] {
        guard count > 0, let array else { return [] }
        return Array(UnsafeBufferPointer(start: array, count: count))
    }

    static func nested<T: CBridged>(_ pointer: UnsafeMutablePointer<T.CMessage>?, field: String) throws(WireError) -> T? {
        guard let pointer else { return nil }
        do throws(WireError) {
            return try T(c: pointer)
        } catch {
            throw WireError(field: error.field.isEmpty ? field : "\(field).\(error.field)", reason: error.reason)
        }
    }
}

enum ProtoCodec {
    static func pack<C>(_ message: UnsafeMutablePointer<C>) -> [UInt8] {
        let base = UnsafeRawPointer(message).assumingMemoryBound(to: ProtobufCMessage.self)
        let size = protobuf_c_message_get_packed_size(base)
        guard size > 0 else { return [] }
        return [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
            count = protobuf_c_message_pack(base, buffer.baseAddress!)
        }
    }

    static func decode<T: CBridged>(_ type: T.Type, _ bytes: [UInt8]) throws(WireError) -> T {
        let descriptor = T.descriptor
        let result: Result<T, WireError> = bytes.withUnsafeBytes { raw in
            var placeholder: UInt8 = 0
            let base = raw.baseAddress?.assumingMemoryBound(to: UInt8.self)
            guard
                let message = withUnsafeMutablePointer(to: &placeholder, { dummy in
                    protobuf_c_message_unpack(descriptor, nil, raw.count, base ?? UnsafePointer(dummy))
                })
            else {
                let name = String(cString: descriptor.pointee.name)
                let located = StringFieldValidator.locateMalformed(raw, descriptor)
                let why = located.reason == "no field to blame" ? "" : ": \(located.reason)"
                return .failure(WireError(field: located.field, reason: "malformed \(name) message\(why)"))
            }
            defer { protobuf_c_message_free_unpacked(message, nil) }
            do throws(WireError) {
                // protobuf-c accepts any bytes in string fields; check them before Swift sees them.
                try StringFieldValidator.validate(raw, descriptor)
                return .success(try T(c: UnsafeRawPointer(message).assumingMemoryBound(to: T.CMessage.self)))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }
}

/// The encoded values of one length-delimited field of a message (a repeated message field's
/// items, each still encoded), other fields skipped: a batch decoded item by item. Throws when
/// the message itself is malformed (a truncated tag or length, an unknown wire type).
public enum WireFields {
    public static func encodedItems(_ bytes: [UInt8], field wanted: UInt32, name: String) throws(WireError) -> [ArraySlice<UInt8>] {
        // Offsets found with the validator's reader, sliced out of the array afterwards.
        var ranges: [Range<Int>] = []
        var failure: WireError?
        bytes.withUnsafeBytes { raw in
            do throws(WireError) {
                var reader = StringFieldValidator.Reader(bytes: raw)
                while !reader.atEnd {
                    let tag = try reader.varint("body")
                    let number = UInt32(truncatingIfNeeded: tag >> 3)
                    switch tag & 7 {
                    case 0: _ = try reader.varint("body")
                    case 1: try reader.skip(8, "body")
                    case 5: try reader.skip(4, "body")
                    case 2:
                        let length = try reader.varint("body")
                        _ = try reader.take(length, number == wanted ? name : "body")
                        if number == wanted { ranges.append(reader.offset - Int(length)..<reader.offset) }
                    default:
                        throw WireError(field: "body", reason: "unsupported wire type \(tag & 7)")
                    }
                }
            } catch {
                failure = error
            }
        }
        if let failure { throw failure }  // withUnsafeBytes rethrows untyped errors: carried out by hand
        return ranges.map { bytes[$0] }
    }
}
