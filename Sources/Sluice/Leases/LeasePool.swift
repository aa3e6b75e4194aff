import Logging
import SluiceRedis

/// Fleet-wide concurrency slots per scope, as leases in Redis (a sorted set of lease ids scored by
/// their expiry, pruned by every acquire: no sweeper process).
///
/// ```swift
/// let pool = LeasePool(redis: redis, partition: "openai", scope: "gpt-4o", slots: 32)
/// try await pool.withLease(waitingUntil: .now + .seconds(5)) { lease in
///     // at most 32 of these run at once across the fleet; the lease is renewed while the body runs
/// }
/// ```
public struct LeasePool: Sendable {
    /// The scope's name (escaped in the key).
    public let scope: String
    /// The partition (hash tag) of the scope's key.
    public let partition: String
    /// The shard of ``partition`` (a sharded global ceiling) whose hash tag the pool's keys carry: the shard of the
    /// tenant it was made for (``tenant(_:of:scope:slots:limiter:ttl:holder:logger:)``); `nil`: the partition's own.
    public let shard: Int?
    /// How many leases may be held at once.
    public let slots: Int
    /// How long a lease lasts without a renewal: the longest a crashed holder keeps a slot.
    public let ttl: Duration
    /// Who this process is (shown to operators beside each lease).
    public let holder: String
    /// The first part of its keys (`<namespace>:{<partition>}:...`), as ``Limiter/Configuration/namespace``.
    public let namespace: String

    /// Where lost leases are logged (`warning`).
    public let logger: Logger
    private let redis: RedisClient
    private let keys: PartitionKeys
    private let key: RedisArgument
    /// The root scope's state key of the partition whose reconciler scales the slots (see ``following(_:path:)``).
    private var shareKey: RedisArgument?

    /// A pool of `slots` leases for `scope`.
    public init(
        redis: RedisClient, partition: String, scope: String, slots: Int, ttl: Duration = .seconds(30),
        holder: String = "worker", namespace: String = "sluice", logger: Logger = .sluiceDisabled
    ) {
        self.init(
            redis: redis, partition: partition, shard: nil, scope: scope, slots: slots, ttl: ttl, holder: holder,
            namespace: namespace, logger: logger)
    }

    private init(
        redis: RedisClient, partition: String, shard: Int?, scope: String, slots: Int, ttl: Duration, holder: String,
        namespace: String, logger: Logger
    ) {
        self.logger = logger
        self.redis = redis
        self.namespace = namespace
        self.partition = partition
        self.scope = scope
        self.slots = max(1, slots)
        self.ttl = max(.milliseconds(10), ttl)
        self.holder = PartitionKeys.escape(holder)
        self.shard = shard
        self.keys = PartitionKeys(partition: partition, shard: shard, namespace: namespace)
        self.key = keys.key("lease", scope)
    }

    /// A pool of `slots` leases for `scope` that belongs to `tenant` of `partition` (the scope below the root in
    /// the tenant's quota paths: `acme` for `global=openai tenant=acme ...`), on the limiter's Redis and in its
    /// namespace. When `partition` is a sharded global ceiling (`quota set global=NAME ... --shards N`), the pool
    /// lives on the tenant's shard, beside its decisions and its trees: tenants' pools spread over the cluster as
    /// their decisions do, and ``following(_:path:)`` may follow the tenant's path on Redis Cluster. Otherwise it
    /// is the partition's pool, as ``init(redis:partition:scope:slots:ttl:holder:namespace:logger:)`` makes it.
    ///
    /// The shard is the one the limiter knows now (its cached layout, read again every 2 s while the root is
    /// split): make the pool when a call needs one, not once for the life of the process. A lease taken before a
    /// new split is renewed and released on its own pool until it ends; meanwhile the tenant's calls on the new
    /// shard count from an empty pool, so for that while the tenant may run up to twice its slots.
    public static func tenant(
        _ tenant: String, of partition: String, scope: String, slots: Int, limiter: Limiter,
        ttl: Duration = .seconds(30), holder: String = "worker", logger: Logger = .sluiceDisabled
    ) async throws -> LeasePool {
        return LeasePool(
            redis: limiter.client, partition: partition,
            shard: try await limiter.shard(ofTenant: tenant, in: partition),
            scope: scope, slots: slots, ttl: ttl, holder: holder, namespace: limiter.configuration.namespace,
            logger: logger)
    }

    /// This pool with its slots scaled by the concurrency share of `path`'s partition: the ``Reconciler`` cuts
    /// the share when the provider answers with an overload (5xx, 529, a timeout), once per overload event, and
    /// climbs it back within its recovery time; at least one slot stays. On Redis Cluster the pool's partition must
    /// be the limiter's partition of `path` (one hash slot); a tenant's pool on a sharded root
    /// (``tenant(_:of:scope:slots:limiter:ttl:holder:logger:)``) follows that tenant's paths, whose share is its shard's.
    public func following(_ reconciler: Reconciler, path: ScopePath) -> LeasePool {
        var copy = self
        copy.shareKey = RedisArgument(reconciler.limiter.keys(for: path).states(path)[0])
        return copy
    }

    /// What one acquire attempt found.
    public enum Attempt: Sendable, Hashable {
        /// A slot is ours.
        case acquired(Lease)
        /// Every slot is held; the earliest lease expires after this long (unless renewed).
        case busy(held: Int, earliestExpiry: Duration)
    }

    /// Tries once to take a slot.
    public func tryAcquire() async throws -> Attempt {
        try parseAcquire(try await redis.run(acquireStep()))
    }

    func acquireStep() -> ScriptStep {
        ScriptStep(
            script: LuaScripts.leaseAcquire, keys: [key] + (shareKey.map { [$0] } ?? []),
            arguments: [RedisArgument(slots), RedisArgument(Self.milliseconds(ttl)), RedisArgument(holder)])
    }

