import SluiceRedis

/// Reads the fleet's state from Redis for operators (`sluice top`, `sluice serve`): which partitions
/// exist and a ``FleetSnapshot`` of each. It only reads; its work per call is bounded by its
/// ``Configuration`` (a capped `SCAN`, then one pipeline per partition), so a large keyspace makes a
/// snapshot partial (``FleetSnapshot/truncated``), never slow without bound.
///
/// ```swift
/// let reader = FleetReader(redis: redis)
/// for snapshot in try await reader.snapshots() {
///     print(snapshot.partition, snapshot.scopes.map(\.inFlight).reduce(0, +))
/// }
/// ```
package struct FleetReader: Sendable {
    /// How much one read may do.
    package struct Configuration: Sendable, Hashable {
        /// The most `SCAN` calls (`COUNT 1000` each) per read on each server (each primary of a cluster), to find
        /// partitions and their keys.
        package var scanCalls: Int
        /// The most scopes, breakers and tree hashes read per partition.
        package var maxScopes: Int
        package var maxBreakers: Int
        package var maxTrees: Int
        /// How many of the trees spending most a snapshot lists.
        package var topTrees: Int
        /// How many recent events a snapshot carries.
        package var recentEvents: Int

        /// Creates a configuration; the defaults walk at most about 100,000 keys per read.
        package init(
            scanCalls: Int = 100, maxScopes: Int = 100, maxBreakers: Int = 100, maxTrees: Int = 500,
            topTrees: Int = 10, recentEvents: Int = 20
        ) {
            self.scanCalls = max(1, scanCalls)
            self.maxScopes = max(0, maxScopes)
            self.maxBreakers = max(0, maxBreakers)
            self.maxTrees = max(0, maxTrees)
            self.topTrees = max(0, topTrees)
            self.recentEvents = max(0, recentEvents)
        }
    }

    package let configuration: Configuration
    private let redis: RedisClient

    /// A reader on `redis`.
    package init(redis: RedisClient, configuration: Configuration = Configuration()) {
        self.redis = redis
        self.configuration = configuration
    }

    /// The partitions that have any key now, sorted.
    package func partitions() async throws(RedisError) -> [String] {
        try await inventory(of: nil).partitions.keys.map(\.name).sorted()
    }

    /// A snapshot of each of `partitions` (nil: every partition found), in the order given or sorted.
    package func snapshots(_ partitions: [String]? = nil) async throws(RedisError) -> [FleetSnapshot] {
        let found = try await inventory(of: partitions)
        let wanted =
            partitions.map { $0.map(Tag.init(name:)) } ?? found.partitions.keys.sorted { $0.name < $1.name }
        var snapshots: [FleetSnapshot] = []
        for tag in wanted {
            snapshots.append(
                try await read(tag, found.partitions[tag] ?? Keys(), now: found.now, truncated: found.truncated))
        }
        return snapshots
    }

    /// One partition's snapshot.
    package func snapshot(_ partition: String) async throws(RedisError) -> FleetSnapshot {
        try await snapshots([partition])[0]
    }

    /// Up to `count` events of `partition` after the entry id `after` (`0`: from the oldest), oldest first.
    package func events(_ partition: String, after: String = "0", count: Int = 1_000) async throws(RedisError)
        -> [SluiceEvent]
    {
        let tag = Tag(name: partition)
        let reply = try await redis.send(
            "XRANGE", tag.key("events"), RedisArgument("(" + after), "+", "COUNT", RedisArgument(max(1, count)))
        return EventLog.entries(reply, partition: partition)
    }

    // MARK: - Finding the keys

    /// A partition's hash tag as it appears in keys (escaped) and its name (unescaped).
    struct Tag: Hashable {
        let escaped: String
        let name: String

        init(name: String) {
            self.name = name
            self.escaped = KeyName.escape(name)
        }

        init(escaped: String) {
            self.escaped = escaped
            // A cut name (`~` + digest) cannot be unescaped: it is shown as it is.
            self.name = escaped.contains("~") ? escaped : KeyName.unescape(escaped)
        }

        var prefix: String { "sluice:{\(escaped)}:" }
        func key(_ suffix: String) -> RedisArgument { RedisArgument(prefix + suffix) }
    }

    /// The keys of one partition worth reading, by feature (escaped names).
    struct Keys {
        var scopes: Set<String> = []
        var breakers: Set<String> = []
        var trees: Set<String> = []
        var roots: Set<String> = []

        /// Files `suffix` (the key after `sluice:{P}:`).
        mutating func add(_ suffix: Substring) {
            let parts = suffix.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count >= 2 else { return }
            let name = String(parts[1])
            guard !name.isEmpty else { return }
            switch (parts[0], parts.count) {
            case ("queue", 2), ("inflight", 2), ("lease", 2): scopes.insert(name)
            case ("breaker", 2): breakers.insert(name)
            case ("tree", 2): trees.insert(name)
            case ("s", 2) where !name.contains("/") && name.contains("="): roots.insert(name)
            default: break
            }
        }
    }

    struct Inventory {
        var partitions: [Tag: Keys] = [:]
        var truncated = false
        var now: Int64 = 0
    }

    /// One bounded `SCAN` pass: over one partition's keys when one is asked for, else over every Sluice key.
    func inventory(of partitions: [String]?) async throws(RedisError) -> Inventory {
        var inventory = Inventory()
        let wanted = partitions.map { Set($0.map { KeyName.escape($0) }) }
        let pattern =
            if let wanted, wanted.count == 1, let only = wanted.first { "sluice:{\(only)}:*" } else { "sluice:{*}:*" }
        // On every primary of a cluster: one node holds only its slots' partitions.
        let scan = try await redis.scanKeys(matching: pattern, mostCallsPerNode: configuration.scanCalls)
        for text in scan.keys {
            guard text.hasPrefix("sluice:{"), let close = text.firstIndex(of: "}") else { continue }
            let escaped = String(text[text.index(text.startIndex, offsetBy: 8)..<close])
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":"), !escaped.isEmpty, wanted?.contains(escaped) ?? true else { continue }
            inventory.partitions[Tag(escaped: escaped), default: Keys()].add(rest.dropFirst())
        }
        inventory.truncated = !scan.complete
        inventory.now = try await Self.time(redis)
        return inventory
    }

    static func time(_ redis: RedisClient) async throws(RedisError) -> Int64 {
        let parts = try await redis.send("TIME").array ?? []
        guard parts.count == 2, let seconds = parts[0].integer, let micros = parts[1].integer else {
            throw RedisError(.unexpectedReply, "TIME replied unexpectedly", command: "TIME")
        }
        return seconds * 1000 + micros / 1000
    }

    // MARK: - Reading one partition

    func read(_ tag: Tag, _ keys: Keys, now: Int64, truncated: Bool) async throws(RedisError) -> FleetSnapshot {
        let scopes = Array(keys.scopes.sorted().prefix(configuration.maxScopes))
        let breakers = Array(keys.breakers.sorted().prefix(configuration.maxBreakers))
        let trees = Array(keys.trees.sorted().prefix(configuration.maxTrees))
        let live = RedisArgument(now)
        var commands: [RedisCommand] = []
        for scope in scopes {
            commands += [
                RedisCommand("ZCOUNT", tag.key("queue:" + scope), live, "+inf"),
                RedisCommand("ZCOUNT", tag.key("inflight:" + scope), live, "+inf"),
                RedisCommand("ZCOUNT", tag.key("lease:" + scope), live, "+inf"),
                RedisCommand("ZSCORE", tag.key("lease:" + scope), "#seq"),
            ]
        }
        commands += breakers.map { RedisCommand("GET", tag.key("breaker:" + $0)) }
        for tree in trees {
            commands += [
                RedisCommand("HGETALL", tag.key("tree:" + tree)),
                RedisCommand("ZCOUNT", tag.key("tree:" + tree + ":calls"), live, "+inf"),
            ]
        }
        commands += [
            RedisCommand("HGETALL", tag.key("stats")), RedisCommand("XLEN", tag.key("events")),
            RedisCommand(
                "XREVRANGE", tag.key("events"), "+", "-", "COUNT", RedisArgument(max(1, configuration.recentEvents))),
            RedisCommand("ZCOUNT", tag.key("workers"), live, "+inf"),
        ]
        var replies = try await redis.pipeline(commands)[...]
        func next() -> RedisValue { replies.popFirst() ?? .null }

        var snapshot = FleetSnapshot(
            partition: tag.name, now: now, scopes: [], breakers: [], reconciler: [], shadow: [],
            treesOpen: keys.trees.count, treesRead: trees.count,
            topTrees: [], workers: 0, streamLength: 0, recentEvents: [],
            truncated: truncated || scopes.count < keys.scopes.count || breakers.count < keys.breakers.count)
        for scope in scopes {
            let waiting = next().integer ?? 0
            let inFlight = next().integer ?? 0
            let held = next().integer ?? 0
            let counter = next()  // "#seq" scores minus the last token handed out
            let sequence = counter.integer ?? counter.double.map { Int64($0) } ?? 0
            snapshot.scopes.append(
                FleetSnapshot.Scope(
                    name: KeyName.unescape(scope), waiting: Int(waiting), inFlight: Int(inFlight),
                    leasesHeld: Int(held),
                    leasesGranted: -sequence))
        }
        for name in breakers {
            if let breaker = Self.breaker(KeyName.unescape(name), next(), now: now) {
                snapshot.breakers.append(breaker)
            }
        }
        var read: [FleetSnapshot.Tree] = []
        for id in trees {
            let fields = next()
            let calls = Int(next().integer ?? 0)
            if let tree = Self.tree(KeyName.unescape(id), fields, calls: calls) { read.append(tree) }
        }
        snapshot.topTrees = Array(Self.spendingMost(read).prefix(configuration.topTrees))
        snapshot.shadow = Self.shadow(next())
        snapshot.streamLength = Int(next().integer ?? 0)
        snapshot.recentEvents = EventLog.entries(next(), partition: tag.name).reversed()
        snapshot.workers = Int(next().integer ?? 0)

        for root in keys.roots.sorted().prefix(configuration.maxScopes) {
            guard let equals = root.firstIndex(of: "="),
                let scope = try? Scope(String(root[..<equals]), KeyName.unescape(root[root.index(after: equals)...]))
            else { continue }
            let reply = try await redis.run(LuaScripts.reconcileStatus, keys: [tag.key("s:" + root)])
            guard let status = ReconcilerStatus(reply: reply, root: scope),
                !status.resources.isEmpty || status.pausedUntil != nil || status.cuts > 0
            else { continue }
            snapshot.reconciler.append(status)
        }
        return snapshot
    }

    /// A breaker's state from its key (cmsgpack, see `lua/breaker-allow.lua`); nil when missing or unreadable.
    static func breaker(_ name: String, _ reply: RedisValue, now: Int64) -> FleetSnapshot.Breaker? {
        guard let bytes = reply.bytes, let state = MessagePack.decode(bytes), let stored = state["s"]?.text else {
            return nil
        }
        var breaker = FleetSnapshot.Breaker(
            name: name, state: CircuitBreaker.State(stored), openUntil: nil, calls: 0, failures: 0, probes: 0,
            timesOpened: state["g"]?.integer ?? 0)
        if breaker.state == .open { breaker.openUntil = state["u"]?.integer }
        for bucket in state["b"]?.elements ?? [] {
            guard let counts = bucket.elements, counts.count == 3 else { continue }
            breaker.calls += counts[1].integer ?? 0
            breaker.failures += counts[2].integer ?? 0
        }
        breaker.probes = (state["p"]?.elements ?? []).filter { ($0.elements?.last?.integer ?? 0) > now }.count
        return breaker
    }

    static func tree(_ id: String, _ reply: RedisValue, calls: Int) -> FleetSnapshot.Tree? {
        let flat = (reply.array ?? []).map { $0.string ?? "" }
        guard !flat.isEmpty else { return nil }
        var tree = FleetSnapshot.Tree(id: id, spent: [:], budgets: [:], callsInFlight: calls, deadline: nil)
        for index in stride(from: 0, to: flat.count - 1, by: 2) {
            let field = flat[index]
            let value = Int64(flat[index + 1]) ?? 0
            if field.hasPrefix("u:") { tree.spent[String(field.dropFirst(2))] = value }
            if field.hasPrefix("b:") { tree.budgets[String(field.dropFirst(2))] = value }
            if field == "dl", value > 0 { tree.deadline = value }
        }
        return tree
    }

    /// Trees by what they spent: of `tokens` where any tree has it, else of the resource most spent.
    static func spendingMost(_ trees: [FleetSnapshot.Tree]) -> [FleetSnapshot.Tree] {
        var totals: [String: Int64] = [:]
        for tree in trees { totals.merge(tree.spent, uniquingKeysWith: +) }
        let resource =
            totals["tokens"] != nil ? "tokens" : totals.max { ($0.value, $1.key) < ($1.value, $0.key) }?.key ?? ""
        return trees.sorted { ($0.spent[resource] ?? 0, $1.id) > ($1.spent[resource] ?? 0, $0.id) }
    }

    /// The stats hash (`<config field>|<resource>|<limit kind>` → count), summed per scope kind: the config
    /// field names tenants, which must not become labels.
    static func shadow(_ reply: RedisValue) -> [FleetSnapshot.ShadowCount] {
        let flat = (reply.array ?? []).map { $0.string ?? "" }
        var sums: [FleetSnapshot.ShadowCount: Int64] = [:]
        for index in stride(from: 0, to: flat.count - 1, by: 2) {
            let parts = flat[index].split(separator: "|", omittingEmptySubsequences: false)
            guard parts.count >= 3, let count = Int64(flat[index + 1]) else { continue }
            let scope = parts[0..<(parts.count - 2)].joined(separator: "|").split(separator: " ").last ?? ""
            let kind = scope.prefix { $0 != "=" }
            let key = FleetSnapshot.ShadowCount(
                scopeKind: kind.isEmpty ? "default" : String(kind), resource: String(parts[parts.count - 2]),
                limitKind: String(parts[parts.count - 1]), count: 0)
            sums[key, default: 0] += count
        }
        return sums.map { key, count in
            var sum = key
            sum.count = count
            return sum
        }.sorted { ($0.scopeKind, $0.resource, $0.limitKind) < ($1.scopeKind, $1.resource, $1.limitKind) }
    }
}
