import ArgumentParser
import Sluice
import SluiceRedis

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// `sluice worker tree-calls`: makes calls through ``Backpressure`` inside the tree of --header
/// (a context from another process), each using a random actual amount of tokens, and reports
/// what was admitted and spent. With --quota, each call also reserves the quota path
/// `global=<partition>` (one request and the tokens), decided with the tree in one script.
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
    @Option(help: "The global scope's default spec; calls then reserve the path global=<partition>.")
    var quota: String?

    func run() async throws {
        guard let context = TreeContext(headerValue: header) else { throw ValidationError("bad --header") }
        let client = try options.makeClient()
        defer { client.close() }
        let backpressure: Backpressure
        var provider = ProviderCall(
            scope: scope, estimate: ["tokens": Int64(estimate)], timeout: .seconds(30), tool: tool,
            arguments: arguments,
            maxAttempts: 1)
        if let quota {
            let limiter = try Limiter(client: client, configuration: .init(defaults: ["global": quota]))
            backpressure = Backpressure(
                redis: client,
                configuration: .init(partition: options.partition, heartbeat: nil, holder: "pid-\(getpid())"),
                limiter: limiter)
            provider.quotaPath = try ScopePath("global=\(options.partition)")
            provider.estimate["requests"] = 1
        } else {
            backpressure = options.backpressure(client)
        }
        defer { Task { await backpressure.shutdown() } }
        let call = provider
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
                                return CallOutcome((), usage: ["tokens": Int64.random(in: Int64(low)...Int64(high))])
                            }
                            return ("admitted", Int(result.usage["tokens"]))
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
        try options.write(["spent": spent, "outcomes": outcomes.json])
    }
}
