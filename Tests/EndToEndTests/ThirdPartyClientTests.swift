import Foundation
import KlaxonTestSupport
import Shared
import Testing

/// A client written against proto/ with Google's Python protobuf (an implementation independent
/// of libprotobuf-c) sends events over a plain socket: the wire contract is what third parties can speak.
@Suite struct ThirdPartyClientTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test func pythonProtobufClientSendsAnEvent() async throws {
        try await speak(tls: nil)
    }

    /// The same client over TLS with Python's own `ssl`, verifying Klaxon's certificate.
    @Test func pythonProtobufClientSendsAnEventOverTLS() async throws {
        try await speak(tls: try TestPKI.make())
    }

    func speak(tls pki: TestPKI?) async throws {
        let pipeline = try await Pipeline(start: [.ingest]) { config, _ in
            if let pki {
                config.tlsCertFile = pki.certFile
                config.tlsKeyFile = pki.keyFile
                config.tlsCAFile = pki.caFile
            }
        }
        let service = try await pipeline.seed()
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("klaxon-py-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }

        let protos = try FileManager.default.subpathsOfDirectory(atPath: Self.root.appendingPathComponent("proto").path)
            .filter { $0.hasSuffix(".proto") }
        let generated = try await run("protoc", ["-I", Self.root.appendingPathComponent("proto").path, "--python_out=\(work.path)"] + protos)
        try #require(generated.status == 0, "protoc failed (is protobuf-compiler installed?): \(generated.output)")
        let script = work.appendingPathComponent("client.py")
        try Self.client.write(to: script, atomically: true, encoding: .utf8)

        let result = try await run("python3", [script.path, String(pipeline.config.ingestListen.port), service.routingKey] + (pki.map { [$0.caFile] } ?? []))
        try #require(result.status == 0, "python client failed: \(result.output)")
        let lines = result.output.split(separator: "\n").map(String.init)
        #expect(lines.contains("created outcome=1 dedup=py-1"))
        #expect(lines.contains("dedup outcome=2 dedup=py-1"))
        #expect(lines.contains("invalid code=3 fields=payload.source,payload.summary"))
        #expect(lines.contains("unknown code=12"))
        #expect(try await pipeline.db.scalar("SELECT count(*) FROM incidents WHERE dedup_key = 'py-1'") == 1)
        #expect(try await pipeline.db.scalar("SELECT count(*) FROM incidents") == 1)
        await pipeline.shutdown()
    }

    func run(_ tool: String, _ arguments: [String]) async throws -> (status: Int32, output: String) {
        try await offCooperativePool { try Self.runBlocking(tool, arguments) }
    }

    static func runBlocking(_ tool: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = ChildProcess()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [tool] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readAllRetrying()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    static let client = #"""
    import socket, ssl, struct, sys
    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    from klaxon.rpc.v1 import rpc_pb2
    from klaxon.ingest.v1 import ingest_pb2

    port, routing_key = int(sys.argv[1]), sys.argv[2]
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    if len(sys.argv) > 3:
        # TLS before the first frame, Klaxon's certificate verified with the CA file given.
        sock = ssl.create_default_context(cafile=sys.argv[3]).wrap_socket(sock, server_hostname="127.0.0.1")

    def read_exact(n):
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise EOFError("server closed the connection")
            data += chunk
        return data

    def call(request_id, method, body):
        envelope = rpc_pb2.Envelope(id=request_id, method=method, body=body)
        envelope.headers["traceparent"] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        frame = envelope.SerializeToString()
        sock.sendall(struct.pack(">I", len(frame)) + frame)
        (length,) = struct.unpack(">I", read_exact(4))
        reply = rpc_pb2.Envelope()
        reply.ParseFromString(read_exact(length))
        assert reply.id == request_id, (reply.id, request_id)
        return reply

    def event(summary="Checkout latency p99 4s", source="checkout-1"):
        e = ingest_pb2.Event(routing_key=routing_key, event_action=ingest_pb2.EVENT_ACTION_TRIGGER, dedup_key="py-1")
        e.payload.summary = summary
        e.payload.source = source
        e.payload.severity = ingest_pb2.SEVERITY_ERROR
        e.payload.custom_details["p99"] = "4s"
        e.links.add(href="https://runbooks.example/checkout", text="runbook")
        e.client = "python-client"
        return e.SerializeToString()

    for label, request_id in (("created", 1), ("dedup", 2)):
        reply = call(request_id, "klaxon.ingest.v1.Ingest/SendEvent", event())
        assert reply.status.code == 0, reply.status
        result = ingest_pb2.EventResult()
        result.ParseFromString(reply.body)
        print(f"{label} outcome={result.outcome} dedup={result.dedup_key}")

    reply = call(3, "klaxon.ingest.v1.Ingest/SendEvent", event(summary="", source=""))
    print(f"invalid code={reply.status.code} fields={','.join(sorted(v.field for v in reply.status.violations))}")
    reply = call(4, "klaxon.ingest.v1.Ingest/Nope", b"")
    print(f"unknown code={reply.status.code}")
    """#
}
