import Histogram
import SluiceRedis
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Runs an operation from N concurrent tasks until a count or a duration is reached, and
/// records every latency in a histogram. Shared by the `bench` commands.
struct LoadRunner: Sendable {
    enum Stop: Sendable {
        case count(Int)
        case duration(Duration)
    }

    struct Result: Sendable {
        var completed: Int
        var failed: Int
        var elapsed: Duration
        /// Latencies of the completed operations, in nanoseconds, to three significant digits.
        var latencies: Histogram<UInt64>

        var operationsPerSecond: Double {
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            return seconds > 0 ? Double(completed) / seconds : 0
        }

        /// The q-quantile latency in microseconds (nearest rank, within 0.1%); 0 without any.
        func percentileMicros(_ q: Double) -> Double {
            guard latencies.totalCount > 0 else { return 0 }
            return Double(latencies.valueAtPercentile(q * 100)) / 1000
        }
    }

    var concurrency: Int
    var stop: Stop
    /// Operations per task run before measuring starts (connections, script cache, page faults).
    var warmUpPerTask = 20
    /// Where the tasks run: nil for Swift's global executor.
    var executor: (any TaskExecutor)? = nil

    /// `operation` returns whether it succeeded in the caller's terms (an allowed decision, say);
    /// a thrown error counts as failed.
    func run(_ operation: @escaping @Sendable () async throws -> Bool) async -> (result: Result, succeeded: Int) {
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<concurrency {
                group.addTask(executorPreference: executor) {
                    for _ in 0..<warmUpPerTask { _ = try? await operation() }
                }
            }
        }
        let started = ContinuousClock.now
        let startNanos = Self.nanos()
        let deadline: UInt64 = {
            if case .duration(let duration) = stop {
                return startNanos + UInt64(duration / .nanoseconds(1))
            }
            return .max
        }()
        let total = Counter()
        let recorder = LatencyRecorder(shards: min(concurrency, 16))
        let perTask = await withTaskGroup(of: (succeeded: Int, failed: Int).self) { group in
            for index in 0..<concurrency {
                group.addTask(executorPreference: executor) {
                    var succeeded = 0
                    var failed = 0
                    while true {
                        if case .count(let count) = stop, total.next() > count { break }
                        let before = Self.nanos()
                        if before >= deadline { break }
                        do {
                            if try await operation() { succeeded += 1 }
                            recorder.record(Self.nanos() - before, task: index)
                        } catch {
                            failed += 1
                        }
                    }
                    return (succeeded, failed)
                }
            }
            var all: [(succeeded: Int, failed: Int)] = []
            for await part in group { all.append(part) }
            return all
        }
        let elapsed = ContinuousClock.now - started
        let latencies = recorder.merged()
        let result = Result(
            completed: Int(latencies.totalCount), failed: perTask.reduce(0) { $0 + $1.failed }, elapsed: elapsed,
            latencies: latencies)
        return (result, perTask.reduce(0) { $0 + $1.succeeded })
    }

    static func nanos() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }
}

/// The tasks' latency histograms: a few shards behind locks rather than one per task, as a histogram of three
/// significant digits takes about 100 KB and `--concurrency` goes up to 10,000. A task records after its clock
/// stopped, so the lock is not in the latency.
final class LatencyRecorder: Sendable {
    private final class Shard: Sendable {
        let histogram = SluiceMutex(Histogram<UInt64>(numberOfSignificantValueDigits: .three))
    }

    private let shards: [Shard]

    init(shards: Int) {
        self.shards = (0..<max(1, shards)).map { _ in Shard() }
    }

    func record(_ nanoseconds: UInt64, task: Int) {
        shards[task % shards.count].histogram.withLock { _ = $0.record(nanoseconds) }
    }

    /// Every shard's latencies in one histogram.
    func merged() -> Histogram<UInt64> {
        var all = Histogram<UInt64>(numberOfSignificantValueDigits: .three)
        for shard in shards { shard.histogram.withLock { all.add($0) } }
        return all
    }
}

/// A shared ticket counter for `--count` runs.
final class Counter: Sendable {
    private let value = Atomic<Int>(0)
    func next() -> Int { value.add(1, ordering: .relaxed).newValue }
}
