import Logging
import SluiceRedis
import Synchronization

/// This worker's registration in its partition's worker registry (`sluice:{P}:workers`), kept
/// alive by a heartbeat. The number of live workers is what sizes each worker's share of a ceiling
/// when it has to decide locally (``FailurePolicy/localFallback(fleetCeiling:burst:)``).
public final class FleetMembership: Sendable {
    /// This worker's id.
    public let workerID: String
    /// The partition of the registry.
    public let partition: String
    /// How often the heartbeat runs; a registration lapses after three missed beats.
    public let interval: Duration
    /// The first part of its keys (`<namespace>:{<partition>}:...`), as ``Limiter/Configuration/namespace``.
    public let namespace: String
    /// Where failed heartbeats are logged (at `debug`: the Redis client and ``RedisHealth`` report outages).
    public let logger: Logger
    private let redis: RedisClient
    private let known = Mutex<Int>(1)
    private let task = Mutex<Task<Void, Never>?>(nil)

    /// A membership; call ``start()`` to register and keep beating.
    public init(
        redis: RedisClient, partition: String, workerID: String = TreeContext.newID(), interval: Duration = .seconds(5),
        namespace: String = "sluice", logger: Logger = .sluiceDisabled
    ) {
        self.redis = redis
        self.logger = logger
        self.namespace = namespace
        self.partition = partition
        self.workerID = workerID
        self.interval = max(.milliseconds(10), interval)
    }

    /// The number of live workers last seen (at least 1: this one).
    public var liveWorkers: Int { known.withLock { $0 } }

    /// Sends one heartbeat and returns the number of live workers.
    @discardableResult
    public func beat() async throws -> Int {
        let reply = try await redis.run(
            LuaScripts.workerHeartbeat, keys: [PartitionKeys(partition: partition, namespace: namespace).workers],
            arguments: [RedisArgument(workerID), RedisArgument(max(1, Int(interval * 3 / .milliseconds(1))))])
        let count = max(1, Int(reply.integer ?? 1))
        known.withLock { $0 = count }
        return count
    }

    /// Registers now (best effort) and keeps beating every ``interval`` until ``stop()``.
    public func start() {
        let heartbeat = Task { [self] in
            while !Task.isCancelled {
                do {
                    _ = try await withDeadline(.now + interval, onTimeout: { RedisError(.timeout, "heartbeat") }) {
                        try await self.beat()
                    }
                } catch {
                    logger.debug("worker heartbeat failed", metadata: ["error": "\(error)"])
                }
                try? await Task.sleep(for: interval)
            }
        }
        task.withLock {
            $0?.cancel(); $0 = heartbeat
        }
    }

    /// Stops the heartbeat and leaves the registry (best effort).
    public func stop() async {
        task.withLock {
            $0?.cancel(); $0 = nil
        }
        _ = try? await redis.send(
            "ZREM", PartitionKeys(partition: partition, namespace: namespace).workers, RedisArgument(workerID))
    }
}
