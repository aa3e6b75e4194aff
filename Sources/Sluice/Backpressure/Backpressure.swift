import CoreMetrics
import Logging
import ServiceLifecycle
import SluiceRedis
import Tracing

/// The stop buttons around every provider call, in one place: the fleet-wide queue (shedding when
/// overloaded), the request tree's limits, the quota (scheduled admission), concurrency leases,
/// the dependency's circuit breaker, the retry budget with backoff, the deadline — and a failure
/// policy for when Redis itself is unreachable.
///
/// ```swift
/// let backpressure = Backpressure(redis: redis, configuration: .init(partition: "openai"), limiter: limiter)
/// let primary = ProviderCall(scope: "openai/gpt-4o", estimate: ["tokens": 5_000], concurrency: 32, label: "gpt-4o")
/// let result = try await backpressure.call(
///     primary,
///     degrade: { _, call in call.label == "gpt-4o" ? ProviderCall(scope: "openai/gpt-4o-mini", label: "gpt-4o-mini") : nil }
/// ) { attempt in
///     let response = try await provider.complete(model: attempt.call.label, prompt: prompt)
///     return CallOutcome(response, usage: ["tokens": Int64(response.totalTokens)])
/// }
/// ```
///
/// See <doc:Backpressure> for each stage, the keys and the events.
public final class Backpressure: Sendable {
    /// How the calls of this limiter are guarded.
    public struct Configuration: Sendable {
        /// The partition (hash tag) of the queue, lease, breaker, retry-budget and worker keys. Make it the quota
        /// paths' ``ScopePath/partition`` (their root scope's name): a call whose path is in another partition cannot
        /// be decided in one round trip with its queue, lease and breaker, and takes one trip per stage instead.
        public var partition: String
        /// What to do when Redis is unreachable.
        public var failurePolicy: FailurePolicy
        /// Queue depth and growth alert per scope.
        public var queue: AdmissionQueue.Configuration
        /// The breakers' thresholds.
        public var breaker: CircuitBreaker.Configuration
        /// The retry budget per scope.
        public var retryBudget: RetryBudget.Configuration
        /// Backoff between attempts.
        public var backoff: RetryBackoff
        /// How long a lease lasts without its heartbeat.
        public var leaseTTL: Duration
        /// The longest a call may count as in flight (a crashed worker's calls stop counting then).
        public var maxCallDuration: Duration
        /// The deadline of a call that names none and runs outside a tree with a deadline.
        public var defaultTimeout: Duration
        /// The breaker around Redis.
        public var health: RedisHealth.Configuration
        /// The worker registry's heartbeat interval (`nil`: do not register).
        public var heartbeat: Duration?
        /// Shown to operators beside this worker's leases.
        public var holder: String
        /// The first part of every key (`<namespace>:{<partition>}:...`); `nil`: the limiter's
        /// ``Limiter/Configuration/namespace``, or `sluice` without a limiter.
        public var namespace: String?

        /// A configuration with defaults a user would expect.
        public init(
            partition: String, failurePolicy: FailurePolicy = .failClosed,
            queue: AdmissionQueue.Configuration = .init(), breaker: CircuitBreaker.Configuration = .init(),
            retryBudget: RetryBudget.Configuration = .init(), backoff: RetryBackoff = .init(),
            leaseTTL: Duration = .seconds(30), maxCallDuration: Duration = .seconds(600),
            defaultTimeout: Duration = .seconds(120), health: RedisHealth.Configuration = .init(),
            heartbeat: Duration? = .seconds(5), holder: String = "worker", namespace: String? = nil
        ) {
            self.partition = partition
            self.failurePolicy = failurePolicy
            self.queue = queue
            self.breaker = breaker
            self.retryBudget = retryBudget
            self.backoff = backoff
            self.leaseTTL = leaseTTL
            self.maxCallDuration = maxCallDuration
            self.defaultTimeout = defaultTimeout
            self.health = health
            self.heartbeat = heartbeat
            self.holder = holder
            self.namespace = namespace
        }
    }

