import ArgumentParser
import SluiceRedis

/// `sluice bench redis`: this client's raw throughput and latency against a Redis server.
struct BenchRedisCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "redis",
        abstract: "Measure this client issuing PING or EVALSHA of a trivial script from N concurrent tasks.",
        discussion: """
            Compare with redis-benchmark on the same server, at the same concurrency, without -P:
              redis-benchmark -p PORT -c 50 -n 500000 --csv PING_MBULK
            """
    )

    enum Operation: String, ExpressibleByArgument, CaseIterable {
        case ping, evalsha
    }

    @OptionGroup var connection: ConnectionOptions
    @Option(help: "What each task sends: ping or evalsha (of `return 1`).") var op: Operation = .ping
    @Option(help: "How many tasks send at once.") var concurrency: Int = 50
    @Option(help: "How long to measure, in seconds.") var duration: Double = 5
    @Option(help: "How many pipelined connections share the tasks' commands, in turn.") var connections: Int = 1
    @Flag(help: "Print one JSON object instead of text.") var json = false
    @Option(
        help: """
            Where the calling tasks run: `pool` (Swift's global executor) or `connection` (the \
            connection's I/O thread, saving a thread hand-off per call).
            """)
    var executor: ExecutorChoice = .pool
    @Option(
        help: """
            How long a caller alone on an idle connection waits for its reply on its own thread, in \
            microseconds (rounded up to whole milliseconds; 0 turns it off; at most 10000).
            """)
    var loneCallerReplyWaitUs: Int = 1000

    enum ExecutorChoice: String, ExpressibleByArgument, CaseIterable {
        case pool, connection
    }

    func validate() throws {
        guard concurrency >= 1 else { throw ValidationError("--concurrency must be at least 1") }
        guard duration > 0 else { throw ValidationError("--duration must be positive") }
        guard (1...64).contains(connections) else { throw ValidationError("--connections is between 1 and 64") }
        guard (0...10_000).contains(loneCallerReplyWaitUs) else {
            throw ValidationError("--lone-caller-reply-wait-us is between 0 and 10000")
        }
    }

    func run() async throws {
        var configuration = try connection.configuration()
        configuration.loneCallerReplyWait = .microseconds(loneCallerReplyWaitUs)
        let client = try RedisClient(configuration: configuration, sharedConnections: connections)
        defer { client.close() }
        let script = RedisScript(name: "ping", source: "return 1")
        let ping = RedisCommand("PING")
        let operation: @Sendable () async throws -> Bool
        switch op {
        case .ping:
            operation = {
                _ = try await client.send(ping); return true
            }
        case .evalsha:
            operation = {
                _ = try await client.evalScript(script); return true
            }
        }
        var runner = LoadRunner(concurrency: concurrency, stop: .duration(.milliseconds(Int(duration * 1000))))
        if executor == .connection { runner.executor = client.executor }
        let (result, _) = await runner.run(operation)
        if json {
            print(
                try JSONOutput.line(
                    RedisJSON(
                        op: op.rawValue, concurrency: concurrency, connections: connections,
                        executor: executor.rawValue, opsPerSec: Figure(result.operationsPerSecond),
                        p50Us: Figure(result.percentileMicros(0.5)), p99Us: Figure(result.percentileMicros(0.99)),
                        failed: result.failed)))
        } else {
            print(
                "\(op.rawValue) x\(concurrency) on \(connections) connection(s): \(Int(result.operationsPerSecond)) ops/s, p50 \(result.percentileMicros(0.5)) µs, p99 \(result.percentileMicros(0.99)) µs, \(result.failed) failed"
            )
        }
    }

    /// `{"op", "concurrency", "connections", "executor", "ops_per_sec", "p50_us", "p99_us", "failed"}`
    struct RedisJSON: Encodable {
        var op: String
        var concurrency: Int
        var connections: Int
        var executor: String
        var opsPerSec: Figure
        var p50Us: Figure
        var p99Us: Figure
        var failed: Int

        enum CodingKeys: String, CodingKey {
            case op, concurrency, connections, executor, failed
            case opsPerSec = "ops_per_sec"
            case p50Us = "p50_us"
            case p99Us = "p99_us"
        }
    }
}

/// `sluice bench`: groups the benchmarks.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Measure throughput and latency.",
        subcommands: [BenchRedisCommand.self, BenchDecideCommand.self, BenchCallCommand.self])
}
