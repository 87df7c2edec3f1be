import ArgumentParser

struct Klaxon: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "klaxon",
        abstract: "Klaxon incident alerting: services and tools.",
        subcommands: [
            DevCommand.self, ServiceCommand.self, MigrateCommand.self, SendEventCommand.self, IncidentCommand.self,
            BenchIngestCommand.self, BenchE2ECommand.self,
        ])
}
