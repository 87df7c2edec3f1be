/// RFC 8259 syntax, strictly: Foundation's parser also takes trailing commas (`{"a":1,}`), which
/// PagerDuty refuses. A monitor tested against Klaxon must not then fail against PagerDuty, so
/// bodies are checked here first. Returns nil when `bytes` is one JSON value (surrounded by
/// whitespace at most), otherwise what is wrong and at which byte.
public enum StrictJSON {
    public static func problem(_ bytes: [UInt8], maxDepth: Int = 64) -> String? {
        var scanner = Scanner(bytes: bytes, maxDepth: maxDepth)
        do {
            scanner.skipSpace()
            try scanner.value(depth: 0)
            scanner.skipSpace()
            guard scanner.index == bytes.count else { throw Failure(at: scanner.index, "unexpected text after the value") }
            return nil
        } catch let failure as Failure {
            return "\(failure.message) at byte \(failure.at)"
        } catch {
            return "\(error)"
        }
    }

    struct Failure: Error {
        var at: Int
        var message: String
        init(at: Int, _ message: String) {
            self.at = at
            self.message = message
        }
    }

    struct Scanner {
        let bytes: [UInt8]
        let maxDepth: Int
        var index = 0

        var current: UInt8? { index < bytes.count ? bytes[index] : nil }

        mutating func skipSpace() {
            while let byte = current, byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D { index += 1 }
        }

        mutating func expect(_ byte: UInt8, _ what: String) throws(Failure) {
            guard current == byte else { throw Failure(at: index, "expected \(what)") }
            index += 1
        }

        mutating func value(depth: Int) throws(Failure) {
            guard depth < maxDepth else { throw Failure(at: index, "nested deeper than \(maxDepth)") }
            switch current {
            case UInt8(ascii: "{"): try object(depth: depth)
            case UInt8(ascii: "["): try array(depth: depth)
            case UInt8(ascii: "\""): try string()
            case UInt8(ascii: "t"): try literal("true")
            case UInt8(ascii: "f"): try literal("false")
            case UInt8(ascii: "n"): try literal("null")
            case nil: throw Failure(at: index, "unexpected end of the body")
            case let byte? where byte == UInt8(ascii: "-") || Self.isDigit(byte): try number()
            default: throw Failure(at: index, "unexpected character")
            }
        }

        mutating func object(depth: Int) throws(Failure) {
            index += 1
            skipSpace()
            if current == UInt8(ascii: "}") { index += 1; return }
            while true {
                skipSpace()
                guard current == UInt8(ascii: "\"") else {
                    throw Failure(at: index, current == UInt8(ascii: "}") ? "trailing comma in an object" : "expected a member name in double quotes")
                }
                try string()
                skipSpace()
                try expect(UInt8(ascii: ":"), "':' after a member name")
                skipSpace()
                try value(depth: depth + 1)
                skipSpace()
                if current == UInt8(ascii: ",") { index += 1; continue }
                try expect(UInt8(ascii: "}"), "',' or '}' in an object")
                return
            }
        }

        mutating func array(depth: Int) throws(Failure) {
            index += 1
            skipSpace()
            if current == UInt8(ascii: "]") { index += 1; return }
            while true {
                skipSpace()
                if current == UInt8(ascii: "]") { throw Failure(at: index, "trailing comma in an array") }
                try value(depth: depth + 1)
                skipSpace()
                if current == UInt8(ascii: ",") { index += 1; continue }
                try expect(UInt8(ascii: "]"), "',' or ']' in an array")
                return
            }
        }

        mutating func string() throws(Failure) {
            index += 1
            while let byte = current {
                switch byte {
                case UInt8(ascii: "\""):
                    index += 1
                    return
                case UInt8(ascii: "\\"):
                    index += 1
                    guard let escaped = current else { break }
                    if escaped == UInt8(ascii: "u") {
                        for offset in 1...4 {
                            guard index + offset < bytes.count, Self.isHex(bytes[index + offset]) else {
                                throw Failure(at: index, "\\u needs four hex digits")
                            }
                        }
                        index += 5
                    } else if Array("\"\\/bfnrt".utf8).contains(escaped) {
                        index += 1
                    } else {
                        throw Failure(at: index, "invalid escape in a string")
                    }
                case 0x00..<0x20:
                    throw Failure(at: index, "control character in a string (escape it)")
                default:
                    index += 1
                }
            }
            throw Failure(at: index, "unterminated string")
        }

        mutating func literal(_ word: String) throws(Failure) {
            let expected = Array(word.utf8)
            guard index + expected.count <= bytes.count, Array(bytes[index..<index + expected.count]) == expected else {
                throw Failure(at: index, "unexpected character")
            }
            index += expected.count
        }

        mutating func number() throws(Failure) {
            let start = index
            if current == UInt8(ascii: "-") { index += 1 }
            guard let first = current, Self.isDigit(first) else { throw Failure(at: start, "invalid number") }
            if first == UInt8(ascii: "0") {
                index += 1
            } else {
                while let byte = current, Self.isDigit(byte) { index += 1 }
            }
            if current == UInt8(ascii: ".") {
                index += 1
                guard let byte = current, Self.isDigit(byte) else { throw Failure(at: start, "invalid number") }
                while let byte = current, Self.isDigit(byte) { index += 1 }
            }
            if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
                index += 1
                if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { index += 1 }
                guard let byte = current, Self.isDigit(byte) else { throw Failure(at: start, "invalid number") }
                while let byte = current, Self.isDigit(byte) { index += 1 }
            }
        }

        static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }
        static func isHex(_ byte: UInt8) -> Bool {
            isDigit(byte) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "F")).contains(byte)
        }
    }
}
