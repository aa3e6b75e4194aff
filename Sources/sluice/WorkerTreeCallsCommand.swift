import ArgumentParser
import Sluice
import SluiceRedis

/// `sluice worker tree-calls`: makes calls through ``Backpressure`` inside the tree of --header
/// (a context from another process), each using a random actual amount of tokens, and reports
/// what was admitted and spent.
struct WorkerTreeCallsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tree-calls", shouldDisplay: false)

    @OptionGroup var options: WorkerOptions
    @Option var header: String
    @Option var scope = "provider"
    @Option var calls: Int = 10
    @Option var concurrency: Int = 1
    @Option var estimate: Int = 100
    @Option(name: .customLong("actual-min")) var actualMinimum: Int = 1
    @Option(name: .customLong("actual-max")) var actualMaximum: Int = 100
    @Option var tool: String?
    @Option var arguments: String?

    func run() async throws {
        guard let context = TreeContext(headerValue: header) else { throw ValidationError("bad --header") }
        let client = try options.connection.makeClient()
        defer { client.close() }
        let backpressure = options.backpressure(client)
        defer { Task { await backpressure.shutdown() } }
        let call = ProviderCall(
            scope: scope, estimate: ["tokens": estimate], timeout: .seconds(30), tool: tool, arguments: arguments,
            maxAttempts: 1)
        let (low, high) = (actualMinimum, max(actualMinimum, actualMaximum))
        let results = await context.run {
            await withTaskGroup(of: (String, Int).self) { group in
                var next = 0
                var results: [(String, Int)] = []
                func add() {
                    guard next < calls else { return }
                    next += 1
                    group.addTask {
                        do {
                            let result = try await backpressure.call(call) { _ in
                                try await Task.sleep(for: .milliseconds(Int.random(in: 1...4)))
                                return CallOutcome((), usage: ["tokens": Int.random(in: low...high)])
                            }
                            return ("admitted", result.usage["tokens"] ?? 0)
                        } catch let error as BackpressureError {
                            return (error.code.description, 0)
                        } catch {
                            return ("error", 0)
                        }
                    }
                }
                for _ in 0..<max(1, concurrency) { add() }
                while let result = await group.next() {
                    results.append(result)
                    add()
                }
                return results
            }
        }
        var outcomes = OutcomeCounts()
        var spent = 0
        for (outcome, tokens) in results {
            outcomes.add(outcome)
            spent += tokens
        }
        try options.write(JSONLine([("spent", .int(spent)), ("outcomes", outcomes.json)]))
    }
}
