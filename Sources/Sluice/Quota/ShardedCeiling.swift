import SluiceRedis

/// The tenant-to-shard map of a sharded global ceiling (`sluice quota set global=NAME ... --shards N`):
/// the jump consistent hash (Lamping and Veach) of the tenant's name, so that every process maps a
/// tenant to the same shard, and growing from N to N+1 shards moves only a 1/(N+1) share of the tenants.
public enum ShardHash {
    /// The shard of `tenant` among `shards` (0 ..< shards).
    public static func shard(of tenant: String, shards: Int) -> Int {
        jump(fnv1a(tenant), buckets: shards)
    }

    /// Jump consistent hash: a bucket in 0 ..< buckets for a 64-bit key.
    public static func jump(_ key: UInt64, buckets: Int) -> Int {
        guard buckets > 1 else { return 0 }
        var key = key
        var bucket: Int64 = -1
        var next: Int64 = 0
        while next < Int64(buckets) {
            bucket = next
            key = key &* 2_862_933_555_777_941_757 &+ 1
            next = Int64(Double(bucket + 1) * (Double(Int64(1) << 31) / Double((key >> 33) &+ 1)))
        }
        return Int(bucket)
    }

    /// FNV-1a, 64 bits, of the name's UTF-8 bytes: stable across processes and versions.
    static func fnv1a(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return hash
    }
}

/// How a sharded root splits, as `quota set --shards` wrote it in the root's config hash (fields
/// `shards` and `shards-epoch`).
struct ShardLayout: Sendable, Hashable {
    /// The root partition (unescaped).
    let partition: String
    let count: Int
    /// Changes at every split; transfers of another epoch are never credited.
    let epoch: String

    /// `<escaped partition>~s<index>`: the shard's hash tag.
    func tag(_ index: Int) -> String { KeyName.escape(partition) + "~s\(index)" }

    func keys(_ index: Int, namespace: String) -> QuotaKeys { QuotaKeys(namespace: namespace, escapedTag: tag(index)) }

    /// The shard of a path: its tenant's (the scope below the root; the empty name without one).
    func index(for path: ScopePath) -> Int {
        ShardHash.shard(of: path.count > 1 ? path.scopes[1].name : "", shards: count)
    }
}

/// The keys shard-share.lua takes for one shard of `root`.
struct ShardShareKeys {
    let keys: QuotaKeys
    let root: Scope

    var base: [RedisArgument] {
        [RedisArgument(keys.quotas), RedisArgument(keys.prefix + "s:" + root.escaped), RedisArgument(transit)]
    }
    var transit: String { keys.prefix + "transit" }
    func claim(_ id: String) -> String { keys.prefix + "claim:" + KeyName.escape(id) }
}

/// Each process's view of which partitions are sharded, and when each shard was last swept for transfers cut
/// short.
///
/// A sharded layout is re-read every ``refreshInterval`` (a new split, or the root's limits removed). An unsharded
/// one is not polled: a decision sent to a partition that `--shards` has split since is refused by decide.lua
/// with the pseudo-limit ``QuotaLimit/Kind/resharded``, and the process then reads the layout again
/// (``reload(_:namespace:client:)``). Only paths that never decide (a reconciler fed by another process's calls) rely on the
/// ``unshardedRefreshInterval`` backstop.
final class ShardDirectory: Sendable {
    private struct Entry {
        var layout: ShardLayout?
        var fetched: ContinuousClock.Instant
    }
    private struct Read {
        let id: Int
        let task: Task<ShardLayout?, any Error>
    }
    private struct State {
        var entries: [String: Entry] = [:]
        /// The reads under way: callers that find no fresh entry wait for the one read, not each for its own (a
        /// process's first burst of calls would otherwise send one read per call). A read keeps its result only
        /// while it is still the partition's read under way (``reload(_:namespace:client:)`` supersedes it).
        var reading: [String: Read] = [:]
        var reads = 0
    }
    private let state = SluiceMutex(State())
    private let sweeps = SluiceMutex<[String: ContinuousClock.Instant]>([:])