    /// The configuration.
    public let configuration: Configuration
    /// The first part of every key this layer writes: ``Configuration/namespace``, else the limiter's.
    public let namespace: String
    /// The breaker around Redis, with the time spent degraded.
    public let health: RedisHealth
    /// This worker's registration (when ``Configuration/heartbeat`` is set).
    package let membership: FleetMembership?
    /// The Redis client.
    public let redis: RedisClient
    /// The quota limiter that reserves ``ProviderCall/quotaPath``.
    public let limiter: Limiter?
    /// Merges every attempt's ``CallOutcome/observation`` or ``ProviderFailure/observation`` into the ceiling of
    /// the call's quota path, and scales the call's concurrency slots by the partition's concurrency share.
    public let reconciler: Reconciler?
    /// The background logger: Redis outages and recoveries (with the partition and the failure policy), invalid
    /// operator config, lost leases. Calls log to the logger they are given, else to this one.
    public let logger: Logger
    let metrics: BackpressureMetrics
    /// The tracer given to `init` (`nil`: the bootstrapped one).
    let tracer: (any Tracer)?
    /// Request trees on this layer's client and namespace, placed by its limiter: a tree opened for a tenant of a
    /// sharded global ceiling lives on that tenant's shard (<doc:ShardedCeiling>).
    public let trees: RequestTrees
    let fallback: LocalFallbackBucket?
    private let ceiling: SluiceMutex<Double>
    private let counters = SluiceMutex(Counters())
    private let reported = SluiceMutex<[String: ContinuousClock.Instant]>([:])

    struct Counters {
        var degradedAdmissions = 0
        var degradedRefusals = 0
    }

    /// A backpressure layer on `redis`; pass the quota `limiter` to reserve quota paths, and a `reconciler` to
    /// follow the provider's real ceiling from the responses the calls return.
    ///
    /// - Parameter logger: the background logger (postgres-nio's style: each ``call(_:degrade:logger:_:)`` may pass
    ///   its own). Its lines carry `sluice.partition` and `sluice.failure_policy`; none at `info` or above names a
    ///   tenant, a tree or a password. By default nothing is logged.
    /// - Parameter metricsFactory: where this layer's metrics go (see <doc:Backpressure>, *Logging, metrics and lifecycle*), made once here;
    ///   `nil`: the application's bootstrapped `MetricsSystem.factory`. Tests pass a factory of their own so that
    ///   they need not touch the process-wide bootstrap.
    /// - Parameter tracer: where each call's span goes (`sluice.call`, with a child span per stage); `nil`: the
    ///   bootstrapped `InstrumentationSystem.tracer`, read at each call.
    public init(
        redis: RedisClient, configuration: Configuration, limiter: Limiter? = nil, reconciler: Reconciler? = nil,
        logger: Logger = .sluiceDisabled, metricsFactory: (any MetricsFactory)? = nil, tracer: (any Tracer)? = nil
    ) {
        self.tracer = tracer
        self.redis = redis
        self.configuration = configuration
        self.limiter = limiter
        self.reconciler = reconciler
        let namespace = configuration.namespace ?? limiter?.configuration.namespace ?? "sluice"
        self.namespace = namespace
        var logger = logger
        logger[metadataKey: "sluice.partition"] = "\(configuration.partition)"
        logger[metadataKey: "sluice.failure_policy"] = "\(configuration.failurePolicy)"
        self.logger = logger
        let metrics = BackpressureMetrics(
            factory: metricsFactory ?? MetricsSystem.factory, partition: configuration.partition,
            policy: configuration.failurePolicy)
        self.metrics = metrics
        self.health = RedisHealth(
            configuration: configuration.health, logger: logger, now: { .now },
            onTransition: { metrics.redisHealth($0) })
        self.trees = RequestTrees(redis: redis, namespace: namespace, logger: logger, limiter: limiter)
        if let interval = configuration.heartbeat {
            // Not started here (no I/O in an init): by run() in a ServiceGroup, or by start().
            self.membership = FleetMembership(
                redis: redis, partition: configuration.partition, interval: interval, namespace: namespace,
                logger: logger)
        } else {
            self.membership = nil
        }
        if case .fallback(let rate, let burst) = configuration.failurePolicy.kind {
            self.ceiling = SluiceMutex(rate)
            self.fallback = LocalFallbackBucket(rate: rate, burst: burst)
            metrics.ceiling(share: rate)
        } else {
            self.ceiling = SluiceMutex(0)
            self.fallback = nil
        }
    }

