import SluiceRedis

/// The keys of one partition for the backpressure features: `<namespace>:{<partition>}:<feature>:<name>`
/// (the namespace is `sluice` unless configured otherwise, as for the quota keys).
///
/// Every key shares the partition's hash tag, so each script runs unchanged on Redis Cluster.
/// Names are escaped (see ``escape(_:)``) so that no name can break out of its key.
/// The quota layer owns the layout (``QuotaKeys``: `quotas`, `stats`, `s:...`, `r:...`); the
/// backpressure features add `tree:`, `lease:`, `queue:`, `inflight:`, `breaker:`, `retry:`,
/// `workers` and `events` under the same prefix, escaped with the same ``KeyName``.
struct PartitionKeys: Sendable, Hashable {
    /// The partition, as given (unescaped).
    let partition: String
    /// `<namespace>:{<escaped partition>}:`
    let prefix: String

    init(partition: String, namespace: String = "sluice") {
        self.partition = partition
        self.prefix = "\(namespace):{\(KeyName.escape(partition))}:"
    }

    /// The keys of shard `shard` of a sharded global ceiling whose root is `partition` (its hash tag
    /// `<escaped partition>~s<shard>`, ``ShardLayout/tag(_:)``); the partition's own keys when `shard` is nil.
    init(partition: String, shard: Int?, namespace: String) {
        self.partition = partition
        let tag = KeyName.escape(partition) + (shard.map { "~s\($0)" } ?? "")
        self.prefix = "\(namespace):{\(tag)}:"
    }

    /// `sluice:{P}:<feature>:<escaped name>`
    func key(_ feature: String, _ name: String) -> RedisArgument {
        RedisArgument(prefix + feature + ":" + Self.escape(name))
    }

    /// `sluice:{P}:<feature>:<escaped name>:<suffix>`
    func key(_ feature: String, _ name: String, _ suffix: String) -> RedisArgument {
        RedisArgument(prefix + feature + ":" + Self.escape(name) + ":" + suffix)
    }

    /// The partition's capped event stream, `sluice:{P}:events`.
    var events: RedisArgument { RedisArgument(prefix + "events") }

    /// The partition's worker registry, `sluice:{P}:workers`.
    var workers: RedisArgument { RedisArgument(prefix + "workers") }

    /// The tenants' weights in the batch line that operators set, `sluice:{P}:weights` (tenant name -> weight; no
    /// expiry: configuration, like the quota hash).
    var weights: RedisArgument { RedisArgument(prefix + "weights") }

    /// Escapes a user-supplied name for use inside a key, exactly as the quota keys do (``KeyName``).
    static func escape(_ name: String) -> String {
        KeyName.escape(name)
    }
}