    /// The pool's wake-up list: lease-release.lua pushes one for every slot released in time.
    var freed: WakeUpList {
        WakeUpList(key: keys.key("lease", scope, "free"))
    }

    /// lease-release.lua with the pool's key and its wake-up list (declared: a script touches only its KEYS).
    func releaseStep(_ lease: Lease) -> ScriptStep {
        ScriptStep(script: LuaScripts.leaseRelease, keys: [key, freed.key], arguments: [RedisArgument(lease.member)])
    }

    /// call-admit's "lease_free" step: the wake-up list it empties when every slot is held.
    var freedStep: ScriptStep {
        ScriptStep(script: LuaScripts.wake, keys: [freed.key], arguments: [], entry: "lease_free")
    }

    /// lease-acquire's reply.
    func parseAcquire(_ reply: RedisValue) throws -> Attempt {
        let parts = reply.array ?? []
        guard parts.count >= 3 else { throw RedisError(.unexpectedReply, "lease-acquire replied unexpectedly") }
        if parts[0].integer == 1 {
            return .acquired(
                Lease(scope: scope, partition: partition, token: parts[1].integer ?? 0, holder: holder, ttl: ttl))
        }
        return .busy(held: Int(parts[2].integer ?? 0), earliestExpiry: .milliseconds(parts[1].integer ?? 1))
    }

    /// Takes a slot, waiting with exponential backoff (full jitter, never past the moment the
    /// earliest lease expires) until `deadline`; throws ``BackpressureError/Code/leaseUnavailable``
    /// at once when no slot can free up before it.
    public func acquire(
        waitingUntil deadline: ContinuousClock.Instant,
        backoff: RetryBackoff = RetryBackoff(
            initial: .milliseconds(10), maximum: .milliseconds(500))
    ) async throws -> Lease {
        var attempt = 0
        while true {
            try Task.checkCancellation()
            // Shielded: cancelled while the acquire is in flight, the caller still learns whether it took a slot
            // (and gives it back), where an abandoned reply would leave the slot held until its ttl.
            switch try await withCancellationShield({ try await tryAcquire() }) {
            case .acquired(let lease):
                if Task.isCancelled {
                    _ = try? await withCancellationShield { try await release(lease) }
                    throw CancellationError()
                }
                return lease
            case .busy(let held, let earliest):
                let now = ContinuousClock.now
                guard now < deadline else {
                    throw BackpressureError(
                        .leaseUnavailable, "all \(held) slots of \(scope) are held", retryAfter: earliest)
                }
                var pause = min(backoff.delay(attempt: attempt), earliest + .milliseconds(1))
                pause = min(pause, deadline - now)
                attempt += 1
                try await Task.sleep(for: pause)
            }
        }
    }

    /// The heartbeat: extends a lease. Returns false when it was lost (expired before the renewal).
    public func renew(_ lease: Lease) async throws -> Bool {
        let reply = try await redis.run(
            LuaScripts.leaseRenew, keys: [key],
            arguments: [RedisArgument(lease.member), RedisArgument(Self.milliseconds(lease.ttl))])
        return reply.array?.first?.integer == 1
    }

    /// Gives a slot back. Fenced: releasing a lease that expired (or was released) frees nothing,
    /// even when its slot now serves someone else. Returns whether the lease was still held.
    @discardableResult
    public func release(_ lease: Lease) async throws -> Bool {
        let reply = try await redis.run(releaseStep(lease))
        return reply.integer == 1
    }

    /// How many leases are held right now (expired ones not counted).
    public func held() async throws -> Int {
        // An acquire for zero slots prunes expired leases and only counts.
        let reply = try await redis.run(
            LuaScripts.leaseAcquire, keys: [key], arguments: [0, 1, RedisArgument(holder)])
        return Int(reply.array?[2].integer ?? 0)
    }

    /// Runs `body` holding a lease, renewed every third of its ttl while the body runs, and
    /// released afterwards (also when the body throws).
    public func withLease<Result: Sendable>(
        waitingUntil deadline: ContinuousClock.Instant, _ body: @Sendable (Lease) async throws -> Result
    ) async throws -> Result {
        let lease = try await acquire(waitingUntil: deadline)
        let heartbeat = Task { await self.keepAlive(lease) }
        defer { heartbeat.cancel() }
        // The release is shielded: a body that stopped because its task was cancelled still gives its slot back
        // (a Redis command from a cancelled task is never sent).
        do {
            let result = try await body(lease)
            heartbeat.cancel()
            _ = try? await withCancellationShield { try await release(lease) }
            return result
        } catch {
            heartbeat.cancel()
            _ = try? await withCancellationShield { try await release(lease) }
            throw error
        }
    }

    /// Renews `lease` every third of its ttl until the task is cancelled or the lease is lost.
    public func keepAlive(_ lease: Lease) async {
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: lease.ttl / 3)
                if try await !renew(lease) {
                    // Its ttl passed without a renewal (a long Redis outage, a paused process): another caller may
                    // hold the slot now, so the pool may briefly run one call over its slots.
                    logger.warning(
                        "a concurrency lease was lost before its call ended",
                        metadata: ["sluice.partition": "\(partition)", "sluice.slots": "\(slots)"])
                    logger.debug("lost lease", metadata: ["sluice.scope": "\(scope)", "sluice.holder": "\(holder)"])
                    return
                }
            } catch is CancellationError {
                return
            } catch {
                continue  // a Redis hiccup: try again at the next beat, the lease may still be alive
            }
        }
    }

    static func milliseconds(_ duration: Duration) -> Int {
        max(1, Int(duration / .milliseconds(1)))
    }
}
