import ArgumentParser
import Sluice
import SluiceRedis

/// `sluice bench call`: provider calls through `Backpressure.call` around an operation that only
/// reports a usage, with what each call costs Redis, read from the server's own statistics.
struct BenchCallCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "call",
        abstract:
            "Measure Backpressure.call end to end: calls per second, latency, Redis round trips and server µs per call.",
        discussion: """
            Each call is admitted on PATH (queue, breaker, quota, and with --lease-slots a lease; with --tree \
            inside a request tree), runs an operation that does nothing but report the cost as its usage, and \
            finishes. The server's statistics are reset after a warm-up (CONFIG RESETSTAT) and read at the end \
            (INFO commandstats): round trips are the top-level commands the server ran, server µs their time. \
            Refused calls (shed, or refused by the quota for good) count as calls too.
              sluice bench call global=openai tenant=acme --cost requests=1 --cost tokens=100 \\
                --default 'global=tokens: bucket rate=90000/min' --concurrency 50 --duration 5 --json
            """
    )

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var decision: QuotaDecisionOptions
    @Flag(help: "Run every call inside one request tree (opened first, budgets unlimited).") var tree = false
    @Option(help: "How many callers run at once.") var concurrency: Int = 50
    @Option(help: "Fleet-wide concurrency slots: each call holds a lease; none when omitted.") var leaseSlots: Int?
    @Option(help: "Stop after this many calls (in total).") var count: Int?
    @Option(help: "Stop after this many seconds.") var duration: Double?
    @Option(help: "Each call's deadline, in seconds.") var timeout: Double = 30
    @Flag(help: "Print one JSON object instead of text.") var json = false

    func validate() throws {
        guard concurrency >= 1, concurrency <= 10_000 else { throw ValidationError("--concurrency is 1 to 10000") }
        guard timeout > 0, timeout <= 86_400 else { throw ValidationError("--timeout is between 0 and a day") }
        if let leaseSlots, leaseSlots < 1 { throw ValidationError("--lease-slots must be at least 1") }
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
        let estimate = try decision.cost()
        let backpressure = Backpressure(
            redis: client,
            configuration: .init(
                partition: path.partition, defaultTimeout: .milliseconds(Int(timeout * 1000)),
                heartbeat: nil, holder: "bench"),
            limiter: limiter)
        let context: TreeContext? =
            tree
            ? try await RequestTrees(redis: client).open(
                partition: path.partition, limits: TreeLimits(), priority: decision.priority)
            : nil
        let call = ProviderCall(
            scope: path.description, estimate: estimate, quotaPath: path, concurrency: leaseSlots, maxAttempts: 1,
            label: "bench")
        let usage = estimate
        let admitted = Counter()
        @Sendable func once() async throws -> Bool {
            let body: @Sendable () async throws -> Bool = {
                do {
                    _ = try await backpressure.call(call) { _ in CallOutcome((), usage: usage) }
                    _ = admitted.next()
                    return true
                } catch let refusal as BackpressureError where refusal.isRefusal {
                    return false  // shed or refused for good: answered, not failed
                }
            }
            guard let context else { return try await body() }
            return try await context.run(body)
        }

        // Warm up (connections, the function library, specs), then measure from clean statistics.
        var warmUp = LoadRunner(concurrency: min(concurrency, 8), stop: .count(min(concurrency, 8) * 4))
        warmUp.warmUpPerTask = 0
        _ = await warmUp.run(once)
        _ = try await client.sendToEveryPrimary(RedisCommand("CONFIG", "RESETSTAT"))
        let stop: LoadRunner.Stop = count.map { .count($0) } ?? .duration(.milliseconds(Int((duration ?? 1) * 1000)))
        var runner = LoadRunner(concurrency: concurrency, stop: stop)
        runner.warmUpPerTask = 0
        let (result, succeeded) = await runner.run(once)
        // Every primary's statistics on a cluster, added up.
        let infos = try await client.sendToEveryPrimary(RedisCommand("INFO", "commandstats"))
        let stats = ServerStatistics(infos.compactMap(\.string).joined(separator: "\n"))
        let calls = result.completed
        let perCall = { (total: Double) in calls > 0 ? total / Double(calls) : 0 }
        if json {
            print(
                try JSONOutput.line(
                    CallJSON(
                        calls: calls, admitted: succeeded, refused: calls - succeeded, failed: result.failed,
                        callsPerSec: Figure(result.operationsPerSecond), p50Us: Figure(result.percentileMicros(0.5)),
                        p99Us: Figure(result.percentileMicros(0.99)),
                        redisRoundTripsPerCall: Figure(perCall(Double(stats.scriptCalls))),
                        serverUsPerCall: Figure(perCall(stats.microseconds)))))
        } else {
            print(
                "\(calls) calls x\(concurrency): \(succeeded) admitted, \(calls - succeeded) refused, \(result.failed) failed; "
                    + "\(Int(result.operationsPerSecond))/s, p50 \(result.percentileMicros(0.5)) µs, "
                    + "p99 \(result.percentileMicros(0.99)) µs; per call: "
                    + "\(perCall(Double(stats.scriptCalls))) Redis round trips, \(perCall(stats.microseconds)) µs of server time"
            )
        }
    }

    /// `{"calls", "admitted", "refused", "failed", "calls_per_sec", "p50_us", "p99_us", "redis_round_trips_per_call",
    /// "server_us_per_call"}`
    struct CallJSON: Encodable {
        var calls: Int
        var admitted: Int
        var refused: Int
        var failed: Int
        var callsPerSec: Figure
        var p50Us: Figure
        var p99Us: Figure
        var redisRoundTripsPerCall: Figure
        var serverUsPerCall: Figure

        enum CodingKeys: String, CodingKey {
            case calls, admitted, refused, failed
            case callsPerSec = "calls_per_sec"
            case p50Us = "p50_us"
            case p99Us = "p99_us"
            case redisRoundTripsPerCall = "redis_round_trips_per_call"
            case serverUsPerCall = "server_us_per_call"
        }
    }
}

/// The scripts a server ran since `CONFIG RESETSTAT`, from `INFO commandstats`: every command Sluice sends
/// on a provider call's path is a script (`FCALL`, or `EVALSHA` where functions are refused), so their calls
/// are the round trips, and their time (which includes the commands they run) is the server's time.
/// Commands that scripts run are counted in their own lines as well, so those lines are left out.
struct ServerStatistics {
    var scriptCalls = 0
    var microseconds = 0.0

    init(_ info: String) {
        let scripts: Set<Substring> = ["fcall", "fcall_ro", "evalsha", "evalsha_ro", "eval", "eval_ro"]
        for line in info.split(whereSeparator: \.isNewline) where line.hasPrefix("cmdstat_") {
            // cmdstat_fcall:calls=10,usec=120,usec_per_call=12.00,rejected_calls=0,failed_calls=0
            guard let colon = line.firstIndex(of: ":") else { continue }
            guard scripts.contains(line[line.index(line.startIndex, offsetBy: 8)..<colon]) else { continue }
            for pair in line[line.index(after: colon)...].split(separator: ",") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                guard parts.count == 2 else { continue }
                if parts[0] == "calls" { scriptCalls += Int(parts[1]) ?? 0 }
                if parts[0] == "usec" { microseconds += Double(parts[1]) ?? 0 }
            }
        }
    }
}
