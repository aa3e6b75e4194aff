import CoreMetrics
import Logging

/// The entry point: automatically pipelined shared connections for everyday commands and scripts
/// (one by default), and a small pool for callers that need a connection of their own (blocking
/// reads, `MULTI`).
///
/// Given any node of a Redis Cluster, the client finds out on its first command (`CLUSTER INFO`) and from
/// then on sends each command to the primary that serves its keys, with a pipelined connection and a pool
/// per primary, following `MOVED` and `ASK` (see ``sendToEveryPrimary(_:)`` and ``scanKeys(matching:type:)``
/// for commands about servers rather than keys).
///
/// Given Redis Sentinel (`redis-sentinel://…#primaryName`), every connection asks the sentinels for the
/// primary when it connects and follows a fail-over (see ``RedisConfiguration/Sentinel``).
///
/// ```swift
/// let redis = try RedisClient(url: "redis://127.0.0.1:6379")
/// let pong = try await redis.send(RedisCommand("PING"))
/// ```
///
/// Logging and metrics: pass a `backgroundLogger` to hear about what the connections do on their own (a lost
/// connection at `warning`, each reconnect at `info`, a Redis Cluster slot map that names other primaries at
/// `notice`, every failed attempt at `debug`); no line carries a password. The client's metrics
/// (`sluice_redis_reconnects_total`, `sluice_redis_connection_losses_total`, `sluice_redis_topology_changes_total`,
/// `sluice_redis_command_duration_seconds{kind}`) go to `metricsFactory`, by default the backend the application
/// bootstrapped (`MetricsSystem.bootstrap`).
public final class RedisClient: Sendable {
    public let configuration: RedisConfiguration
    private let pool: DedicatedPool
    let router: CommandRouter
    /// With Redis Sentinel: names the primary to every connection of the client when it connects.
    let sentinel: SentinelResolver?

    /// - Parameters:
    ///   - poolSize: the most dedicated connections ``withConnection(deadline:_:)`` opens at once.
    ///   - sharedConnections: how many pipelined connections share the commands of concurrent
    ///     callers, taken in turn (each has an I/O thread of its own).
    ///   - backgroundLogger: where connection losses, reconnects and fail-overs are logged (by default nowhere).
    ///   - metricsFactory: where the client's metrics go; `nil`: the bootstrapped `MetricsSystem.factory`.
    public init(
        configuration: RedisConfiguration, poolSize: Int = 4, sharedConnections: Int = 1,
        backgroundLogger: Logger = .sluiceDisabled, metricsFactory: (any MetricsFactory)? = nil
    ) throws(RedisError) {
        var configuration = configuration
        var logger = backgroundLogger
        logger[metadataKey: "redis.endpoint"] = "\(ConnectionHandshake.describe(configuration.endpoint))"
        configuration.observability = RedisObservability(
            logger: logger, factory: metricsFactory ?? MetricsSystem.factory)
        self.configuration = configuration
        let sentinel = configuration.sentinel.map { _ in SentinelResolver(configuration: configuration) }
        self.sentinel = sentinel
        var shared: [RedisConnection] = []
        for _ in 0..<max(1, sharedConnections) {
            shared.append(try RedisConnection(configuration: configuration, shared: true, resolver: sentinel))
        }
        self.pool = DedicatedPool(configuration: configuration, maximumConnections: poolSize, resolver: sentinel)
        self.router = CommandRouter(sharedConnections: shared, configuration: configuration, poolSize: poolSize)
    }

    public convenience init(url: String) throws(RedisError) {
        try self.init(configuration: RedisConfiguration(url: url))
    }

    deinit {
        close()
    }

    /// Sends one command on a shared connection; concurrent callers are pipelined together.
    ///
    /// Blocking commands (`BLPOP`, `XREAD … BLOCK`, `WAIT`, …) and those that change the
    /// connection's state (`SELECT`, `MULTI`, `AUTH`, …) are refused here with
    /// ``RedisError/Code/requiresDedicatedConnection``: send them in ``withConnection(deadline:_:)``.
    public func send(_ command: RedisCommand) async throws(RedisError) -> RedisValue {
        let start = ContinuousClock.now
        defer { configuration.observability.recordDuration(.command, since: start) }
        return try await router.send(command)
    }

    /// Sends one command built from its name and arguments.
    public func send(_ name: String, _ arguments: RedisArgument...) async throws(RedisError) -> RedisValue {
        try await send(RedisCommand(name, arguments))
    }

    /// Sends commands back to back and returns their replies in order (error replies in place).
    public func pipeline(_ commands: [RedisCommand]) async throws(RedisError) -> [RedisValue] {
        let start = ContinuousClock.now
        defer { configuration.observability.recordDuration(.pipeline, since: start) }
        return try await router.pipeline(commands)
    }

