import CProtobufC

/// Walks encoded protobuf bytes alongside a protobuf-c descriptor and checks every string field
/// (at any depth, map keys and values included) for valid UTF-8 and the absence of NUL, which
/// protobuf-c would otherwise pass through or silently cut at.
enum StringFieldValidator {
    static let maxDepth = 64

    static func validate(
        _ bytes: UnsafeRawBufferPointer, _ descriptor: UnsafePointer<ProtobufCMessageDescriptor>,
        path: String = "", depth: Int = 0
    ) throws(WireError) {
        guard depth < maxDepth else { throw WireError(field: path, reason: "messages nested too deeply") }
        var reader = Reader(bytes: bytes)
        while !reader.atEnd {
            let tag = try reader.varint(path)
            let number = UInt32(truncatingIfNeeded: tag >> 3)
            let wireType = tag & 7
            switch wireType {
            case 0: _ = try reader.varint(path)
            case 1: try reader.skip(8, path)
            case 5: try reader.skip(4, path)
            case 2:
                let length = try reader.varint(path)
                let slice = try reader.take(length, path)
                guard let field = protobuf_c_message_descriptor_get_field(descriptor, number) else { continue }
                let name = String(cString: field.pointee.name)
                let fieldPath = path.isEmpty ? name : "\(path).\(name)"
                switch field.pointee.type {
                case PROTOBUF_C_TYPE_STRING:
                    try checkString(slice, fieldPath)
                case PROTOBUF_C_TYPE_MESSAGE:
                    guard let nested = field.pointee.descriptor else { continue }
                    // Map entries are nested messages too: their strings report as "map.key" / "map.value".
                    try validate(
                        slice, nested.assumingMemoryBound(to: ProtobufCMessageDescriptor.self), path: fieldPath,
                        depth: depth + 1)
                default:
                    continue
                }
            default:
                throw WireError(field: path, reason: "unsupported wire type \(wireType)")
            }
        }
    }

    /// Where protobuf-c's refusal of `bytes` comes from, as a field path and a reason: a
    /// truncated field, a field of the wrong wire type, or the same inside a nested message.
    /// "body" when no single field is to blame.
    static func locateMalformed(
        _ bytes: UnsafeRawBufferPointer, _ descriptor: UnsafePointer<ProtobufCMessageDescriptor>, path: String = "", depth: Int = 0
    ) -> (field: String, reason: String) {
        let here = path.isEmpty ? "body" : path
        guard depth < maxDepth else { return (here, "messages nested too deeply") }
        var reader = Reader(bytes: bytes)
        while !reader.atEnd {
            guard let tag = try? reader.varint(path) else { return (here, "truncated field tag") }
            let number = UInt32(truncatingIfNeeded: tag >> 3)
            let wireType = tag & 7
            let field = protobuf_c_message_descriptor_get_field(descriptor, number)
            let name = field.map { String(cString: $0.pointee.name) } ?? "field \(number)"
            let fieldPath = path.isEmpty ? name : "\(path).\(name)"
            if number == 0 { return (here, "field number 0 is invalid") }
            if let field, let expected = expectedWireType(field.pointee.type), wireType != expected,
               !(wireType == 2 && field.pointee.label == PROTOBUF_C_LABEL_REPEATED)  // packed repeated scalars
            {
                return (fieldPath, "wire type \(wireType) where \(expected) is expected")
            }
            switch wireType {
            case 0: guard (try? reader.varint(fieldPath)) != nil else { return (fieldPath, "truncated varint") }
            case 1: guard (try? reader.skip(8, fieldPath)) != nil else { return (fieldPath, "truncated field") }
            case 5: guard (try? reader.skip(4, fieldPath)) != nil else { return (fieldPath, "truncated field") }
            case 2:
                guard let length = try? reader.varint(fieldPath), let slice = try? reader.take(length, fieldPath) else {
                    return (fieldPath, "truncated field")
                }
                if let field, field.pointee.type == PROTOBUF_C_TYPE_MESSAGE, let nested = field.pointee.descriptor {
                    let nestedDescriptor = nested.assumingMemoryBound(to: ProtobufCMessageDescriptor.self)
                    let located = locateMalformed(slice, nestedDescriptor, path: fieldPath, depth: depth + 1)
                    if located.field != fieldPath || located.reason != "no field to blame" { return located }
                }
            default:
                return (fieldPath, "unsupported wire type \(wireType)")
            }
        }
        return (here, "no field to blame")
    }

    private static func expectedWireType(_ type: ProtobufCType) -> UInt64? {
        switch type {
        case PROTOBUF_C_TYPE_INT32, PROTOBUF_C_TYPE_SINT32, PROTOBUF_C_TYPE_UINT32, PROTOBUF_C_TYPE_INT64, PROTOBUF_C_TYPE_SINT64,
             PROTOBUF_C_TYPE_UINT64, PROTOBUF_C_TYPE_ENUM, PROTOBUF_C_TYPE_BOOL: 0
        case PROTOBUF_C_TYPE_SFIXED64, PROTOBUF_C_TYPE_FIXED64, PROTOBUF_C_TYPE_DOUBLE: 1
        case PROTOBUF_C_TYPE_SFIXED32, PROTOBUF_C_TYPE_FIXED32, PROTOBUF_C_TYPE_FLOAT: 5
        case PROTOBUF_C_TYPE_STRING, PROTOBUF_C_TYPE_BYTES, PROTOBUF_C_TYPE_MESSAGE: 2
        default: nil
        }
    }

    private static func checkString(_ bytes: UnsafeRawBufferPointer, _ path: String) throws(WireError) {
        if bytes.contains(0) { throw WireError(field: path, reason: "contains a NUL character") }
        if String(validating: bytes, as: UTF8.self) == nil {
            throw WireError(field: path, reason: "is not valid UTF-8")
        }
    }

    /// A cursor over encoded protobuf (also `WireFields`').
    struct Reader {
        let bytes: UnsafeRawBufferPointer
        var offset = 0
        var atEnd: Bool { offset >= bytes.count }

        mutating func varint(_ path: String) throws(WireError) -> UInt64 {
            var result: UInt64 = 0
            var shift: UInt64 = 0
            while offset < bytes.count && shift < 64 {
                let byte = bytes[offset]
                offset += 1
                result |= UInt64(byte & 0x7F) << shift
                if byte & 0x80 == 0 { return result }
                shift += 7
            }
            throw WireError(field: path, reason: "truncated varint")
        }

        mutating func skip(_ count: Int, _ path: String) throws(WireError) {
            guard bytes.count - offset >= count else { throw WireError(field: path, reason: "truncated field") }
            offset += count
        }

        mutating func take(_ length: UInt64, _ path: String) throws(WireError) -> UnsafeRawBufferPointer {
            guard length <= UInt64(bytes.count - offset) else { throw WireError(field: path, reason: "truncated field") }
            let start = offset
            offset += Int(length)
            return UnsafeRawBufferPointer(rebasing: bytes[start..<offset])
        }
    }
}
