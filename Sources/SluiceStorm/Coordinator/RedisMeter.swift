import SluiceRedis

/// Measures what one run asks of the storm's Redis: `CONFIG RESETSTAT` before the run's workers start, then
/// `INFO commandstats` when the run ends (``read()``, the same span as the provider's figures), or after the workers
/// have exited. Where `CONFIG` is refused (a managed Redis), it takes a snapshot of
/// `INFO commandstats` first and subtracts it. With a Redis other clients use too, their commands count as well.
/// On a Redis Cluster it asks every primary and adds their statistics up.
struct RedisMeter: Sendable {
    private let client: RedisClient
    private let baseline: RedisCommandStats?

    /// Starts measuring; nil (and no figures for the run) when the server answers neither command.
    static func start(url: String) async -> RedisMeter? {
        guard let client = try? RedisClient(url: url) else { return nil }
        if (try? await send(client, RedisCommand("CONFIG", "RESETSTAT"))) != nil {
            return RedisMeter(client: client, baseline: nil)
        }
        guard let snapshot = await snapshot(client) else {
            client.close()
            return nil
        }
        return RedisMeter(client: client, baseline: snapshot)
    }

    /// The command's replies: the server's, or every primary's on a cluster.
    private static func send(_ client: RedisClient, _ command: RedisCommand) async throws -> [RedisValue] {
        if try await client.isCluster() { return try await client.sendToEveryPrimary(command) }
        return [try await client.send(command)]
    }

    /// The commands since ``start(url:)``.
    func read() async -> RedisCommandStats? {
        guard let now = await Self.snapshot(client) else { return nil }
        return baseline.map { now.subtracting($0) } ?? now
    }

    /// Ends the measurement: the run's commands (`measured`, read when the run ended; else read now), the storm's own
    /// ceiling sampling (`samplerCalls` status scripts) left out. `probe` runs the sampler's status script
    /// `probeCalls` more times, between two snapshots, to learn what one costs.
    func finish(
        measured: RedisCommandStats? = nil, providerCalls: Int, samplerCalls: Int, probeCalls: Int = 16,
        probe: () async -> Void
    ) async -> RedisCost? {
        defer { client.close() }
        var run = measured
        if run == nil { run = await read() }
        guard let run else { return nil }
        var perSampleMicroseconds = 0.0
        if samplerCalls > 0, let before = await Self.snapshot(client) {
            await probe()
            if let after = await Self.snapshot(client) {
                let probed = after.subtracting(before)
                if probed.scriptCalls > 0 {
                    perSampleMicroseconds = Double(probed.scriptMicroseconds) / Double(probed.scriptCalls)
                }
            }
        }
        return RedisCost(
            calls: max(0, run.topLevelCalls - samplerCalls),
            scriptMicroseconds: max(0, Double(run.scriptMicroseconds) - Double(samplerCalls) * perSampleMicroseconds),
            providerCalls: providerCalls)
    }

    private static func snapshot(_ client: RedisClient) async -> RedisCommandStats? {
        guard let replies = try? await send(client, RedisCommand("INFO", "commandstats")), !replies.isEmpty else {
            return nil
        }
        var total = RedisCommandStats()
        for reply in replies {
            guard let text = reply.string else { return nil }
            total = total.adding(RedisCommandStats(info: text))
        }
        return total
    }
}
