import ArgumentParser
import Shared

struct Klaxon: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "klaxon",
        abstract: "Klaxon incident alerting: services and tools.",
        discussion: """
            Operator commands reach Klaxon at --address, $KLAXON_ADDRESS or the CLI config file (.klaxon/cli.yaml, \
            ~/.config/klaxon/cli.yaml: `address:` and `token:`), default 127.0.0.1:7402, with the token from --token, \
            $KLAXON_TOKEN or that file.
            Exit codes: 0 done; 1 failed here (unreadable or invalid file); 2 import --plan found on-call differences, or shadow report found pages that differ; 3 refused by Klaxon (invalid, not found, \
            precondition); 4 cannot reach Klaxon; 5 not authenticated or not allowed; 64 usage.
            """,
        version: KlaxonVersion.text,
        subcommands: [
            DevCommand.self, ServiceCommand.self, MigrateCommand.self, SendEventCommand.self, IncidentCommand.self,
            UserCommand.self, ContactCommand.self, RuleCommand.self, ScheduleCommand.self, OnCallCommand.self, PolicyCommand.self,
            ServiceAdminCommand.self, RoutingKeyCommand.self, HeartbeatCommand.self, MaintenanceCommand.self, RulesCommand.self, WebhookCommand.self, ShadowCommand.self, TokenCommand.self, SurgeCommand.self, PlanCommand.self, ApplyCommand.self, ExportCommand.self, ImportCommand.self,
            HealthcheckCommand.self,
        ])
}

enum KlaxonVersion {
    static let text = "klaxon 0.12.0 (wire contract klaxon.*.v1)"
}
