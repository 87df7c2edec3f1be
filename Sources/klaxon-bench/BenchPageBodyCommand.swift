import ArgumentParser
import Foundation
import NotifierService

/// `klaxon-bench page-body`: the CPU one page's webhook body costs, written by hand (what
/// Notifier sends) and by Foundation's JSONEncoder (what it sent before issue 29), for a page
/// with a one-tap link and two recent changes. Prints µs per body and the ratio.
struct BenchPageBodyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "page-body", abstract: "µs per page webhook body: hand-written JSON against Foundation's JSONEncoder.")
    @Option(help: "Bodies per measurement.") var count = 100_000

    func run() async throws {
        let json = """
            {"notification_id": "0b7c7c1e-3f0e-4d55-9d3c-2b1c5e0f9a11", "reason": "assigned", "snapshot": true, "sent_at": "2027-03-01T10:00:00.123Z",
             "incident": {"id": 42, "number": 1042, "title": "Checkout error rate 37% on checkout-1", "status": "triggered", "urgency": "high",
                          "service": {"id": 7, "name": "Checkout"}, "dedup_key": "checkout-errors", "created_at": "2027-03-01T09:59:59.000Z",
                          "html_url": "https://klaxon.example/p/eyJ1IjozLCJpIjo0Mn0.c2lnbmF0dXJl", "ack_url": "https://klaxon.example/p/eyJ1IjozLCJpIjo0Mn0.c2lnbmF0dXJl/ack",
                          "recent_changes": [{"summary": "Deploy checkout v2.31.0", "source": "github-actions", "at": "2027-03-01T09:55:00.000Z",
                                              "links": ["https://github.example/acme/checkout/actions/runs/1"]}]},
             "user": {"id": 3, "name": "Alice Martin", "email": "alice@example.com"}, "rule": {"id": 11, "start_delay_seconds": 0}}
            """
        let message = try JSONDecoder().decode(WebhookMessage.self, from: Data(json.utf8))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        func measure(_ body: () throws -> Int) rethrows -> Double {
            var bytes = 0
            let started = ContinuousClock.now
            for _ in 0..<count { bytes &+= try body() }
            let elapsed = ContinuousClock.now - started
            precondition(bytes > 0)
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            return seconds * 1e6 / Double(count)
        }
        _ = measure { message.jsonBytes().count }  // warm up
        let handMade = measure { message.jsonBytes().count }
        let foundation = try measure { try encoder.encode(message).count }
        print(String(format: "page webhook body (%d bytes), %d bodies: hand-written %.2f µs, JSONEncoder %.2f µs (%.1f× less CPU)",
                     message.jsonBytes().count, count, handMade, foundation, foundation / handMade))
    }
}
