import CProtobufC
import KlaxonDomain
import KlaxonProto
import Shared
import Testing

import CHeapStats
import Foundation

@Suite struct MessageCodecTests {
    static let event = Event(
        routingKey: String(repeating: "k", count: 32), eventAction: .trigger, dedupKey: "disk-db-1",
        payload: Payload(
            summary: "Disk full on db-1 ☠", source: "db-1", severity: .critical, timestampMs: 1_800_000_000_123,
            component: "postgres", group: "storage", eventClass: "disk", customDetails: ["free": "0%", "mount": "/var"]),
        links: [Link(href: "https://runbooks/disk", text: "runbook")],
        images: [Image(src: "https://graphs/disk.png", href: "https://graphs", alt: "graph")],
        client: "Prometheus", clientURL: "https://prometheus")

    @Test func eventRoundTrips() throws {
        #expect(try Event(wire: Self.event.wireBytes()) == Self.event)
    }

    @Test func envelopeRoundTripsWithStatusHeadersAndBody() throws {
        let envelope = Envelope(
            id: .max, method: Ingest.SendEvent.name, body: Self.event.wireBytes(),
            status: RPCStatus(code: .invalidArgument, message: "bad", violations: [FieldViolation(field: "payload.summary", description: "too long")]),
            headers: ["authorization": "Bearer t", "deadline-ms": "500"])
        #expect(try Envelope(wire: envelope.wireBytes()) == envelope)
    }

    @Test func emptyMessagesEncodeToNothing() throws {
        #expect(Empty().wireBytes().isEmpty)
        #expect(try Envelope(wire: []) == Envelope(id: 0))
    }

