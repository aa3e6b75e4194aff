import ArgumentParser
import Sluice

/// `sluice bench decide`: decisions per second from N concurrent tasks of this process.
struct BenchDecideCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decide",
        abstract: "Measure decisions for one path from N concurrent tasks (every allowed decision is charged).",
        discussion: """
            Prints attempted, allowed, denied, decisions per second and latency percentiles for this \
            process. Several processes at once may share one quota: the sums are exact.
              sluice bench decide global=openai tenant=acme tree=req-1 --cost requests=1 --cost tokens=100 \\
                --default 'global=tokens: bucket rate=90000/min' --concurrency 50 --duration 5 --json
            With --tenants N, the scope after the root names a prefix: decisions go round-robin to \
            PREFIX-0 ... PREFIX-(N-1) (on a sharded global, spread over its shards):
              sluice bench decide global=openai tenant=t --tenants 64 --cost tokens=1 --duration 5 --json
            """
    )

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var decision: QuotaDecisionOptions
    @Option(help: "How many tasks decide at once.") var concurrency: Int = 50
    @Option(help: "Spread over tenants PREFIX-0 ... PREFIX-(N-1), PREFIX the name of the scope after the root.")
    var tenants: Int?
    @Option(help: "Stop after this many decisions (in total).") var count: Int?
    @Option(help: "Stop after this many seconds.") var duration: Double?
    @Flag(help: "Print one JSON object instead of text.") var json = false
    @Option(
        help: """
            Where the deciding tasks run: `pool` (Swift's global executor) or `connection` (the \
            connection's I/O thread, saving a thread hand-off per call).
            """)
    var executor: BenchRedisCommand.ExecutorChoice = .pool

    func validate() throws {
        if let tenants {
            guard (1...1_000_000).contains(tenants) else { throw ValidationError("--tenants is 1 to 1000000") }
            guard decision.scopes.count >= 2 else {
                throw ValidationError("--tenants needs a scope after the root: global=NAME tenant=PREFIX")
            }
        }
        guard concurrency >= 1, concurrency <= 10_000 else { throw ValidationError("--concurrency is 1 to 10000") }
        switch (count, duration) {
        case (nil, nil), (.some, .some): throw ValidationError("give either --count or --duration")
        case (let count?, nil): guard count >= 1 else { throw ValidationError("--count must be at least 1") }
        case (nil, let duration?): guard duration > 0 else { throw ValidationError("--duration must be positive") }
        }
    }

    func run() async throws {
        let client = try connection.makeClient()
        defer { client.close() }
        let limiter = try Limiter(client: client, configuration: decision.limiterConfiguration())
        let path = try decision.path()
        let paths = try tenantPaths(path)
        let next = Counter()
        let cost = try decision.cost()
        let priority = decision.priority
        let stop: LoadRunner.Stop = count.map { .count($0) } ?? .duration(.milliseconds(Int((duration ?? 1) * 1000)))
        var runner = LoadRunner(concurrency: concurrency, stop: stop)
        runner.warmUpPerTask = 0  // every decision counts: warm-up ones would charge unseen
        if executor == .connection { runner.executor = client.executor }
        let (result, allowed) = await runner.run {
            try await limiter.decide(paths[next.next() % paths.count], cost: cost, priority: priority).allowed
        }
        let attempted = result.completed + result.failed

        if json {
            print(
                try JSONOutput.line(
                    DecideJSON(
                        attempted: attempted, allowed: allowed, denied: result.completed - allowed,
                        failed: result.failed, decisionsPerSec: Figure(result.operationsPerSecond),
                        p50Us: Figure(result.percentileMicros(0.5)), p99Us: Figure(result.percentileMicros(0.99)))))
        } else {
            print(
                "\(attempted) decisions x\(concurrency): \(allowed) allowed, \(result.completed - allowed) denied, "
                    + "\(result.failed) failed; \(Int(result.operationsPerSecond))/s, p50 \(result.percentileMicros(0.5)) µs, "
                    + "p99 \(result.percentileMicros(0.99)) µs")
        }
    }

    /// `{"attempted", "allowed", "denied", "failed", "decisions_per_sec", "p50_us", "p99_us"}`
    struct DecideJSON: Encodable {
        var attempted: Int
        var allowed: Int
        var denied: Int
        var failed: Int
        var decisionsPerSec: Figure
        var p50Us: Figure
        var p99Us: Figure

        enum CodingKeys: String, CodingKey {
            case attempted, allowed, denied, failed
            case decisionsPerSec = "decisions_per_sec"
            case p50Us = "p50_us"
            case p99Us = "p99_us"
        }
    }

    /// The path itself, or with --tenants one path per tenant PREFIX-i (the scope after the root renamed).
    func tenantPaths(_ path: ScopePath) throws -> [ScopePath] {
        guard let tenants else { return [path] }
        let scope = path.scopes[1]
        return try (0..<tenants).map { index in
            var scopes = path.scopes
            scopes[1] = try Scope(scope.kind, "\(scope.name)-\(index)")
            return try ScopePath(scopes)
        }
    }
}
