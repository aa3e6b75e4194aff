import Logging
import SluiceRedis

/// Follows the provider's real ceiling: every worker hands it each provider response, and it merges them into the
/// partition's shared state in Redis, which every later decision on the partition honours.
///
/// ```swift
/// let reconciler = try Reconciler(limiter: limiter)
/// let admission = try await limiter.schedule(path, cost: estimate, maxWait: .seconds(5))
/// try await admission.proceed()
/// let response = try await provider.send(request)
/// let observation = ProviderObservation(response)  // a swift-http-types HTTPResponse; see ProviderObservation's initialisers
/// try await reconciler.record(
///     observation, path: path, sentAt: admission.decision.sendsAt, admittedAt: admission.decision.decidedAt)
/// ```
///
/// One atomic script (`lua/reconcile.lua`) merges each observation into the root scope of the path:
/// - the remaining capacity a response reports only ever lowers the root's buckets, projected from the time the
///   request was sent (in Redis' clock, from the admission), so late, duplicated or reordered reports from many
///   workers cannot credit the fleet with capacity it does not have;
/// - a 429 pauses every admission on the partition until its retry-after (one pause however many workers report
///   it) and cuts the ceiling by ``Configuration/cutFactor`` once per congestion event: a 429 to a request sent
///   before the last cut describes the old ceiling and does not cut again;
/// - after a cut the ceiling climbs back linearly over ``Configuration/recovery``, never above the provider's
///   stated limit times ``Configuration/safetyFactor`` (nor above the configured buckets: the reconciler only
///   ever lowers what operators set);
/// - a changed stated limit is accepted once two observations agree on it;
/// - overload responses (5xx, 529, timeouts) leave the ceiling alone: they are for the circuit breakers
///   (``Backpressure/call(_:degrade:logger:_:)`` records them there) and cut the partition's concurrency share once per
///   overload event, which lease pools following the partition apply (``LeasePool/following(_:path:)``).
///
/// Pauses, cuts and stated-limit changes are written to the partition's event stream (`sluice events`);
/// ``status(_:)`` and `sluice status` show the state.
public final class Reconciler: Sendable {
    public struct Configuration: Sendable {
        /// The period the provider's stated limits count over (OpenAI's and Anthropic's limits are per minute).
        public var window: Duration
        /// The share of the stated limit the fleet aims for, 0.01 to 1.
        public var safetyFactor: Double
        /// What a cut leaves of the ceiling, in (0, 1): 0.7 takes 30% off.
        public var cutFactor: Double
        /// How long the ceiling takes to climb back from one cut to the stated limit times the safety factor.
        public var recovery: Duration
        /// How long a 429 pauses the partition when it names no retry-after and no reset.
        public var defaultPause: Duration
        /// How long the state outlives the last observation that changed it. An observation that changes nothing
        /// writes nothing, unless the expiry would then fall more than a tenth of this (at most a minute) behind.
        public var stateTTL: Duration
        /// Whether an overload response (5xx, 529, a timeout) cuts the partition's concurrency share, which lease
        /// pools that follow the partition (``LeasePool/following(_:path:)``) apply to their slots. The quota
        /// ceiling is never touched by overloads.
        public var adaptsConcurrency: Bool
        /// The quota resource each provider resource maps to, when the names differ (by default `requests`,
        /// `tokens`, `input_tokens` and `output_tokens` map to themselves).
        public var resourceNames: [RateLimitResource: String]

        public init(
            window: Duration = .seconds(60), safetyFactor: Double = 0.9, cutFactor: Double = 0.7,
            recovery: Duration = .seconds(120), defaultPause: Duration = .seconds(1),
            stateTTL: Duration = .seconds(86_400), adaptsConcurrency: Bool = true,
            resourceNames: [RateLimitResource: String] = [:]
        ) {
            self.window = window
            self.safetyFactor = safetyFactor
            self.cutFactor = cutFactor
            self.recovery = recovery
            self.defaultPause = defaultPause
            self.stateTTL = stateTTL
            self.adaptsConcurrency = adaptsConcurrency
            self.resourceNames = resourceNames
        }

        /// A typed error for a value out of range; ``Reconciler/init(limiter:configuration:)`` calls it.
        public func validate() throws(QuotaError) {
            func fail(_ message: String) -> QuotaError { QuotaError(.invalidReconcilerSetting, message) }
            guard window >= .milliseconds(1), window <= .seconds(31 * 86_400) else {
                throw fail("the window is between 1 ms and 31 days")
            }
            guard safetyFactor >= 0.01, safetyFactor <= 1 else { throw fail("the safety factor is between 0.01 and 1") }
            guard cutFactor >= 0.01, cutFactor <= 0.99 else { throw fail("the cut factor is between 0.01 and 0.99") }
            guard recovery >= .milliseconds(1), recovery <= .seconds(31 * 86_400) else {
                throw fail("recovery is between 1 ms and 31 days")
            }
            guard defaultPause >= .zero, defaultPause <= .seconds(86_400) else {
                throw fail("the default pause is between 0 and a day")
            }
            guard stateTTL >= .seconds(1), stateTTL <= .seconds(31 * 86_400) else {
                throw fail("the state ttl is between 1 s and 31 days")
            }
            for name in resourceNames.values {
                guard Identifier.isValid(name) else {
                    throw fail("a resource name is an identifier of 1 to 32 characters")
                }
            }
        }
    }

