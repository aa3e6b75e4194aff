/// The key layout of one partition. Every key of a decision carries the partition's hash tag, so
/// all of them live in one Redis Cluster slot and the scripts run on a cluster unchanged:
///
///     sluice:{<partition>}:quotas                config hash, edited by operators (no expiry)
///     sluice:{<partition>}:stats                 shadow would-deny counters (expires after a day idle)
///     sluice:{<partition>}:s:<kind=name>/...     one scope's state (expires when it is idle enough)
///     sluice:{<partition>}:r:<id>                one reservation (expires with it)
///     sluice:{<partition>}:events                the event stream (capped; expires a week after its last entry)
///
/// The partition is, by default, the root scope's escaped name; names are escaped with ``KeyName``.
struct QuotaKeys: Sendable, Hashable {
    let namespace: String
    let prefix: String

    init(namespace: String = "sluice", partition: String) {
        self.namespace = namespace
        self.prefix = "\(namespace):{\(KeyName.escape(partition))}:"
    }

    /// The keys under a hash tag that is already escaped: a shard of a sharded global ceiling,
    /// `<escaped root>~s<k>` (an escaped name never holds `~` but as a cut's `~<24 hex digits>`,
    /// so a shard's tag can equal no other partition's).
    init(namespace: String, escapedTag: String) {
        self.namespace = namespace
        self.prefix = "\(namespace):{\(escapedTag)}:"
    }

    var quotas: String { prefix + "quotas" }
    var stats: String { prefix + "stats" }
    var events: String { prefix + "events" }
    func reservation(_ id: String) -> String { prefix + "r:" + KeyName.escape(id) }

    /// The state key of each prefix of `path`: the root's, the root's child's, ...
    func states(_ path: ScopePath) -> [String] {
        var keys: [String] = []
        var current = prefix + "s:"
        for (index, scope) in path.scopes.enumerated() {
            current += (index == 0 ? "" : "/") + scope.escaped
            keys.append(current)
        }
        return keys
    }
}
