import Logging
import ServiceLifecycle
import SluiceRedis

/// This worker's registration in its partition's worker registry (`sluice:{P}:workers`), kept
/// alive by a heartbeat. The number of live workers is what sizes each worker's share of a ceiling
/// when it has to decide locally (``FailurePolicy/localFallback(fleetCeiling:burst:)``).
///
/// Nothing happens in `init`. Run it as a `Service` in the application's `ServiceGroup` (``run()``: beats until
/// the group's graceful shutdown, then leaves the registry), or without one: ``start()`` and ``stop()``.
package final class FleetMembership: Sendable {
    /// This worker's id.
    package let workerID: String
    /// The partition of the registry.
    package let partition: String
    /// How often the heartbeat runs; a registration lapses after three missed beats.
    package let interval: Duration
    /// The first part of its keys (`<namespace>:{<partition>}:...`), as ``Limiter/Configuration/namespace``.
    package let namespace: String
    /// Where failed heartbeats are logged (at `debug`: the Redis client and ``RedisHealth`` report outages).
    package let logger: Logger
    private let redis: RedisClient
    private let known = SluiceMutex<Int>(1)
    private let task = SluiceMutex<Task<Void, Never>?>(nil)

    /// A membership; call ``start()`` to register and keep beating.
    package init(
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
    package var liveWorkers: Int { known.withLock { $0 } }

    /// Sends one heartbeat and returns the number of live workers.
    @discardableResult
    package func beat() async throws -> Int {
        let reply = try await redis.run(
            LuaScripts.workerHeartbeat, keys: [PartitionKeys(partition: partition, namespace: namespace).workers],
            arguments: [RedisArgument(workerID), RedisArgument(max(1, Int(interval * 3 / .milliseconds(1))))])
        let count = max(1, Int(reply.integer ?? 1))
        known.withLock { $0 = count }
        // A worker of this version is alive: its library is not stale, and those no worker ran for a day go.
        await ScriptLibrary.shared.noteInUse(on: redis, namespace: namespace)
        return count
    }

    /// Beats every ``interval`` (each beat bounded by it) until the task is cancelled.
    func heartbeats() async {
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

    /// Leaves the registry: best effort, bounded by three ``interval``s (at least 5 s, for a loaded server), and not cut
    /// short by the caller's cancellation.
    func leave() async {
        let redis = self.redis
        let key = PartitionKeys(partition: partition, namespace: namespace).workers
        let workerID = self.workerID
        let deadline = ContinuousClock.now + max(interval * 3, .seconds(5))
        await withCancellationShield {
            _ = try? await withDeadline(deadline, onTimeout: { RedisError(.timeout, "leaving the registry") }) {
                try await redis.send("ZREM", key, RedisArgument(workerID))
            }
        }
    }

    /// Without a `ServiceGroup`: registers now (best effort) and keeps beating every ``interval`` until ``stop()``.
    package func start() {
        let heartbeat = Task { [self] in await heartbeats() }
        task.withLock {
            $0?.cancel(); $0 = heartbeat
        }
    }

    /// Stops what ``start()`` started and leaves the registry (best effort).
    package func stop() async {
        let heartbeat = task.withLock { task in
            defer { task = nil }
            return task
        }
        heartbeat?.cancel()
        await heartbeat?.value  // a beat under way ends first: it cannot register the worker again after it left
        await leave()
    }
}

extension FleetMembership: Service {
    /// Registers, beats every ``interval`` until the service group's graceful shutdown (or cancellation), then
    /// leaves the registry.
    package func run() async {
        await cancelWhenGracefulShutdown { await self.heartbeats() }
        await leave()
    }
}