    /// What one merge did.
    public struct Outcome: Sendable, Hashable {
        /// Until when the partition is paused, in Redis' clock (ms since 1970), or nil when it is not.
        public var pausedUntil: Int64?
        /// Whether this observation cut the ceiling (the first 429 of a congestion event) or, for an overload, the
        /// concurrency share.
        public var cut: Bool
        /// Whether this observation started the pause (the first report of a 429).
        public var startedPause: Bool
        /// Redis' time when it merged.
        public var mergedAt: Int64
    }

    public let limiter: Limiter
    public let configuration: Configuration
    /// Where pauses and cuts are logged (`notice`, with the partition; the full scope path only at `debug`).
    public let logger: Logger

    public init(
        limiter: Limiter, configuration: Configuration = Configuration(), logger: Logger = .sluiceDisabled
    ) throws(QuotaError) {
        try configuration.validate()
        self.limiter = limiter
        self.configuration = configuration
        self.logger = logger
    }

    /// Logs what one merged observation did: the pause it started and the cut it made.
    func log(_ outcome: Outcome, path: ScopePath, responseClass: ResponseClass) {
        guard outcome.startedPause || outcome.cut else { return }
        let partition = path.partition
        var metadata: Logger.Metadata = [
            "sluice.partition": "\(partition)", "sluice.response_class": "\(responseClass.name)",
        ]
        if outcome.startedPause {
            metadata["sluice.paused_until_ms"] = "\(outcome.pausedUntil ?? 0)"
            logger.notice("the provider rate-limited the partition: admissions paused", metadata: metadata)
        }
        if outcome.cut {
            metadata["sluice.cut_factor"] = "\(configuration.cutFactor)"
            logger.notice("the partition's ceiling was cut after a congestion signal", metadata: metadata)
        }
        logger.debug("reconciled", metadata: ["sluice.scope_path": "\(path)"])
    }

    /// Merges one provider response into the ceiling of `path`'s partition (its root scope).
    ///
    /// - Parameters:
    ///   - sentAt: when the request was sent, in Redis' clock: ``Decision/sendsAt`` of its admission (plus the time
    ///     spent since, for a retry). The remaining capacity a response reports is projected from it. Nil means now.
    ///   - admittedAt: when its admission was decided (``Decision/decidedAt``); default `sentAt`. A 429 cuts the
    ///     ceiling and pauses the partition only if its request was admitted after the last cut, so a request
    ///     admitted under the old ceiling, even if it waited to be sent, does not count a second time. Pass it
    ///     whenever known: without either, every 429 counts as a new congestion event.
    @discardableResult
    public func record(
        _ observation: ProviderObservation, path: ScopePath, sentAt: Int64? = nil, admittedAt: Int64? = nil
    ) async throws(QuotaError) -> Outcome {
        if let layout = try await limiter.shardLayout(path) {
            return try await recordSharded(
                observation, path: path, layout: layout, sentAt: sentAt, admittedAt: admittedAt)
        }
        let reply: RedisValue
        do {
            reply = try await limiter.client.run(
                recordStep(observation, path: path, sentAt: sentAt, admittedAt: admittedAt))
        } catch {
            throw QuotaError.redis(error)
        }
        let outcome = try Self.parseRecord(reply)
        log(outcome, path: path, responseClass: observation.responseClass)
        return outcome
    }