    /// How long a process keeps a sharded root's layout before reading it again (a new split or its end reaches
    /// every process within it).
    static let refreshInterval: Duration = .seconds(2)
    /// How long a process keeps an unsharded partition's layout when no decision told it of a split.
    static let unshardedRefreshInterval: Duration = .seconds(60)
    /// How often a process sweeps a shard it decides on for transfers past their deadline.
    static let sweepInterval: Duration = .seconds(1)

    func cached(_ partition: String) -> ShardLayout? {
        state.withLock { $0.entries[partition]?.layout }
    }

    func layout(_ partition: String, namespace: String, client: RedisClient) async throws(QuotaError) -> ShardLayout? {
        let now = ContinuousClock.now
        let (known, read) = state.withLock { state -> (ShardLayout??, Task<ShardLayout?, any Error>?) in
            if let entry = state.entries[partition],
                now - entry.fetched < (entry.layout == nil ? Self.unshardedRefreshInterval : Self.refreshInterval)
            {
                return (.some(entry.layout), nil)
            }
            if let read = state.reading[partition] { return (nil, read.task) }
            return (nil, startRead(partition, namespace: namespace, client: client, in: &state))
        }
        if let known { return known }
        return try await value(of: read!, partition)
    }

    /// Reads the layout of `partition` now, not waiting for a read under way (it may have begun before a split),
    /// and keeps it. The cached entry stays until then, so other callers are never left without one.
    func reload(_ partition: String, namespace: String, client: RedisClient) async throws(QuotaError)
        -> ShardLayout?
    {
        let read = state.withLock { startRead(partition, namespace: namespace, client: client, in: &$0) }
        return try await value(of: read, partition)
    }

    private func startRead(_ partition: String, namespace: String, client: RedisClient, in state: inout State)
        -> Task<ShardLayout?, any Error>
    {
        state.reads += 1
        let id = state.reads
        let task = Task { try await self.read(partition, namespace: namespace, client: client, id: id) }
        state.reading[partition] = Read(id: id, task: task)
        return task
    }

    private func value(of read: Task<ShardLayout?, any Error>, _ partition: String) async throws(QuotaError)
        -> ShardLayout?
    {
        do {
            return try await read.value
        } catch let error as QuotaError {
            throw error
        } catch {
            throw QuotaError(.unexpectedReply, "reading the shard layout of \(partition) failed: \(error)")
        }
    }

    /// Reads the layout of `partition` (`HMGET` of its config hash); keeps it while this is the partition's read.
    private func read(_ partition: String, namespace: String, client: RedisClient, id: Int)
        async throws(QuotaError) -> ShardLayout?
    {
        let started = ContinuousClock.now
        let reply: RedisValue
        do {
            reply = try await client.send(
                RedisCommand(
                    "HMGET", RedisArgument(QuotaKeys(namespace: namespace, partition: partition).quotas), "shards",
                    "shards-epoch"))
        } catch {
            state.withLock { state in
                if state.reading[partition]?.id == id { state.reading[partition] = nil }
            }
            throw QuotaError.redis(error)
        }
        var layout: ShardLayout?
        if let items = reply.array, items.count == 2, let text = items[0].string, let count = Int(text), count > 1 {
            layout = ShardLayout(partition: partition, count: count, epoch: items[1].string ?? "0")
        }
        state.withLock { state in
            guard state.reading[partition]?.id == id else { return }
            state.reading[partition] = nil
            if state.entries.count > 4096 { state.entries.removeAll() }
            state.entries[partition] = Entry(layout: layout, fetched: started)
        }
        return layout
    }

    /// Whether the shard is due a sweep; if so, the next one is due a ``sweepInterval`` from now.
    func sweepDue(_ tag: String) -> Bool {
        let now = ContinuousClock.now
        return sweeps.withLock { sweeps in
            if let next = sweeps[tag], next > now { return false }
            if sweeps.count > 4096 { sweeps.removeAll() }
            sweeps[tag] = now + Self.sweepInterval
            return true
        }
    }
}

/// A decision found its partition split by `quota set --shards` since this process read the layout, and
/// refused with nothing taken (the pseudo-limit ``QuotaLimit/Kind/resharded``), where the caller cannot simply
/// decide again on the tenant's shard: call-admit (its queue, breaker and lease keys are the partition's), or a
/// tree call whose tree is not on that shard. `Backpressure.call` then runs the call again, on the route the
/// layout now gives it.
struct PartitionSplit: Error {}

