import ArgumentParser
import Foundation
import Sluice
import SluiceRedis

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// `SluiceTestWorker ...`: small worker processes for the multi-process integration tests, built with the tests and
/// kept out of the operator's `sluice` binary. Each does one job against a shared Redis and writes one JSON line of
/// what it saw to `--out`.
@main
struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "SluiceTestWorker",
        abstract: "Test workers for Sluice's multi-process tests.",
        subcommands: [
            WorkerLeaseCommand.self, WorkerTreeCallsCommand.self, WorkerTreeSpawnCommand.self,
            WorkerBreakerCommand.self, WorkerRetryCommand.self, WorkerConnectionChurnCommand.self,
        ]
    )
}

/// The options every worker takes.
struct WorkerOptions: ParsableArguments {
    @Option(help: "Redis URL.")
    var redis: String

    /// A client of `--redis`.
    func makeClient() throws -> RedisClient { try RedisClient(configuration: configuration()) }

    func configuration() throws -> RedisConfiguration { try RedisConfiguration(url: redis) }

    @Option(help: "The partition of the keys.")
    var partition = "test"

    @Option(help: "Where to write the result line.")
    var out: String

    /// Writes `fields` as one JSON line to `--out` (replacing it), atomically: written to a temporary file, then
    /// renamed. A nil value is written as null.
    func write(_ fields: [String: Any?]) throws {
        let object = fields.mapValues { $0 ?? NSNull() }
        let line = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        let temporary = out + ".tmp"
        try (line + Data("\n".utf8)).write(to: URL(fileURLWithPath: temporary))
        _ = rename(temporary, out)
    }

    func backpressure(
        _ client: RedisClient, breaker: CircuitBreaker.Configuration = .init(),
        retryBudget: RetryBudget.Configuration = .init(), backoff: RetryBackoff = .init()
    ) -> Backpressure {
        Backpressure(
            redis: client,
            configuration: .init(
                partition: partition, breaker: breaker, retryBudget: retryBudget, backoff: backoff,
                heartbeat: nil, holder: "pid-\(getpid())"))
    }
}

/// Counts outcomes by name, for the result lines.
struct OutcomeCounts {
    var counts: [String: Int] = [:]
    mutating func add(_ name: String) { counts[name, default: 0] += 1 }
    var json: [String: Int] { counts }
}

/// ``OutcomeCounts`` that concurrent operation closures can add to.
final class SharedCounts: Sendable {
    private let counts = SluiceMutex(OutcomeCounts())
    func add(_ name: String) { counts.withLock { $0.add(name) } }
    var snapshot: OutcomeCounts { counts.withLock { $0 } }
}
