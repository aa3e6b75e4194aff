import ArgumentParser
import Foundation
import SluiceStorm

/// `sluice soak ...` (hidden): the processes of the chaos soak that `scripts/soak.sh` drives — the mock provider,
/// the workers that write the ledger, and the checker that reads it.
struct SoakCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "soak",
        abstract: "The chaos soak's processes (started by scripts/soak.sh).",
        shouldDisplay: false,
        subcommands: [SoakProviderCommand.self, SoakWorkerCommand.self, SoakCheckCommand.self]
    )
}

/// `sluice soak provider`: the mock provider (OpenAI's API, a quota too large to matter, 20 ms median latency) on
/// a free loopback port, written to `--port-file`; runs until killed.
struct SoakProviderCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "provider", shouldDisplay: false)

    @Option(help: "Where to write the port the provider listens on.") var portFile: String

    func run() async throws {
        let provider = try await MockProvider.start()
        provider.begin(
            settings: ProviderSettings(
                requestsPerWindow: 1_000_000, tokensPerWindow: 1_000_000_000, window: 1,
                latency: LatencySettings(medianMs: 20, p99Ms: 120, msPerOutputToken: 0.05)),
            startMs: StormClock.nowMs())
        try "\(provider.port)\n".write(toFile: portFile + ".tmp", atomically: false, encoding: .utf8)
        _ = rename(portFile + ".tmp", portFile)
        while true { try await Task.sleep(for: .seconds(3_600)) }
    }
}

/// `sluice soak worker`: one worker, until `--end-ms`; see ``SoakWorker``.
struct SoakWorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "worker", shouldDisplay: false)

    @Option var redis: String
    @Option var provider: String
    @Option var ledger: String
    @Option var index: Int
    @Option(help: "Wall-clock ms at which to stop.") var endMs: Double
    @Option var seed: UInt64 = 1
    @Option var trees: Int = 3
    @Option var reservers: Int = 2

    func run() async throws {
        let worker = try SoakWorker(
            .init(
                redisURL: redis, providerURL: provider, ledgerPath: ledger, index: index, endMs: endMs, seed: seed,
                trees: trees, reservers: reservers))
        await worker.run()
    }
}

/// `sluice soak check`: reads the ledgers and the fault log and prints the ledger's part of the soak's verdict as
/// one JSON object (see ``SoakCheck``).
struct SoakCheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "check", shouldDisplay: false)

    @Option var ledgers: String
    @Option var faults: String
    @Option var startMs: Double
    @Option var endMs: Double

    func run() async throws {
        let check = try SoakCheck(ledgerDirectory: ledgers, faultLog: faults, startMs: startMs, endMs: endMs)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        print(String(decoding: try encoder.encode(check.run()), as: UTF8.self))
    }
}