    /// Field numbers as the wire contract states them, checked against hand-encoded bytes.
    @Test func fieldNumbersMatchTheContract() throws {
        // Event: routing_key = 1 (string), event_action = 2 (varint), dedup_key = 3, payload = 4 { summary = 1, severity = 3 }.
        var bytes: [UInt8] = [0x0A, 32] + Array(repeating: UInt8(ascii: "r"), count: 32)
        bytes += [0x10, 3]  // RESOLVE
        bytes += [0x1A, 1, UInt8(ascii: "d")]
        bytes += [0x22, 5, 0x0A, 1, UInt8(ascii: "s"), 0x18, 4]  // summary "s", severity INFO
        let event = try Event(wire: bytes)
        #expect(event.routingKey == String(repeating: "r", count: 32))
        #expect(event.eventAction == .resolve)
        #expect(event.dedupKey == "d")
        #expect(event.payload?.summary == "s")
        #expect(event.payload?.severity == .info)
        // EventResult: outcome = 3, with DEDUPLICATED = 2.
        #expect(EventResult(dedupKey: "", incidentID: 0, outcome: .deduplicated).wireBytes() == [0x18, 2])
        // Envelope: id = 1, method = 2, body = 3, status = 4 { code = 1 }, headers = 5.
        let envelope = Envelope(id: 5, method: "m", body: [9], status: RPCStatus(code: .unimplemented), headers: ["a": "b"])
        #expect(envelope.wireBytes() == [0x08, 5, 0x12, 1, UInt8(ascii: "m"), 0x1A, 1, 9, 0x22, 2, 0x08, 12,
                                          0x2A, 6, 0x0A, 1, UInt8(ascii: "a"), 0x12, 1, UInt8(ascii: "b")])
    }

    @Test func enumNumbersMatchTheGeneratedC() {
        func number<E: CaseIterable & Equatable>(_ value: E) -> UInt32 {
            UInt32(Array(E.allCases).firstIndex(of: value)! + 1)
        }
        #expect(number(EventAction.trigger) == KLAXON__INGEST__V1__EVENT_ACTION__EVENT_ACTION_TRIGGER.rawValue)
        #expect(number(EventAction.acknowledge) == KLAXON__INGEST__V1__EVENT_ACTION__EVENT_ACTION_ACKNOWLEDGE.rawValue)
        #expect(number(EventAction.resolve) == KLAXON__INGEST__V1__EVENT_ACTION__EVENT_ACTION_RESOLVE.rawValue)
        #expect(number(Severity.critical) == KLAXON__INGEST__V1__SEVERITY__SEVERITY_CRITICAL.rawValue)
        #expect(number(Severity.info) == KLAXON__INGEST__V1__SEVERITY__SEVERITY_INFO.rawValue)
        #expect(number(EventOutcome.created) == KLAXON__INGEST__V1__OUTCOME__OUTCOME_CREATED.rawValue)
        #expect(number(EventOutcome.ignored) == KLAXON__INGEST__V1__OUTCOME__OUTCOME_IGNORED.rawValue)
        #expect(number(IncidentStatus.resolved) == KLAXON__INCIDENT__V1__INCIDENT_STATUS__INCIDENT_STATUS_RESOLVED.rawValue)
        #expect(number(Urgency.low) == KLAXON__INCIDENT__V1__URGENCY__URGENCY_LOW.rawValue)
        #expect(number(NotifyReason.ackTimeout) == KLAXON__NOTIFIER__V1__NOTIFY_REASON__NOTIFY_REASON_ACK_TIMEOUT.rawValue)
        #expect(number(NotifyReason.manual) == KLAXON__NOTIFIER__V1__NOTIFY_REASON__NOTIFY_REASON_MANUAL.rawValue)
    }

    @Test func invalidUTF8IsRejectedNamingTheField() {
        var bytes: [UInt8] = [0x22, 4, 0x0A, 2, 0xC3, 0x28]  // payload.summary = C3 28 (invalid)
        #expect(throws: WireError(field: "payload.summary", reason: "is not valid UTF-8")) { try Event(wire: bytes) }
        bytes = [0x0A, 3, 0x61, 0xFF, 0x62]  // routing_key with 0xFF
        #expect(throws: WireError(field: "routing_key", reason: "is not valid UTF-8")) { try Event(wire: bytes) }
    }

    @Test func nulInAStringIsRejected() {
        // protobuf-c would cut "ab\0cd" to "ab"; we refuse it instead.
        let routingKey: [UInt8] = [0x0A, 5, 0x61, 0x62, 0x00, 0x63, 0x64]
        #expect(throws: WireError(field: "routing_key", reason: "contains a NUL character")) { try Event(wire: routingKey) }
        // Inside a map value: Envelope.headers["a"] = "\0".
        let header: [UInt8] = [0x2A, 6, 0x0A, 1, 0x61, 0x12, 1, 0x00]
        #expect(throws: WireError(field: "headers.value", reason: "contains a NUL character")) { try Envelope(wire: header) }
    }

    /// The rule for enum values from a newer peer (see ProtoEnum): a number this build does not
    /// know reads as unspecified and the rest of the message still decodes, so an old service
    /// keeps working mid-deploy. Unknown values in a repeated enum field are dropped.
    @Test func unknownEnumValueReadsAsUnspecifiedAndTheRestDecodes() throws {
        // routing_key = "rk", event_action = 9 (unknown), dedup_key = "d"
        let event = try Event(wire: [0x0A, 2, 0x72, 0x6B, 0x10, 9, 0x1A, 1, 0x64])
        #expect(event == Event(routingKey: "rk", eventAction: nil, dedupKey: "d"))
        // NotifyRequest.reason = 42 from a newer Assignment: the page still goes out, reason unknown.
        let notify = try NotifyRequest(wire: [0x0A, 1, 0x72, 0x20, 42])
        #expect(notify.requestID == "r" && notify.reason == nil)
        // ListIncidentsRequest.statuses = [1, 7, 3] (packed): the known ones stay.
        let list = try ListIncidentsRequest(wire: [0x0A, 3, 1, 7, 3])
        #expect(list.statuses == [.triggered, .resolved])
    }

    @Test func garbageIsMalformed() {
        for garbage: [UInt8] in [[0xFF], [0x0A, 10, 1], [0x0A], [0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]] {
            #expect(throws: WireError.self) { try Envelope(wire: garbage) }
            #expect(throws: WireError.self) { try Event(wire: garbage) }
        }
    }

    /// An undecodable body's violation names the field at fault, not an empty one.
    @Test func malformedBodiesNameTheField() {
        func field(_ bytes: [UInt8]) -> String? {
            do { _ = try Event(wire: bytes); return nil } catch { return error.field }
        }
        // routing_key (1) sent as a varint.
        #expect(field([0x08, 0x01]) == "routing_key")
        // routing_key claims 10 bytes, has 1.
        #expect(field([0x0A, 10, 0x61]) == "routing_key")
        // payload (4) holds a summary (1) that claims 5 bytes and has 2.
        #expect(field([0x22, 4, 0x0A, 5, 0x61, 0x62]) == "payload.summary")
        // A truncated tag at the top level: the body as a whole.
        #expect(field([0xFF]) == "body")
    }

    @Test func unknownFieldsAreSkipped() throws {
        // A newer client's field 99 (varint) must not break older servers.
        let bytes = Self.event.wireBytes() + [0x98, 0x06, 1]
        #expect(try Event(wire: bytes) == Self.event)
    }

    /// Encoding and decoding 20,000 messages must not grow the heap: the arena and
    /// protobuf_c_message_free_unpacked release everything. The heap is process-wide, so this runs
    /// alone in its own process (scripts/test does that) where no other test allocates meanwhile.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["KLAXON_LEAK_TEST"] == "1", "runs alone: KLAXON_LEAK_TEST=1 swift test --filter codecLeaksNothing"))
    func codecLeaksNothing() throws {
        let encoded = Envelope(id: 1, method: "m", body: Self.event.wireBytes(), headers: ["a": "b"]).wireBytes()
        func cycle() throws {
            let envelope = try Envelope(wire: encoded)
            let event = try Event(wire: envelope.body)
            _ = event.wireBytes()
            _ = try? Event(wire: [0x0A, 2, 0x00, 0x00])  // the failure path frees too
        }
        for _ in 0..<2_000 { try cycle() }  // warm up caches and allocator pools
        let before = klaxon_heap_bytes_in_use()
        for _ in 0..<20_000 { try cycle() }
        let after = klaxon_heap_bytes_in_use()
        // A leak of even one small block per cycle would be well over 20,000 × 16 bytes.
        #expect(after < before + 64 * 1024, "heap grew from \(before) to \(after) bytes")
    }
}
