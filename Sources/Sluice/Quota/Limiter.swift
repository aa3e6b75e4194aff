import Logging
import SluiceRedis

/// The fleet's limiter: every decision is one atomic script in Redis over the whole path.
///
/// ```swift
/// let limiter = try Limiter(url: "redis://127.0.0.1:6379", configuration: .init(defaults: [
///     "global": "tokens: bucket rate=90000/min burst=90000",
///     "tenant": "tokens: bucket rate=20000/min; requests: window 600/min",
///     "tree": "tokens: budget 200000",
/// ]))
/// let path = try ScopePath("global=openai", "tenant=acme", "tree=req-7f3")
/// let decision = try await limiter.decide(path, cost: ["requests": 1, "tokens": 1200])
/// ```
///
/// Defaults apply per scope kind; operators override them in Redis (<doc:QuotaConfiguration>),
/// and the next decision anywhere in the fleet uses the new values.
public final class Limiter: Sendable {
    public struct Configuration: Sendable {
        /// Per scope kind, the limits that apply when the config hash says nothing more specific:
        /// a spec such as `tokens: bucket rate=90000/min burst=90000; requests: window 600/min`.
        public var defaults: [String: String]
        /// The first part of every key (`sluice:{openai}:...`).
        public var namespace: String

        public init(defaults: [String: String] = [:], namespace: String = "sluice") {
            self.defaults = defaults
            self.namespace = namespace
        }

        /// Checks the defaults: a typed error when a kind is not an identifier or a spec does not
        /// parse. ``Limiter/init(client:configuration:)`` calls it.
        public func validate() throws(QuotaError) {
            _ = try canonicalDefaults()
        }

        func canonicalDefaults() throws(QuotaError) -> [String: String] {
            var canonical: [String: String] = [:]
            for (kind, text) in defaults {
                guard Identifier.isValid(kind) else {
                    throw QuotaError(.invalidScope, "defaults are keyed by scope kind, an identifier")
                }
                do {
                    canonical[kind] = try QuotaSpec(parsing: text).description
                } catch {
                    throw QuotaError(error.code, "the default for \(kind): \(error.message)")
                }
            }
            return canonical
        }
    }

    public let client: RedisClient
    public let configuration: Configuration
    /// The defaults, parsed and in canonical text.
    let defaults: [String: String]
    let encodedPaths = EncodedPaths()
    /// Which partitions are sharded global ceilings (`quota set ... --shards N`), cached.
    let shardDirectory = ShardDirectory()
    private let ownsClient: Bool
    /// Where invalid operator config that decisions skipped is logged: `warning` with its code and scope level, at
    /// most once a minute for the same finding (the config field, which may name a tenant, only at `debug`).
    public let logger: Logger
    let warningThrottle = WarningThrottle()

    /// Checks the defaults (a typed error before any I/O when one does not parse).
    public init(
        client: RedisClient, configuration: Configuration = Configuration(), logger: Logger = .sluiceDisabled
    ) throws(QuotaError) {
        self.client = client
        self.configuration = configuration
        self.defaults = try configuration.canonicalDefaults()
        self.ownsClient = false
        self.logger = logger
    }

    /// Logs the invalid config a decision skipped (throttled).
    func log(_ warnings: [QuotaWarning]) {
        guard !warnings.isEmpty, warningThrottle.shouldReport(warnings) else { return }
        for warning in warnings {
            logger.warning(
                "a quota config field does not parse; the next less specific one applies",
                metadata: ["sluice.warning": "\(warning.code)", "sluice.scope_level": "\(warning.scopeIndex)"])
            logger.debug(
                "invalid quota config",
                metadata: ["sluice.field": "\(warning.field)", "sluice.reason": "\(warning.reason)"])
        }
    }

    /// Connects to `url` (`redis://host:port/db`, `unix:///path`); ``close()`` closes the client, which logs its
    /// connections' losses and reconnects to `logger` as well.
    public init(url: String, configuration: Configuration = Configuration(), logger: Logger = .sluiceDisabled)
        throws(QuotaError)
    {
        let client: RedisClient
        do {
            client = try RedisClient(configuration: RedisConfiguration(url: url), backgroundLogger: logger)
        } catch {
            throw QuotaError.redis(error)
        }
        let checked = try Limiter(client: client, configuration: configuration)
        self.client = client
        self.configuration = configuration
        self.defaults = checked.defaults
        self.ownsClient = true
        self.logger = logger
    }

    /// Closes the client if this limiter opened it.
    public func close() {
        if ownsClient { client.close() }
    }

    /// The keys of `path`: its partition's, or on a sharded global ceiling its tenant's shard's.
    func keys(for path: ScopePath) -> QuotaKeys {
        keys(for: path, layout: shardDirectory.cached(path.partition))
    }

    /// The keys of `path` under `layout` (nil: the partition is not split).
    func keys(for path: ScopePath, layout: ShardLayout?) -> QuotaKeys {
        guard let layout else { return QuotaKeys(namespace: configuration.namespace, partition: path.partition) }
        return layout.keys(layout.index(for: path), namespace: configuration.namespace)
    }

    /// Whether `path`'s quota keys and the backpressure keys of `partition` (a tree's, a lease pool's) share one
    /// hash tag, `{<escaped partition>}`: one Redis Cluster slot, so that one script may touch both.
    /// Never on a sharded global ceiling: the path's keys are its shard's.
    func sharesPartition(with partition: String, path: ScopePath) -> Bool {
        shardDirectory.cached(path.partition) == nil
            && KeyName.escape(path.partition) == KeyName.escape(partition)
    }

    /// Whether `path`'s quota keys and the keys of `tree` share one hash tag: the tree's partition is the path's,
    /// and on a sharded global ceiling the tree lives on the shard of the path's tenant.
    func sharesSlot(with tree: TreeContext, path: ScopePath) -> Bool {
        keys(for: path).prefix == tree.partitionKeys(namespace: configuration.namespace).prefix
    }
}

/// Whether a set of findings was not reported from this process in the last minute: each invalid value is one
/// report a minute per worker, not one per decision.
final class WarningThrottle: Sendable {
    private let reported = SluiceMutex<[String: ContinuousClock.Instant]>([:])

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
}
