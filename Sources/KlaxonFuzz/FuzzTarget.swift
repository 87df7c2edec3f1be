// libFuzzer target for everything a peer's bytes reach before a handler runs: framing,
// Envelope decoding, and the decoding of each frame's body as every generated message. Build and run: see README
// (Development). Without -DFUZZING this builds as a replay tool: `klaxon-fuzz FILE…`.
import Foundation
import NIOCore
import Shared

func fuzzOne(_ bytes: UnsafeRawBufferPointer) {
    var buffer = ByteBuffer(bytes: bytes)
    // Frame limit small enough that the fuzzer can reach the "too large" path.
    while true {
        let frame: ByteBuffer?
        do {
            frame = try Framing.readFrame(&buffer, maxFrameBytes: 64 * 1024)
        } catch {
            return
        }
        guard let frame else { return }
        guard let envelope = try? Envelope(frame: frame) else { continue }
        _ = envelope.wireBytes()
        for type in WireMessages.all { roundTrip(type, envelope.body) }
    }
}

/// Whatever decodes must encode and decode to the same value.
func roundTrip<M: GeneratedMessage>(_ type: M.Type, _ body: [UInt8]) {
    guard let message = try? M(wire: body) else { return }
    let again = try? M(wire: message.wireBytes())
    precondition(again == message, "\(M.protoName) does not round-trip")
}

#if FUZZING
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    fuzzOne(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}
#else
@main
struct Replay {
    static func main() {
        for path in CommandLine.arguments.dropFirst() {
            guard let data = FileManager.default.contents(atPath: path) else {
                print("cannot read \(path)")
                continue
            }
            data.withUnsafeBytes { fuzzOne($0) }
            print("ok \(path)")
        }
    }
}
#endif
