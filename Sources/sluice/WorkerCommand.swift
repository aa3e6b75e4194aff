import ArgumentParser
import Sluice
import SluiceRedis

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// `sluice worker ...` (hidden): small worker processes for the multi-process integration tests.
/// Each does one job against a shared Redis and writes one JSON line of what it saw to `--out`.
struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Test workers for Sluice's multi-process tests.",
        shouldDisplay: false,
        subcommands: [
            WorkerLeaseCommand.self, WorkerTreeCallsCommand.self, WorkerTreeSpawnCommand.self,
            WorkerBreakerCommand.self, WorkerRetryCommand.self, WorkerConnectionChurnCommand.self,
        ]
    )
}

/// The options every worker takes.
struct WorkerOptions: ParsableArguments {
    @OptionGroup var connection: ConnectionOptions

    @Option(help: "The partition of the keys.")
    var partition = "test"

    @Option(help: "Where to write the result line.")
    var out: String

    /// Writes `line` to `--out` (replacing it), atomically: written to a temporary file, then renamed.
    func write(_ line: JSONLine) throws {
        let temporary = out + ".tmp"
        try (line.text + "\n").write(toFile: temporary, atomically: false, encoding: .utf8)
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
    var json: JSONLine.Value {
        .raw(JSONLine(counts.sorted { $0.key < $1.key }.map { ($0.key, .int($0.value)) }).text)
    }
}

/// ``OutcomeCounts`` that concurrent operation closures can add to.
final class SharedCounts: Sendable {
    private let counts = SluiceMutex(OutcomeCounts())
    func add(_ name: String) { counts.withLock { $0.add(name) } }
    var snapshot: OutcomeCounts { counts.withLock { $0 } }
}
