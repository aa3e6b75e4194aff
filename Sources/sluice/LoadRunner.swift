import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Runs an operation from N concurrent tasks until a count or a duration is reached, and
/// collects every latency. Shared by the `bench` commands.
struct LoadRunner: Sendable {
    enum Stop: Sendable {
        case count(Int)
        case duration(Duration)
    }

    struct Result: Sendable {
        var completed: Int
        var failed: Int
        var elapsed: Duration
        /// Latencies of the completed operations, in nanoseconds, sorted.
        var latencies: [UInt64]

        var operationsPerSecond: Double {
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            return seconds > 0 ? Double(completed) / seconds : 0
        }

        /// The q-quantile latency in microseconds (nearest rank).
        func percentileMicros(_ q: Double) -> Double {
            guard !latencies.isEmpty else { return 0 }
            let rank = min(latencies.count - 1, max(0, Int((q * Double(latencies.count)).rounded(.up)) - 1))
            return Double(latencies[rank]) / 1000
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
        let perTask = await withTaskGroup(of: (latencies: [UInt64], succeeded: Int, failed: Int).self) { group in
            for _ in 0..<concurrency {
                group.addTask(executorPreference: executor) {
                    var latencies: [UInt64] = []
                    latencies.reserveCapacity(4096)
                    var succeeded = 0
                    var failed = 0
                    while true {
                        if case .count(let count) = stop, total.next() > count { break }
                        let before = Self.nanos()
                        if before >= deadline { break }
                        do {
                            if try await operation() { succeeded += 1 }
                            latencies.append(Self.nanos() - before)
                        } catch {
                            failed += 1
                        }
                    }
                    return (latencies, succeeded, failed)
                }
            }
            var all: [(latencies: [UInt64], succeeded: Int, failed: Int)] = []
            for await part in group { all.append(part) }
            return all
        }
        let elapsed = ContinuousClock.now - started
        var latencies = perTask.flatMap(\.latencies)
        latencies.sort()
        let result = Result(
            completed: latencies.count, failed: perTask.reduce(0) { $0 + $1.failed }, elapsed: elapsed,
            latencies: latencies)
        return (result, perTask.reduce(0) { $0 + $1.succeeded })
    }

    static func nanos() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }
}

/// A shared ticket counter for `--count` runs.
final class Counter: Sendable {
    private let value = Atomic<Int>(0)
    func next() -> Int { value.add(1, ordering: .relaxed).newValue }
}
