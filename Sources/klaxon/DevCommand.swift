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
    @Option(help: "The configuration applied at start (its webhooks at 127.0.0.1:8499 are pointed at the page printer).")
    var exampleFile = "examples/klaxon.yaml"

    func run() async throws {
        let logger = Runtime.bootstrapLogging()
        var config = try Runtime.config()
        if config.oneTapLinks == nil {
            // Pages carry one-tap links to the incident page on this machine (a key of this run:
            // a restart voids the links already printed).
            let listen = config.assignmentHTTPListen
            let host = listen.host == "0.0.0.0" || listen.host == "::" ? "127.0.0.1" : listen.host
            config.publicURL = "\(config.serverTLS(.assignmentHTTP) == nil ? "http" : "https")://\(HostPort(host: host, port: listen.port))"
            config.linkSigningKey = Secrets.text(count: 43)
        }
        let clock = SystemWallClock()
        let pool = try await Runtime.openDatabase(config, clock: clock, logger: logger)

        let sink = try await HTTPSink.start(port: webhookPort) { request in
            guard let message = try? JSONDecoder().decode(WebhookMessage.self, from: Data(request.body)) else {
                // A post to a chat channel (Slack-compatible: {"text": …}).
                if let post = try? JSONSerialization.jsonObject(with: Data(request.body)) as? [String: Any], let text = post["text"] as? String {
                    print("💬 CHANNEL \(request.uri): \(text)")
                    fflush(nil)
                }
                return
            }
            let incident = message.incident
            print("""
                📟 PAGE → \(message.user.name) <\(message.user.email)>: incident #\(incident.number) "\(incident.title)" \
                [\(incident.status), \(incident.urgency)] service \(incident.service.name), reason \(message.reason), \
                notification \(message.notificationID)\(incident.htmlURL.map { " — open \($0)" } ?? "")
                """)
            fflush(nil)
        }
        // The demo is the example configuration file, applied like any other (its webhooks point
        // at this process's page printer).
        let examplePath = exampleFile
        guard var text = try? String(contentsOfFile: examplePath, encoding: .utf8) else {
            throw CLIError(code: CLIExit.failed, message: "\(examplePath): cannot read the demo configuration")
        }
        text = text.replacingOccurrences(of: "http://127.0.0.1:8499/", with: "\(sink.url)/")
        let file = try ConfigFile.parse(text, path: examplePath)
        let applied = try await Configuration.apply(pool, json: file.json, now: clock.nowMs())
        for change in applied.changes { print("config: \(change.op) \(change.kind) \(change.name)") }
        if let token = try await Configuration.bootstrapAdmin(pool, token: config.bootstrapToken, now: clock.nowMs()) {
            print("First start: an admin token was created (shown this once; keep it): \(token)")
        }
        let key = Self.demoRoutingKey
        let ingest = IngestService(config: config, pool: pool, clock: clock, logger: logger)
        let assignment = AssignmentService(config: config, pool: pool, clock: clock, logger: logger)
        let notifier = NotifierService(config: config, pool: pool, clock: clock, logger: logger)
        // "Klaxon is up" once every listener accepts connections, not before.
        let announce = Task {
            _ = try await (ingest.server.localAddress(), assignment.server.localAddress(), notifier.server.localAddress())
            _ = try await (ingest.httpPort(), assignment.httpPort(), notifier.httpPort())
            print("""
                Klaxon is up: ingest \(config.ingestListen), assignment \(config.assignmentListen), notifier \(config.notifierListen).
                Demo routing key: \(key); pages for Alice and Bob print here.
                Send a test event from another terminal:
                  .build/debug/klaxon send-event --routing-key \(key) --summary "Disk full on db-1" --source db-1
                """)
            fflush(nil)
        }
        defer { announce.cancel() }
        try await Runtime.run([ingest, assignment, notifier, Runtime.statisticsKeeper(pool, clock: clock, logger: logger)], pool: pool, logger: logger)
        await sink.shutdown()
    }
}
