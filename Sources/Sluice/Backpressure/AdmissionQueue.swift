import SluiceRedis

/// The fleet-wide queue of one scope: how many callers are waiting for admission and how many
/// calls are in flight, kept in Redis. Beyond ``Configuration/maxWaiting`` new callers are shed
/// at once (``BackpressureError/Code/overloaded``); when the queue grows by
/// ``Configuration/growthAlert`` within one ``Configuration/window`` (joined minus left), an event
/// fires. Waiters and calls are scored by when they give up or expire, so a crashed worker's
/// entries leave the counts by themselves.
public struct AdmissionQueue: Sendable {
    /// The queue's limits.
    public struct Configuration: Sendable, Hashable {
        /// The most callers waiting at once, fleet-wide; beyond it callers are shed.
        public var maxWaiting: Int
        /// Net growth (joined - left) within one window that raises a `queue-growth` event.
        public var growthAlert: Int
        /// The window for the growth alert and the joined/left/shed counts.
        public var window: Duration
        /// Each tenant's weight in the batch line, by the name of the quota path's second scope (`acme` for
        /// `global=openai tenant=acme`); a tenant not named weighs 1. Callers waiting in line take turns: each tenant's
        /// calls advance its turn by 1/weight, and callers whose turns are far behind the others' go first, so tenants
        /// waiting at once are served about in proportion to their weights, and one tenant's backlog lengthens
        /// another's wait by about four of its turns, not by all of it. Every process of a fleet should use the same
        /// weights. Weights are clamped to 0.001...1000; one that is not a positive number counts as 1. A weight that
        /// operators set in Redis for a tenant (``QuotaStore/setTenantWeight(_:tenant:root:)``, `sluice quota weight`)
        /// takes precedence: it is the same for every process of the fleet.
        public var tenantWeights: [String: Double]

        /// Creates a configuration.
        public init(
            maxWaiting: Int = 1_000, growthAlert: Int = 100, window: Duration = .seconds(10),
            tenantWeights: [String: Double] = [:]
        ) {
            self.maxWaiting = max(0, maxWaiting)
            self.growthAlert = max(0, growthAlert)
            self.window = max(.milliseconds(100), window)
            self.tenantWeights = tenantWeights
        }

        /// The weight of `tenant` in the line, clamped.
        func weight(of tenant: String) -> Double {
            guard let weight = tenantWeights[tenant], weight > 0, !weight.isNaN else { return 1 }
            return min(1000, max(0.001, weight))
        }
    }

    /// The scope whose callers are counted.
    package let scope: String
    /// The partition (hash tag) of its keys.
    package let partition: String
    /// The limits.
    package let configuration: Configuration
    /// The first part of its keys (`<namespace>:{<partition>}:...`), as ``Limiter/Configuration/namespace``.
    package let namespace: String
    private let redis: RedisClient

    /// The queue of `scope`.
    package init(
        redis: RedisClient, partition: String, scope: String, configuration: Configuration = Configuration(),
        namespace: String = "sluice"
    ) {
        self.redis = redis
        self.namespace = namespace
        self.partition = partition
        self.scope = scope
        self.configuration = configuration
    }

    private var keys: (queue: RedisArgument, stats: RedisArgument, inFlight: RedisArgument, events: RedisArgument) {
        let keys = PartitionKeys(partition: partition, namespace: namespace)
        return (keys.key("queue", scope), keys.key("queue", scope, "stats"), keys.key("inflight", scope), keys.events)
    }

    private var windowMilliseconds: Int { max(1, Int(configuration.window / .milliseconds(1))) }

    /// Joins the queue as `callerID`, giving up after `patience`; throws ``BackpressureError/Code/overloaded``
    /// when the queue is full. Returns the number waiting, this caller included.
    @discardableResult
    package func enter(callerID: String, patience: Duration) async throws -> Int {
        let keys = self.keys
        let reply = try await redis.run(
            LuaScripts.queueEnter, keys: [keys.queue, keys.stats, keys.events],
            arguments: [
                RedisArgument(callerID), RedisArgument(max(1, Int(patience / .milliseconds(1)))),
                RedisArgument(configuration.maxWaiting), RedisArgument(configuration.growthAlert),
                RedisArgument(windowMilliseconds), RedisArgument(scope),
            ])
        let parts = reply.array ?? []
        let waiting = Int(parts.count > 1 ? parts[1].integer ?? 0 : 0)
        guard parts.first?.integer == 1 else { throw overloaded(waiting: waiting) }
        return waiting
    }

