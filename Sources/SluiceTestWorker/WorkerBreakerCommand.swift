import ArgumentParser
import Sluice
import SluiceRedis

/// `sluice worker breaker`: makes calls to one dependency through ``Backpressure`` for --duration-ms
/// (each failing or succeeding after --hold-ms) and reports how many ran, how many of them were
/// half-open probes, and how many the breaker refused.
struct WorkerBreakerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "breaker", shouldDisplay: false)

    @OptionGroup var options: WorkerOptions
    @Option var dependency: String
    @Option(name: .customLong("duration-ms")) var duration: Int = 1_000
    @Option var concurrency: Int = 4
    @Option(help: "fail | succeed") var outcome = "fail"
    @Option(name: .customLong("hold-ms")) var hold: Int = 0
    @Option(name: .customLong("min-calls")) var minimumCalls: Int = 20
    @Option var ratio: Double = 0.15
    @Option(name: .customLong("cool-down-ms")) var coolDown: Int = 2_000
    @Option var probes: Int = 2

    func run() async throws {
        let client = try options.makeClient()
        defer { client.close() }
        let breaker = CircuitBreaker.Configuration(
            window: .seconds(60), minimumCalls: minimumCalls, failureRatio: ratio, coolDown: .milliseconds(coolDown),
            probes: probes, probeTimeout: .seconds(30))
        let backpressure = options.backpressure(client, breaker: breaker)
        defer { Task { await backpressure.shutdown() } }
        let call = ProviderCall(scope: dependency, timeout: .seconds(30), maxAttempts: 1)
        let end = ContinuousClock.now + .milliseconds(duration)
        let fail = outcome == "fail"
        let hold = self.hold
        let counts = await withTaskGroup(of: OutcomeCounts.self) { group in
            for _ in 0..<max(1, concurrency) {
                group.addTask {
                    let counts = SharedCounts()
                    while ContinuousClock.now < end {
                        do {
                            _ = try await backpressure.call(call) { attempt in
                                counts.add(attempt.isProbe ? "probes" : "ran")
                                if hold > 0 { try await Task.sleep(for: .milliseconds(hold)) }
                                if fail { throw ProviderFailure("injected failure", retryable: false) }
                                return CallOutcome(())
                            }
                        } catch let error as BackpressureError {
                            counts.add(error.code.description)
                            try? await Task.sleep(for: .milliseconds(5))
                        } catch {
                            counts.add("failed")
                        }
                    }
                    return counts.snapshot
                }
            }
            var total = OutcomeCounts()
            for await counts in group {
                for (name, count) in counts.counts { total.counts[name, default: 0] += count }
            }
            return total
        }
        try options.write(["outcomes": counts.json])
    }
}