    /// Runs a script with `EVALSHA`. When the server does not know it (`NOSCRIPT`: a restart, a
    /// `SCRIPT FLUSH`, a fail-over), the call is retried once with `EVAL`, which loads the script
    /// into the server's cache and runs it in one step, so callers never see the difference — not
    /// even when another client flushes the cache again between a `SCRIPT LOAD` and the retry.
    public func evalScript(
        _ script: RedisScript, keys: [RedisArgument] = [], arguments: [RedisArgument] = []
    ) async throws(RedisError) -> RedisValue {
        let start = ContinuousClock.now
        defer { configuration.observability.recordDuration(.script, since: start) }
        do {
            return try await router.send(Self.evalCommand(script, byDigest: true, keys: keys, arguments: arguments))
        } catch  where error.serverPrefix == "NOSCRIPT" {
            return try await router.send(Self.evalCommand(script, byDigest: false, keys: keys, arguments: arguments))
        }
    }

    /// Loads a script into the server's script cache (`SCRIPT LOAD`).
    public func load(_ script: RedisScript) async throws(RedisError) {
        let reply = try await router.send(RedisCommand("SCRIPT", "LOAD", RedisArgument(script.source)))
        guard reply.string == script.sha1 else {
            throw RedisError(
                .unexpectedReply,
                "SCRIPT LOAD of \(script.name) returned digest \(reply.string ?? "nil"), expected \(script.sha1)",
                command: "SCRIPT")
        }
    }

    /// Runs `body` with a connection of its own from the pool, returned to the pool afterwards.
    /// When `body` throws, the connection is closed instead: it may be inside a `MULTI` or waiting
    /// for a blocking read, and the next borrower must not inherit that.
    ///
    /// When every pooled connection is busy, the caller waits for one until `deadline` (default:
    /// ``RedisConfiguration/commandTimeout`` from now; then ``RedisError/Code/timeout``) and no
    /// longer than its task stays uncancelled (then `CancellationError`).
    ///
    /// On a Redis Cluster the connection goes to any primary; see ``withConnection(routingKey:deadline:_:)``.
    public func withConnection<Result: Sendable>(
        deadline: ContinuousClock.Instant? = nil, _ body: (RedisConnection) async throws -> Result
    ) async throws -> Result {
        try await withConnection(pool: dedicatedPool(routingKey: nil), deadline: deadline, body)
    }

    func withConnection<Result: Sendable>(
        pool: DedicatedPool, deadline: ContinuousClock.Instant?, _ body: (RedisConnection) async throws -> Result
    ) async throws -> Result {
        let deadline = deadline ?? .now + configuration.commandTimeout
        var lease = try await pool.lease(deadline: deadline)
        // With Sentinel, a pooled connection still on the primary before a fail-over is closed, not lent.
        var skipped = 0
        while let sentinel, skipped < 4, let primary = sentinel.lastKnownPrimary,
            let connectedTo = lease.connection.connectedTo, connectedTo != primary
        {
            pool.discard(lease)
            skipped += 1
            lease = try await pool.lease(deadline: deadline)
        }
        do {
            let result = try await body(lease.connection)
            pool.release(lease)
            return result
        } catch {
            pool.discard(lease)
            throw error
        }
    }

    /// The dedicated connections' pool: slots in use and callers waiting (for tests and status output).
    var poolUsage: (slots: Int, waiting: Int) { pool.usage }

    /// The first shared connection's I/O thread as a task executor; see ``RedisConnection/executor``.
    public var executor: any TaskExecutor { router.seed.executor }

    /// The pool of dedicated connections to the server, or on a cluster to the primary that serves `key`.
    func dedicatedPool(routingKey key: RedisArgument?) async throws(RedisError) -> DedicatedPool {
        guard case .cluster(let cluster) = try await router.mode() else { return pool }
        return try await cluster.dedicatedPool(routingKey: key)
    }

    /// Closes the shared connections and the pools; waiting commands fail with ``RedisError/Code/closed``.
    public func close() {
        router.close()
        pool.close()
        sentinel?.close()
    }

    static func evalCommand(
        _ script: RedisScript, byDigest: Bool, keys: [RedisArgument], arguments: [RedisArgument]
    ) -> RedisCommand {
        var all: [RedisArgument] = []
        all.reserveCapacity(2 + keys.count + arguments.count)
        all.append(RedisArgument(byDigest ? script.sha1 : script.source))
        all.append(RedisArgument(keys.count))
        all.append(contentsOf: keys)
        all.append(contentsOf: arguments)
        return RedisCommand(byDigest ? "EVALSHA" : "EVAL", all)
    }
}