    /// Leaves the queue: `admitted` callers count as in flight until ``finish(callerID:)`` or `callTTL`. A caller
    /// that held a turn in the batch line of `line` gives it up too.
    package func leave(callerID: String, admitted: Bool, callTTL: Duration, line: Priority? = nil) async throws {
        let keys = self.keys
        let lineKeys = line.map { [lineKey($0, "turns"), lineKey($0, "lapse"), lineKey($0, "tenants")] } ?? []
        _ = try await redis.run(
            LuaScripts.queueLeave, keys: [keys.queue, keys.stats, keys.inFlight] + lineKeys,
            arguments: [
                RedisArgument(callerID), admitted ? "admitted" : "gave-up",
                RedisArgument(max(1, Int(callTTL / .milliseconds(1)))), RedisArgument(windowMilliseconds),
            ])
    }

    /// An admitted call is done: it stops counting as in flight.
    package func finish(callerID: String) async throws {
        _ = try await redis.run(finishStep(callerID: callerID))
    }

    /// call-admit's "queue" step: shed when full, else waiting until a scheduled caller proceeds and in
    /// flight until `callTTL` after that.
    func admitStep(callerID: String, callTTL: Duration, patience: Duration) -> ScriptStep {
        let keys = self.keys
        return ScriptStep(
            script: LuaScripts.queueEnter, keys: [keys.queue, keys.stats, keys.inFlight, keys.events],
            arguments: [
                RedisArgument(callerID), RedisArgument(configuration.maxWaiting),
                RedisArgument(configuration.growthAlert), RedisArgument(windowMilliseconds), RedisArgument(scope),
                RedisArgument(max(1, Int(callTTL / .milliseconds(1)))),
                RedisArgument(max(1, Int(patience / .milliseconds(1)))),
            ], entry: "queue")
    }

    /// call-admit's "line" step (batch calls): a caller the root scope's buckets refuse only for want of debt waits in the
    /// line of its `priority` (`<namespace>:{<partition>}:queue:<scope>:line:<priority>`, with `:tenants`, `:turns`
    /// and `:lapse`) instead, told its place in the reply. Waiting callers take turns by tenant, in proportion to
    /// their weights (`tenant` is the quota path's second scope; callers without one share a turn): the weight
    /// operators set in Redis (``QuotaStore/setTenantWeight(_:tenant:root:)``), else ``Configuration/tenantWeights``.
    func lineStep(priority: Priority, patience: Duration, callerID: String, tenant: Scope?) -> ScriptStep {
        ScriptStep(
            script: LuaScripts.callAdmit,
            keys: [
                lineKey(priority), lineKey(priority, "tenants"), lineKey(priority, "turns"), lineKey(priority, "lapse"),
                PartitionKeys(partition: partition, namespace: namespace).weights,
            ],
            arguments: [
                RedisArgument(max(0, Int(patience / .milliseconds(1)))), RedisArgument(tenant?.escaped ?? "*"),
                RedisArgument(String(tenant.map { configuration.weight(of: $0.name) } ?? 1)), RedisArgument(callerID),
            ],
            entry: "line")
    }

    /// call-finish's step after a settle: the line moves up by what the call gave back to the root's buckets.
    func lineCreditStep(priority: Priority) -> ScriptStep {
        ScriptStep(script: LuaScripts.callAdmit, keys: [lineKey(priority)], arguments: [], entry: "line_credit")
    }

    private func lineKey(_ priority: Priority, _ part: String? = nil) -> RedisArgument {
        PartitionKeys(partition: partition, namespace: namespace).key(
            "queue", scope, "line:\(priority)" + (part.map { ":\($0)" } ?? ""))
    }

    func finishStep(callerID: String) -> ScriptStep {
        let keys = self.keys
        return ScriptStep(
            script: LuaScripts.queueFinish, keys: [keys.queue, keys.inFlight], arguments: [RedisArgument(callerID)])
    }

    func overloaded(waiting: Int) -> BackpressureError {
        BackpressureError(
            .overloaded,
            "\(scope) is overloaded: \(waiting) callers are already waiting (the most is \(configuration.maxWaiting))")
    }

    /// The queue right now.
    package func status() async throws -> QueueStatus {
        let keys = self.keys
        let reply = try await redis.run(
            LuaScripts.queueStatus, keys: [keys.queue, keys.stats, keys.inFlight],
            arguments: [RedisArgument(windowMilliseconds)])
        let numbers = (reply.array ?? []).map { Int($0.integer ?? 0) }
        guard numbers.count == 5 else { throw RedisError(.unexpectedReply, "queue-status replied unexpectedly") }
        return QueueStatus(
            waiting: numbers[0], inFlight: numbers[1], joined: numbers[2], left: numbers[3], shed: numbers[4])
    }
}
