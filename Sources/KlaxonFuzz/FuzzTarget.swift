// libFuzzer target for everything a peer's bytes reach before a handler runs: framing,
// Envelope decoding, and Event decoding of each frame's body. Build and run: see README
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
        if let event = try? Event(wire: envelope.body) {
            // Whatever decodes must encode and decode to the same value.
            let again = try? Event(wire: event.wireBytes())
            precondition(again == event, "Event does not round-trip")
        }
        _ = try? EventResult(wire: envelope.body)
        _ = try? SendEventsRequest(wire: envelope.body)
    }
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
