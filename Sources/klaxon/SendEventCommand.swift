import ArgumentParser
import Foundation
import KlaxonDomain
import Shared

/// Sends one event over the binary protocol, as a monitor would, and prints the outcome.
struct SendEventCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "send-event", abstract: "Send a trigger, acknowledge or resolve event to Ingest.")

    @Option(help: "Ingest's binary protocol address.")
    var address = "127.0.0.1:7401"
    @Option(help: "The service's 32-character routing key.")
    var routingKey: String
    @Option(help: "trigger, acknowledge or resolve.")
    var action = "trigger"
    @Option(help: "Deduplication key (generated for a trigger when omitted).")
    var dedupKey = ""
    @Option(help: "Summary (the incident title).")
    var summary = "Test event from klaxon send-event"
    @Option(help: "Affected host or component.")
    var source = "klaxon-cli"
    @Option(help: "critical, error, warning or info.")
    var severity = "critical"
    @Option(help: "PEM CA to verify Ingest's TLS certificate with (turns TLS on). Default: $KLAXON_TLS_CA_FILE.")
    var ca: String?
    @Option(help: "PEM client certificate for mutual TLS (with --key). Default: $KLAXON_TLS_CLIENT_CERT_FILE.")
    var cert: String?
    @Option(help: "PEM private key of --cert. Default: $KLAXON_TLS_CLIENT_KEY_FILE.")
    var key: String?

    /// Checked while parsing, so a mistake shows `send-event`'s own usage (exit 64).
    func validate() throws {
        guard HostPort(address) != nil else { throw ValidationError("--address must be host:port, got \"\(address)\"") }
        guard EventAction(rawValue: action) != nil else {
            throw ValidationError("--action must be trigger, acknowledge or resolve, got \"\(action)\"")
        }
        guard Severity(rawValue: severity) != nil else {
            throw ValidationError("--severity must be critical, error, warning or info, got \"\(severity)\"")
        }
    }

    /// Like every other command: the outcome on stdout; a failure on stderr with the CLI's exit
    /// codes (3 refused, 4 cannot reach Ingest, 5 not allowed).
    func run() async throws {
        let hostPort = HostPort(address)!, eventAction = EventAction(rawValue: action)!, eventSeverity = Severity(rawValue: severity)!
        var configuration = RPCClientConfiguration(host: hostPort.host, port: hostPort.port)
        configuration.tls = try ClientOptions.clientTLS(ca: ca, tls: false, cert: cert, key: key, file: [:])
        let client = RPCClient(configuration: configuration)
        defer { Task { await client.close() } }
        let event = Event(
            routingKey: routingKey, eventAction: eventAction, dedupKey: dedupKey,
            payload: Payload(summary: summary, source: source, severity: eventSeverity))
        do {
            let result: EventResult = try await client.call(Ingest.SendEvent, event)
            print(Self.describe(result))
        } catch let error as RPCError {
            throw CLIError.from(error, address: address, hasToken: true)
        }
    }

    /// One line a person reads: what happened to which incident. IGNORED names no incident (none
    /// was open with that dedup key), rather than "incident 0".
    static func describe(_ result: EventResult) -> String {
        let outcome = result.outcome?.rawValue.uppercased() ?? "UNSPECIFIED"
        guard result.outcome != .ignored, result.incidentID != 0 else {
            let why = result.message.isEmpty ? "no open incident matched" : result.message
            return "\(outcome): \(why) (dedup_key \(result.dedupKey))"
        }
        return "\(outcome) incident \(result.incidentID) dedup_key \(result.dedupKey)"
    }
}
