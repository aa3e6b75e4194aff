import ArgumentParser
import Sluice
import SluiceRedis

/// `sluice worker retry`: makes --calls calls that always fail with a retryable error, each
/// allowed --attempts attempts, and reports the attempts made and how the calls ended.
struct WorkerRetryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "retry", shouldDisplay: false)

    @OptionGroup var options: WorkerOptions
    @Option var scope: String
    @Option var calls: Int = 20
    @Option var attempts: Int = 4
    @Option var ratio: Double = 0.1
    @Option var floor: Int = 5

    func run() async throws {
        let client = try options.makeClient()
        defer { client.close() }
        let backpressure = options.backpressure(
            client, breaker: .init(minimumCalls: 1_000_000),
            retryBudget: .init(ratio: ratio, floor: floor, window: .seconds(3600)),
            backoff: RetryBackoff(initial: .milliseconds(1), maximum: .milliseconds(4)))
        defer { Task { await backpressure.shutdown() } }
        let call = ProviderCall(scope: scope, timeout: .seconds(30), maxAttempts: attempts)
        var outcomes = OutcomeCounts()
        var made = 0
        for _ in 0..<calls {
            let counter = AttemptCounter()
            do {
                _ = try await backpressure.call(call) { _ -> CallOutcome<Void> in
                    counter.increment()
                    throw ProviderFailure("injected 503", retryable: true)
                }
                outcomes.add("succeeded")
            } catch let error as BackpressureError {
                outcomes.add(error.code.description)
            } catch {
                outcomes.add("failed")
            }
            made += counter.value
        }
        try options.write(["attempts": made, "outcomes": outcomes.json])
    }
}

/// A counter the operation closure can bump.
final class AttemptCounter: Sendable {
    private let count = SluiceMutex(0)
    var value: Int { count.withLock { $0 } }
    func increment() { count.withLock { $0 += 1 } }
}