/// Transfers of a sharded global ceiling (see `lua/shard-share.lua` and <doc:Quotas>).
enum ShardTransfers {
    /// How long a transfer may take between give and take before it is returned.
    static let transit: Int64 = 2000
    /// How long after a transfer's deadline its donor takes it back (clock skew between primaries).
    static let margin: Int64 = 1000

    static func shareKeys(_ layout: ShardLayout, _ index: Int, root: Scope, namespace: String) -> ShardShareKeys {
        ShardShareKeys(keys: layout.keys(index, namespace: namespace), root: root)
    }

    static func run(_ client: RedisClient, keys: [RedisArgument], _ arguments: [RedisArgument])
        async throws(QuotaError) -> RedisValue
    {
        do {
            return try await client.run(LuaScripts.shardShare, keys: keys, arguments: arguments)
        } catch {
            throw QuotaError.redis(error)
        }
    }

    /// Moves up to `need` (at least one token when the donor has any to spare, often more: half its spare)
    /// of `resource`'s share from shard `donor` to shard `receiver`. Returns what arrived.
    static func transfer(
        _ client: RedisClient, layout: ShardLayout, root: Scope, namespace: String, resource: String, need: Int64,
        from donor: Int, to receiver: Int
    ) async throws(QuotaError) -> Int64 {
        let id = Reservation.newID()
        let from = shareKeys(layout, donor, root: root, namespace: namespace)
        let to = shareKeys(layout, receiver, root: root, namespace: namespace)
        let given = try await run(
            client, keys: from.base,
            [
                "give", RedisArgument(layout.epoch), RedisArgument(resource), RedisArgument(max(1, need)),
                RedisArgument(id), RedisArgument(receiver), RedisArgument(transit),
            ])
        guard let pair = given.array, pair.count == 2, let amount = pair[0].integer, let deadline = pair[1].integer
        else { throw QuotaError(.unexpectedReply, "shard-share give replied unexpectedly") }
        guard amount > 0 else { return 0 }
        // From here a failure leaves the amount in transit: the donor's sweep returns it unless it was taken.
        let taken = try await run(
            client, keys: to.base + [RedisArgument(to.claim(id))],
            [
                "take", RedisArgument(layout.epoch), RedisArgument(resource), RedisArgument(amount), RedisArgument(id),
                RedisArgument(deadline), RedisArgument(donor),
            ])
        guard taken.integer == 1 else { return 0 }
        _ = try await run(client, keys: from.base, ["finish", RedisArgument(id)])
        return amount
    }

    /// Returns to shard `index` what it gave in transfers past their deadline that nobody took.
    /// Returns the tokens given back.
    @discardableResult
    static func sweep(_ client: RedisClient, layout: ShardLayout, root: Scope, namespace: String, index: Int)
        async throws(QuotaError) -> Int64
    {
        let keys = shareKeys(layout, index, root: root, namespace: namespace)
        let expired = try await run(client, keys: keys.base, ["sweep", RedisArgument(margin)])
        let items = expired.array ?? []
        guard items.count >= 2 else { return 0 }
        var arguments: [RedisArgument] = ["return", RedisArgument(margin)]
        for at in stride(from: 0, to: items.count - 1, by: 2) {
            guard let id = items[at].string, let receiver = items[at + 1].integer, receiver >= 0 else { continue }
            // Past the deadline a claim no longer changes: what it says now is final.
            let claimKey = shareKeys(layout, Int(receiver), root: root, namespace: namespace).claim(id)
            let claim: RedisValue
            do {
                claim = try await client.send(RedisCommand("GET", RedisArgument(claimKey)))
            } catch {
                throw QuotaError.redis(error)
            }
            arguments += [RedisArgument(id), claim.string == "taken" ? "1" : "0"]
        }
        return try await run(client, keys: keys.base, arguments).integer ?? 0
    }
}

/// One shard's share of a sharded global ceiling, as ``QuotaStore/shards(of:)`` reads it.
public struct ShardShare: Sendable, Hashable {
    public var index: Int
    /// Changes at every `quota set` of the root.
    public var epoch: String
    /// Per resource: the shard's share of the burst, and the tokens it holds now.
    public var shares: [String: (share: Int64, level: Int64)]

