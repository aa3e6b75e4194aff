import ArgumentParser
import Foundation
import SluiceStorm

/// `sluice storm-worker`: one worker process of a storm, started by `sluice storm` (hidden).
struct StormWorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "storm-worker",
        abstract: "Run one storm worker (started by `sluice storm`).",
        shouldDisplay: false
    )

    @Option(help: "The worker's assignment, a JSON file written by `sluice storm`.")
    var assignment: String

    func run() async throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: assignment))
        let decoded = try JSONDecoder().decode(WorkerAssignment.self, from: data)
        try await StormWorker.run(decoded)
    }
}