    /// Tells the local fallback the fleet's current ceiling (calls per second), e.g. from the
    /// reconciler; the local bucket's rate is this worker's share of it.
    public func updateCeiling(_ perSecond: Double) {
        ceiling.withLock { $0 = max(0, perSecond) }
        refreshFallbackShare()
    }

    /// The local fallback bucket's rate: the ceiling divided by the live workers last seen.
    package var fallbackShare: Double? {
        fallback?.rate
    }

    /// Calls admitted and refused by the local failure policy (while Redis was unreachable).
    package var degradedDecisions: (admitted: Int, refused: Int) {
        counters.withLock { ($0.degradedAdmissions, $0.degradedRefusals) }
    }

    /// Without a `ServiceGroup`: starts the background work (the worker registry's heartbeat, when
    /// ``Configuration/heartbeat`` is set); ``shutdown()`` stops it. With one, add the layer to the group instead
    /// (``run()``). Calls work either way; without the heartbeat, the local fallback's share counts this worker only.
    public func start() {
        membership?.start()
    }

    /// Stops what ``start()`` started and leaves the worker registry.
    public func shutdown() async {
        await membership?.stop()
    }

    /// Whether these config warnings were not reported from this process in the last minute
    /// (each invalid value is one event a minute per worker, not one per decision).
    func shouldReport(_ warnings: [QuotaWarning]) -> Bool {
        let key = warnings.map(\.description).joined(separator: "\n")
        let now = ContinuousClock.now
        return reported.withLock { reported in
            if let last = reported[key], now - last < .seconds(60) { return false }
            if reported.count > 1_000 { reported.removeAll() }
            reported[key] = now
            return true
        }
    }

    func refreshFallbackShare() {
        guard let fallback else { return }
        let workers = max(1, membership?.liveWorkers ?? 1)
        let share = ceiling.withLock { $0 } / Double(workers)
        fallback.update(rate: share)
        metrics.ceiling(share: share)
    }

    /// Applies the failure policy to a call whose Redis step failed: returns normally when the
    /// call may go on without Redis, throws when it may not.
    func applyFailurePolicy(
        _ error: BackpressureError, deadline: ContinuousClock.Instant, logger: Logger
    ) async throws {
        switch configuration.failurePolicy.kind {
        case .closed:
            counters.withLock { $0.degradedRefusals += 1 }
            metrics.failurePolicy(admitted: false)
            logger.debug("Redis unavailable: the call is refused (fail closed)")
            throw error
        case .open:
            counters.withLock { $0.degradedAdmissions += 1 }
            metrics.failurePolicy(admitted: true)
            logger.debug("Redis unavailable: the call goes on unchecked (fail open)")
        case .fallback:
            refreshFallbackShare()
            if await fallback?.take(waitingUntil: deadline) == true {
                counters.withLock { $0.degradedAdmissions += 1 }
                metrics.failurePolicy(admitted: true)
                logger.debug(
                    "Redis unavailable: the call is admitted by this worker's local fallback bucket",
                    metadata: ["sluice.fallback_rate": "\(fallback?.rate ?? 0)"])
            } else {
                counters.withLock { $0.degradedRefusals += 1 }
                metrics.failurePolicy(admitted: false)
                logger.debug("Redis unavailable: the local fallback bucket is empty, the call is refused")
                throw BackpressureError(
                    .redisUnavailable, "Redis is unavailable and this worker's local fallback bucket is empty")
            }
        }
    }
}

extension Backpressure: Service {
    /// Runs the layer's background work as a `Service`: registers this worker and beats its heartbeat (when
    /// ``Configuration/heartbeat`` is set) until the group's graceful shutdown or cancellation, then leaves the
    /// registry. Nothing happens in `init`; without a `ServiceGroup`, use ``start()`` and ``shutdown()``.
    ///
    /// ```swift
    /// let redis = try RedisClient(configuration: configuration, backgroundLogger: logger)
    /// let backpressure = Backpressure(redis: redis, configuration: .init(partition: "openai"), logger: logger)
    /// // The client first: a group stops its services in reverse order, so the layer still reaches Redis as it stops.
    /// let group = ServiceGroup(services: [redis, backpressure, app], gracefulShutdownSignals: [.sigterm], logger: logger)
    /// try await group.run()
    /// ```
    public func run() async {
        if let membership {
            await membership.run()
        } else {
            try? await gracefulShutdown()
        }
    }
}