    public static func == (lhs: ShardShare, rhs: ShardShare) -> Bool {
        lhs.index == rhs.index && lhs.epoch == rhs.epoch
            && lhs.shares.mapValues { [$0.share, $0.level] } == rhs.shares.mapValues { [$0.share, $0.level] }
    }
    public func hash(into hasher: inout Hasher) {
        hasher.combine(index)
        hasher.combine(epoch)
    }
}

extension Limiter {
    /// The shard layout of `path`'s partition, re-read at most every ``ShardDirectory/refreshInterval``.
    func shardLayout(_ path: ScopePath) async throws(QuotaError) -> ShardLayout? {
        try await shardDirectory.layout(
            path.partition, namespace: configuration.namespace, client: client)
    }

    /// The shard of `tenant` in `partition` while that is a sharded global ceiling (in the layout this process
    /// knows, read again as ``shardLayout(_:)`` does); nil when it is not split. A Redis failure is thrown as its
    /// `RedisError`, as every other Redis step of the trees and the lease pools throws it.
    func shard(ofTenant tenant: String, in partition: String) async throws -> Int? {
        do {
            return try await shardDirectory.layout(partition, namespace: configuration.namespace, client: client)
                .map { ShardHash.shard(of: tenant, shards: $0.count) }
        } catch {
            if let redis = error.redisError { throw redis }
            throw error
        }
    }

    /// Reads the layout of `path`'s partition again: a decision on the partition's own keys was refused as
    /// ``QuotaLimit/Kind/resharded`` (`quota set --shards` split it since this process last read it).
    func reloadShardLayout(_ path: ScopePath) async throws(QuotaError) -> ShardLayout? {
        // A split layout cached meanwhile (another caller's reload) is newer than the refused request's view.
        if let layout = shardDirectory.cached(path.partition) { return layout }
        return try await shardDirectory.reload(path.partition, namespace: configuration.namespace, client: client)
    }

    /// Runs a decide call on the path's shard (``runOnShard(_:layout:)``). A decision the partition refused as
    /// split since this process read its layout runs again, once, where the layout now says.
    func runRouted(_ request: DecideRequest, layout: ShardLayout?) async throws(QuotaError) -> DecideRequest.Outcome {
        let outcome = try await runOnShard(request, layout: layout)
        guard outcome.decision.deniedBy?.kind == .resharded else { return outcome }
        let layout = try await reloadShardLayout(request.path)
        let again = try await runOnShard(request.rerouted(self, layout: layout), layout: layout)
        guard again.decision.deniedBy?.kind != .resharded else {
            throw QuotaError(.unexpectedReply, "decide found \(request.path.partition) split, then its layout unsplit")
        }
        return again
    }

    /// Runs a decide call on its shard; when the shard's share of the root's bucket refuses it, moves unused
    /// share from the other shards (each asked once) and decides again.
    func runOnShard(_ request: DecideRequest, layout: ShardLayout?) async throws(QuotaError) -> DecideRequest.Outcome {
        guard let layout else { return try await request.run(self) }
        if let tree = request.tree,
            request.keys.prefix != tree.context.partitionKeys(namespace: configuration.namespace).prefix
        {
            // Only after a split this process had not seen: validate(path:limiter:) checked the cached layout.
            throw QuotaError(
                .invalidScope,
                "the tree is not on the shard of the path's tenant: \(request.path.partition) was split after it opened",
                underlying: PartitionSplit())
        }
        let index = layout.index(for: request.path)
        let namespace = configuration.namespace
        let root = request.path.root
        if shardDirectory.sweepDue(layout.tag(index)) {
            try await ShardTransfers.sweep(client, layout: layout, root: root, namespace: namespace, index: index)
        }
        var outcome = try await request.run(self)
        // The other shards, from a random one on: each asked at most once for this decision.
        let start = Int.random(in: 0..<(layout.count - 1))
        var donors = (0..<(layout.count - 1)).map { (index + 1 + (start + $0) % (layout.count - 1)) % layout.count }
            .makeIterator()
        var exhausted = false
        while !outcome.decision.allowed, !exhausted, let denied = outcome.decision.deniedBy, denied.scopeIndex == 0,
            denied.kind == .bucket
        {
            let cost = request.resources.first { $0.resource == denied.resource }?.amount ?? 0
            var need = max(1, cost - max(0, denied.remaining))
            var got: Int64 = 0
            while need > 0 {
                guard let donor = donors.next() else {
                    exhausted = true
                    break
                }
                let moved = try await ShardTransfers.transfer(
                    client, layout: layout, root: root, namespace: namespace, resource: denied.resource, need: need,
                    from: donor, to: index)
                got += moved
                need -= moved
            }
            if got == 0 { break }
            outcome = try await request.run(self)
        }
        return outcome
    }
}