    /// reconcile.lua's step for one observation (see ``record(_:path:sentAt:admittedAt:)``).
    func recordStep(
        _ observation: ProviderObservation, path: ScopePath, sentAt: Int64?, admittedAt: Int64?,
        keys shardKeys: QuotaKeys? = nil
    ) -> ScriptStep {
        let keys = shardKeys ?? limiter.keys(for: path)
        var arguments: [RedisArgument] = [
            RedisArgument(path.root.description), RedisArgument(observation.responseClass.name),
            RedisArgument(max(0, sentAt ?? 0)),
            RedisArgument(observation.retryAfter.map { min($0.milliseconds, 86_400_000 * 366) } ?? -1),
            RedisArgument(configuration.window.milliseconds), RedisArgument(String(configuration.safetyFactor)),
            RedisArgument(String(configuration.cutFactor)), RedisArgument(configuration.recovery.milliseconds),
            RedisArgument(configuration.stateTTL.milliseconds), RedisArgument(configuration.defaultPause.milliseconds),
            configuration.adaptsConcurrency ? "1" : "0", RedisArgument(max(0, admittedAt ?? 0)),
        ]
        for resource in observation.resources.keys.sorted().prefix(64) {  // reconcile.lua takes at most 64
            let values = observation.resources[resource] ?? ResourceObservation()
            arguments += [
                RedisArgument(configuration.resourceNames[resource] ?? resource.name),
                // In the script's ranges (it refuses the whole response otherwise): counts up to 2^50,
                // resets up to 10^12 ms; a negative value is no value.
                RedisArgument(values.limit.map { $0 < 0 ? -1 : min($0, 1 << 50) } ?? -1),
                RedisArgument(values.remaining.map { min(max(0, $0), 1 << 50) } ?? -1),
                RedisArgument(values.resetAfter.map { min(max(0, $0.milliseconds), 1_000_000_000_000) } ?? -1),
            ]
        }
        return ScriptStep(
            script: LuaScripts.reconcile, keys: [RedisArgument(keys.states(path)[0]), RedisArgument(keys.events)],
            arguments: arguments)
    }

    /// On a sharded global ceiling, one observation reaches every shard: a pause pauses each, a cut cuts each (it
    /// scales the share a shard holds), and a stated limit or a remaining count is divided among the shards in
    /// proportion to the share each holds now (evenly for a resource the shards do not split).
    func recordSharded(
        _ observation: ProviderObservation, path: ScopePath, layout: ShardLayout, sentAt: Int64?, admittedAt: Int64?
    ) async throws(QuotaError) -> Outcome {
        let store = QuotaStore(client: limiter.client, namespace: limiter.configuration.namespace)
        let shares = try await store.shards(of: path.root)
        var totals: [String: Int64] = [:]
        for shard in shares { for (resource, held) in shard.shares { totals[resource, default: 0] += held.share } }
        var merged = Outcome(pausedUntil: nil, cut: false, startedPause: false, mergedAt: 0)
        for index in 0..<layout.count {
            var part = observation
            let held = shares.first { $0.index == index }?.shares ?? [:]
            for (resource, values) in observation.resources {
                let name = configuration.resourceNames[resource] ?? resource.name
                let fraction: Double
                if let share = held[name]?.share, let total = totals[name], total > 0 {
                    fraction = Double(share) / Double(total)
                } else {
                    fraction = 1 / Double(layout.count)
                }
                var scaled = values
                scaled.limit = values.limit.map { $0 < 0 ? $0 : Int((Double($0) * fraction).rounded(.down)) }
                scaled.remaining = values.remaining.map { $0 < 0 ? $0 : Int((Double($0) * fraction).rounded(.down)) }
                part.resources[resource] = scaled
            }
            let step = recordStep(
                part, path: path, sentAt: sentAt, admittedAt: admittedAt,
                keys: layout.keys(index, namespace: limiter.configuration.namespace))
            let reply: RedisValue
            do {
                reply = try await limiter.client.run(step)
            } catch {
                throw QuotaError.redis(error)
            }
            let outcome = try Self.parseRecord(reply)
            if let until = outcome.pausedUntil { merged.pausedUntil = max(merged.pausedUntil ?? 0, until) }
            merged.cut = merged.cut || outcome.cut
            merged.startedPause = merged.startedPause || outcome.startedPause
            merged.mergedAt = max(merged.mergedAt, outcome.mergedAt)
        }
        return merged
    }

    /// reconcile.lua's reply.
    static func parseRecord(_ reply: RedisValue) throws(QuotaError) -> Outcome {
        guard let items = reply.array, items.count == 4, let until = items[0].integer, let cut = items[1].integer,
            let started = items[2].integer, let now = items[3].integer
        else { throw QuotaError(.unexpectedReply, "reconcile replied unexpectedly") }
        return Outcome(pausedUntil: until > 0 ? until : nil, cut: cut == 1, startedPause: started == 1, mergedAt: now)
    }

    /// The reconciler's state for `path`'s partition (its root scope).
    public func status(_ path: ScopePath) async throws(QuotaError) -> ReconcilerStatus {
        let key = limiter.keys(for: path).states(path)[0]
        let reply: RedisValue
        do {
            reply = try await limiter.client.run(LuaScripts.reconcileStatus, keys: [RedisArgument(key)])
        } catch {
            throw QuotaError.redis(error)
        }
        guard let status = ReconcilerStatus(reply: reply, root: path.root) else {
            throw QuotaError(.unexpectedReply, "reconcile-status replied unexpectedly")
        }
        return status
    }
}
