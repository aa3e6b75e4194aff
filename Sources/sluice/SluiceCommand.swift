import ArgumentParser

@main
struct SluiceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sluice",
        abstract: "Operate Sluice, the distributed rate limiter for fleets of LLM agents.",
        subcommands: [PingCommand.self, BenchCommand.self, ObserveCommand.self]
    )
}