extension QuotaStore {
    /// The root's config hash field naming its shard count.
    static let shardsField = "shards"

    /// Splits the limits of root scope `pattern` (a one-scope pattern, `global=openai`) across `count`
    /// shards, each on its own hash slot (<doc:Quotas>): tenants map to one shard each, and shares move
    /// to where the demand is, never summing past the root's limits. The root's spec must hold token
    /// buckets only (no ceiling), each with a burst of at least `count`. Setting the root's limits again
    /// splits them again, evenly.
    public func setShards(_ pattern: ScopePattern, count: Int) async throws(QuotaError) {
        guard pattern.levels.count == 1 else {
            throw QuotaError(.invalidScope, "--shards is for a root scope alone (global=NAME)")
        }
        guard (2...1024).contains(count) else { throw QuotaError(.invalidSpec, "--shards is 2 to 1024") }
        try await split(pattern, count: count)
        _ = try await send(
            RedisCommand("HSET", RedisArgument(key(pattern)), RedisArgument(Self.shardsField), RedisArgument(count)))
    }

    /// The shard count of root `pattern`'s partition (nil: not sharded).
    func shardCount(_ partition: String) async throws(QuotaError) -> Int? {
        let key = QuotaKeys(namespace: namespace, partition: partition).quotas
        let reply = try await send(RedisCommand("HGET", RedisArgument(key), RedisArgument(Self.shardsField)))
        return reply.string.flatMap { Int($0) }.flatMap { $0 > 1 ? $0 : nil }
    }

    /// After an edit of `pattern`: a sharded root's limits are split again, other fields copied to every shard.
    func afterEdit(_ pattern: ScopePattern) async throws(QuotaError) {
        guard let count = try await shardCount(pattern.partition) else { return }
        let root = ScopePattern(levels: [pattern.levels[0]])
        if pattern.levels.count == 1 {
            if try await get(root) == nil {  // the root's limits removed: no longer sharded
                _ = try await send(
                    RedisCommand("HDEL", RedisArgument(key(root)), RedisArgument(Self.shardsField), "shards-epoch"))
                for index in 0..<count {
                    let shard = shardKey(pattern.partition, index)
                    _ = try await send(
                        RedisCommand("HDEL", RedisArgument(shard), "share", RedisArgument(root.field)))
                }
                return
            }
            try await split(root, count: count)
        } else {
            try await mirror(root, count: count)
        }
    }

    private func shardKey(_ partition: String, _ index: Int) -> String {
        ShardLayout(partition: partition, count: index + 1, epoch: "").keys(index, namespace: namespace).quotas
    }

