import ArgumentParser

@main
struct SluiceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sluice",
        abstract: "Operate Sluice, the distributed rate limiter for fleets of LLM agents.",
        subcommands: [
            QuotaCommand.self, CheckCommand.self, ReserveCommand.self, SettleCommand.self, CancelCommand.self,
            StatusCommand.self, EventsCommand.self, TopCommand.self, ServeCommand.self, ObserveCommand.self,
            StormCommand.self,
            PingCommand.self, BenchCommand.self, ScriptsCommand.self,
            // Hidden: the processes that `sluice storm` and `scripts/soak.sh` start (the multi-process tests' own
            // workers are a separate executable, SluiceTestWorker).
            StormWorkerCommand.self, SoakCommand.self,
        ]
    )
}
