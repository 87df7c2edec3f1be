import ArgumentParser
import AssignmentService
import Foundation
import IngestService
import NotifierService
import ServiceLifecycle
import Shared

/// All three services in one process, a demo service, and a local webhook receiver that
/// prints every page it gets: the five-minute walkthrough of the README.
struct DevCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev", abstract: "Run all services with a demo service and a page printer (scripts/run calls this).")

    static let demoRoutingKey = "klaxondemo0000000000000000000000"

    @Option(help: "Port of the demo webhook receiver that prints pages.")
    var webhookPort = 8499

    func run() async throws {
        let logger = Runtime.bootstrapLogging()
        let config = try Runtime.config()
        let clock = SystemWallClock()
        let pool = try await Runtime.openDatabase(config, clock: clock, logger: logger)

        let sink = try await HTTPSink.start(port: webhookPort) { request in
            guard let message = try? JSONDecoder().decode(WebhookMessage.self, from: Data(request.body)) else { return }
            let incident = message.incident
            print("""
                📟 PAGE → \(message.user.name) <\(message.user.email)>: incident #\(incident.number) "\(incident.title)" \
                [\(incident.status), \(incident.urgency)] service \(incident.service.name), reason \(message.reason), \
                notification \(message.notificationID)
                """)
            fflush(nil)
        }
        let webhookURL = "\(sink.url)/pages"
        let key = Self.demoRoutingKey
        try await pool.transaction { connection in
            guard try connection.query("SELECT 1 FROM routing_keys WHERE key = $1", [key]).isEmpty else {
                // Already seeded: point the demo users' webhooks at this run's page printer.
                try connection.query(
                    """
                    UPDATE contact_methods SET address = $2 WHERE type = 'webhook' AND user_id IN (
                        SELECT t.user_id FROM routing_keys k JOIN services s ON s.id = k.service_id
                        JOIN escalation_targets t ON t.policy_id = s.escalation_policy_id WHERE k.key = $1)
                    """, [key, webhookURL])
                return
            }
            _ = try Seed.service(
                connection, name: "Demo service", routingKey: key,
                users: [
                    Seed.User(name: "Alice", email: "alice@example.com", webhookURL: webhookURL),
                    Seed.User(name: "Bob", email: "bob@example.com", webhookURL: webhookURL),
                ])
        }
        print("""
            Klaxon is up: ingest \(config.ingestListen), assignment \(config.assignmentListen), notifier \(config.notifierListen).
            Demo routing key: \(key); pages for Alice and Bob print here.
            Send a test event from another terminal:
              .build/debug/klaxon send-event --routing-key \(key) --summary "Disk full on db-1" --source db-1
            """)
        fflush(nil)
        try await Runtime.run(
            [
                IngestService(config: config, pool: pool, clock: clock, logger: logger),
                AssignmentService(config: config, pool: pool, clock: clock, logger: logger),
                NotifierService(config: config, pool: pool, clock: clock, logger: logger),
            ], pool: pool, logger: logger)
        await sink.shutdown()
    }
}