    /// Splits the root's buckets evenly across the shards (a new epoch), then copies the other fields.
    private func split(_ root: ScopePattern, count: Int) async throws(QuotaError) {
        guard let field = try await get(root) else {
            throw QuotaError(.invalidSpec, "set the root's limits first, then --shards")
        }
        let spec = try field.spec.get()
        var buckets: [(resource: String, limit: QuotaLimit, burst: Int64)] = []
        for entry in spec.entries {
            for limit in entry.limits {
                guard limit.kind == .bucket, limit.ceiling == nil, let rate = limit.rate else {
                    throw QuotaError(
                        .invalidSpec,
                        "a sharded root holds token buckets without a ceiling (\(entry.resource) does not)")
                }
                let burst = limit.burst ?? rate.amount
                guard burst >= Int64(count) else {
                    throw QuotaError(
                        .invalidSpec, "\(entry.resource)'s burst \(burst) is below the shard count \(count)")
                }
                buckets.append((entry.resource, limit, burst))
            }
        }
        guard !buckets.isEmpty else { throw QuotaError(.invalidSpec, "the root has no token bucket to split") }
        let rootScope = try Scope(root.levels[0].kind, root.partition)
        let epoch =
            try await send(
                RedisCommand("HINCRBY", RedisArgument(key(root)), "shards-epoch", "1")
            ).integer ?? 0
        for index in 0..<count {
            var arguments: [RedisArgument] = [
                "set", RedisArgument(epoch), RedisArgument(index), RedisArgument(count), RedisArgument(root.field),
            ]
            for bucket in buckets {
                let rate = bucket.limit.rate!
                let share = bucket.burst / Int64(count) + (Int64(index) < bucket.burst % Int64(count) ? 1 : 0)
                arguments += [
                    RedisArgument(bucket.resource), RedisArgument(rate.amount), RedisArgument(rate.milliseconds),
                    RedisArgument(bucket.burst), RedisArgument(bucket.limit.debt ?? -1),
                    RedisArgument(bucket.limit.headroom ?? -1), bucket.limit.shadow ? "1" : "0",
                    RedisArgument(share),
                ]
            }
            let layout = ShardLayout(partition: root.partition, count: count, epoch: "")
            let keys = ShardTransfers.shareKeys(layout, index, root: rootScope, namespace: namespace)
            _ = try await ShardTransfers.run(client, keys: keys.base, arguments)
        }
        try await mirror(root, count: count)
    }

    /// Copies every field of the root's config hash below the root (tenant patterns, ...) to every shard.
    private func mirror(_ root: ScopePattern, count: Int) async throws(QuotaError) {
        let fields = try await hash(key(root)).filter { $0.key.contains("=") && $0.key != root.field }
        for index in 0..<count {
            let shard = shardKey(root.partition, index)
            let stale = try await hash(shard).keys.filter {
                $0.contains("=") && $0 != root.field && fields[$0] == nil
            }
            if !stale.isEmpty {
                _ = try await send(RedisCommand("HDEL", [RedisArgument(shard)] + stale.map { RedisArgument($0) }))
            }
            if !fields.isEmpty {
                var arguments = [RedisArgument(shard)]
                for (name, value) in fields.sorted(by: { $0.key < $1.key }) {
                    arguments += [RedisArgument(name), RedisArgument(value)]
                }
                _ = try await send(RedisCommand("HSET", arguments))
            }
        }
    }

    private func hash(_ key: String) async throws(QuotaError) -> [String: String] {
        let items = try await send(RedisCommand("HGETALL", RedisArgument(key))).array ?? []
        var out: [String: String] = [:]
        for index in stride(from: 0, to: items.count - 1, by: 2) {
            if let name = items[index].string, let value = items[index + 1].string { out[name] = value }
        }
        return out
    }

    /// The shares of a sharded root (`global=openai`), one per shard; empty when it is not sharded.
    public func shards(of root: Scope) async throws(QuotaError) -> [ShardShare] {
        guard let count = try await shardCount(root.name) else { return [] }
        var out: [ShardShare] = []
        for index in 0..<count {
            let layout = ShardLayout(partition: root.name, count: count, epoch: "")
            let keys = ShardTransfers.shareKeys(layout, index, root: root, namespace: namespace)
            let items = try await ShardTransfers.run(client, keys: keys.base, ["status"]).array ?? []
            guard items.count >= 3 else { continue }
            var shares: [String: (share: Int64, level: Int64)] = [:]
            for at in stride(from: 3, to: items.count - 2, by: 3) {
                if let resource = items[at].string, let share = items[at + 1].integer,
                    let level = items[at + 2].integer
                {
                    shares[resource] = (share, level)
                }
            }
            out.append(ShardShare(index: index, epoch: items[0].string ?? "", shares: shares))
        }
        return out
    }

    /// Returns to every shard of `root` what transfers cut short took from it (past their deadline and a
    /// margin, and not taken). Decisions on a shard do this by themselves, at most once a second per process.
    @discardableResult
    public func sweepShards(of root: Scope) async throws(QuotaError) -> Int64 {
        guard let count = try await shardCount(root.name) else { return 0 }
        let layout = ShardLayout(partition: root.name, count: count, epoch: "")
        var returned: Int64 = 0
        for index in 0..<count {
            returned += try await ShardTransfers.sweep(
                client, layout: layout, root: root, namespace: namespace, index: index)
        }
        return returned
    }
}
