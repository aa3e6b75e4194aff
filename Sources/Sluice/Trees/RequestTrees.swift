import Foundation
import Logging
import SluiceRedis

/// Request trees in Redis: opening a tree with its limits, spawning children, and admitting calls
/// against the tree's deadline, depth, fan-out, in-flight, loop-guard and budget limits — each
/// operation one script, fleet-wide.
///
/// ```swift
/// let trees = RequestTrees(redis: redis)
/// let root = try await trees.open(partition: "openai",
///     limits: TreeLimits(budgets: ["tokens": 100_000], maxDepth: 4, maxChildren: 8, loopGuard: 5, deadline: .seconds(120)))
/// let child = try await trees.spawn(from: root)             // counts against depth and fan-out
/// let ticket = try await trees.enter(child, estimate: ["tokens": 4_000], tool: "search", arguments: query)
/// // ... call the provider ...
/// try await trees.settle(ticket, usage: ["tokens": 2_718])
/// ```
///
/// Refusals are thrown as ``BackpressureError`` (``BackpressureError/Code/treeBudget``,
/// ``BackpressureError/Code/loopGuard``, ...); Redis failures as `RedisError`.
public struct RequestTrees: Sendable {
    private let redis: RedisClient
    /// The first part of the trees' keys (`<namespace>:{<partition>}:tree:...`), as ``Limiter/Configuration/namespace``.
    public let namespace: String
    /// Where refusals are logged (debug only: they name the tree, a user's request).
    public let logger: Logger
    /// The limiter whose view of sharded global ceilings places a tenant's trees on its shard; `nil`: every tree
    /// in its partition's own slot.
    let limiter: Limiter?

    /// Trees on the given client.
    ///
    /// - Parameter limiter: the limiter that decides the trees' calls. On a sharded global ceiling, a tree opened
    ///   for a tenant then lives on that tenant's shard, and each of its calls is decided with its quota path in
    ///   one script (on Redis Cluster, the shard's slot holds both).
    public init(
        redis: RedisClient, namespace: String = "sluice", logger: Logger = .sluiceDisabled, limiter: Limiter? = nil
    ) {
        self.redis = redis
        self.namespace = namespace
        self.logger = logger
        self.limiter = limiter
    }

    /// Opens a tree: records its limits in the partition (the first opener of an id wins; a later
    /// open of the same id returns the recorded deadline) and returns the root context.
    ///
    /// - Parameter tenant: the name of the scope below the root in the quota paths of the tree's calls
    ///   (`acme` for `global=openai tenant=acme ...`). When the partition is a sharded global ceiling and the
    ///   trees have a ``init(redis:namespace:logger:limiter:)``'s limiter, the tree lives on that tenant's shard.
    public func open(
        id: String = TreeContext.newID(), partition: String, tenant: String? = nil, limits: TreeLimits,
        priority: Priority = .interactive
    ) async throws -> TreeContext {
        guard !partition.isEmpty else {
            throw BackpressureError(.invalidArgument, "a tree needs an id and a partition")
        }
        var shard: Int?
        if let tenant, let limiter { shard = try await limiter.shard(ofTenant: tenant, in: partition) }
        return try await open(id: id, partition: partition, shard: shard, limits: limits, priority: priority)
    }

    /// Opens a tree in `partition`, or on its shard `shard`.
    private func open(id: String, partition: String, shard: Int?, limits: TreeLimits, priority: Priority)
        async throws -> TreeContext
    {
        try limits.validate()
        guard !id.isEmpty, !partition.isEmpty else {
            throw BackpressureError(.invalidArgument, "a tree needs an id and a partition")
        }
        let keys = PartitionKeys(partition: partition, shard: shard, namespace: namespace)
        var arguments: [RedisArgument] = [
            RedisArgument(limits.deadline.map(Self.milliseconds) ?? 0),
            RedisArgument(Self.milliseconds(limits.lifetime)),
            RedisArgument(limits.maxDepth ?? 0), RedisArgument(limits.maxChildren ?? 0),
            RedisArgument(limits.maxInFlight ?? 0), RedisArgument(limits.loopGuard ?? 0),
        ]
        for (resource, budget) in limits.budgets.amounts.sorted(by: { $0.key < $1.key }) {
            arguments += [RedisArgument(resource), RedisArgument(budget)]
        }
        let reply = try await redis.run(LuaScripts.treeOpen, keys: [keys.key("tree", id)], arguments: arguments)
        let deadline = reply.array?[1].integer ?? 0
        return TreeContext(
            treeID: id, deadlineMilliseconds: deadline > 0 ? deadline : nil, priority: priority, partition: partition,
            shard: shard)
    }

    /// Starts a tree without a round trip: its limits travel in the returned context (and in its header) and
    /// the tree's first call records them in the script that admits it, as ``open(id:partition:tenant:limits:priority:)``
    /// would have (the first record wins). A tree of many calls saves one round trip; a tree of one call, half
    /// of its Redis work besides the call's own. The deadline is counted from now on this machine's clock.
    ///
    /// Through ``Backpressure/call(_:operation:)`` with a quota path in the tree's partition the first call
    /// records the tree in its admission; ``enter(_:callID:estimate:tool:arguments:ttl:)`` and
    /// ``spawn(from:nodeID:)`` record it first when they are given such a context.
    ///
    /// - Parameter tenant: as for ``open(id:partition:tenant:limits:priority:)``, from the layout this process knows
    ///   without a round trip (it knows it once its limiter has decided on the partition).
    public func start(
        id: String = TreeContext.newID(), partition: String, tenant: String? = nil, limits: TreeLimits,
        priority: Priority = .interactive
    ) throws -> TreeContext {
        try limits.validate()
        guard !id.isEmpty, !partition.isEmpty else {
            throw BackpressureError(.invalidArgument, "a tree needs an id and a partition")
        }
        let now = Int64((Date().timeIntervalSince1970 * 1000).rounded(.down))
        let shard = tenant.flatMap { tenant in
            limiter?.shardDirectory.cached(partition).map { ShardHash.shard(of: tenant, shards: $0.count) }
        }
        var context = TreeContext(
            treeID: id, deadlineMilliseconds: limits.deadline.map { now + Int64(Self.milliseconds($0)) },
            priority: priority, partition: partition, shard: shard)
        var toRecord = limits
        toRecord.deadline = nil  // the context's deadline at ms is the one recorded
        context.limitsToRecord = toRecord
        return context
    }

    /// Records a started tree's limits (``start(id:partition:tenant:limits:priority:)``) before a script that
    /// cannot: tree-open.lua, whose first record wins. Returns the context, recorded.
    /// Each started tree is recorded once per process: the trees this process recorded (bounded; a tree forgotten
    /// here is recorded again, which changes nothing, since the first record wins).
    private static let recordedTrees = SluiceMutex<Set<String>>([])

    private func recorded(_ context: TreeContext) async throws -> TreeContext {
        guard var limits = context.limitsToRecord else { return context }
        let tree = "\(namespace)|\(context.partition)|\(context.shard ?? -1)|\(context.treeID)"
        var known = context
        known.limitsToRecord = nil
        if Self.recordedTrees.withLock({ $0.contains(tree) }) { return known }
        limits.deadline = context.remaining.map { max(.milliseconds(1), $0) }
        _ = try await open(
            id: context.treeID, partition: context.partition, shard: context.shard, limits: limits,
            priority: context.priority)
        Self.recordedTrees.withLock { trees in
            if trees.count >= 4096 { trees.removeAll(keepingCapacity: true) }
            trees.insert(tree)
        }
        return known
    }

    /// Starts a child of `parent`, counted against the tree's max depth and the parent's max
    /// children; refused after the deadline.
    public func spawn(from parent: TreeContext, nodeID: String = TreeContext.newID()) async throws -> TreeContext {
        let parent = try await recorded(parent)
        let child = parent.child(nodeID: nodeID)
        let keys = parent.partitionKeys(namespace: namespace)
        let reply = try await redis.run(
            LuaScripts.treeSpawn, keys: [keys.key("tree", parent.treeID)],
            arguments: [
                RedisArgument(PartitionKeys.escape(parent.nodeID)), RedisArgument(child.depth),
                RedisArgument(parent.deadlineMilliseconds ?? 0),
            ])
        let parts = reply.array ?? []
        guard parts.first?.integer == 1 else {
            let reason = parts.count > 1 ? parts[1].string ?? "" : ""
            let limit = parts.count > 2 ? parts[2].integer ?? 0 : 0
            switch reason {
            case "depth":
                throw BackpressureError(
                    .treeDepth, "tree \(parent.treeID): depth \(child.depth) is beyond the max depth \(limit)")
            case "children":
                throw BackpressureError(
                    .treeChildren, "tree \(parent.treeID): node \(parent.nodeID) already has its \(limit) children")
            default:
                throw BackpressureError(.deadlineExceeded, "tree \(parent.treeID): the deadline has passed")
            }
        }
        return child
    }

    /// Admits one call into the tree of `context`, or throws why not: the deadline passed, the node
    /// is too deep, too many calls are in flight, the loop guard tripped (the same `tool` with the
    /// same `arguments` too often), or a budget cannot cover `estimate`.
    ///
    /// - Parameters:
    ///   - arguments: the call's arguments in any stable textual form; only a fingerprint is stored.
    ///   - ttl: after this long the call stops counting as in flight even if it never exits (a crash).
    public func enter(
        _ context: TreeContext, callID: String = TreeContext.newID(), estimate: Cost = [:],
        tool: String? = nil, arguments: String? = nil, ttl: Duration = .seconds(600)
    ) async throws -> TreeTicket {
        try estimate.checkForCall("a tree call's estimate")
        let context = try await recorded(context)
        let keys = context.partitionKeys(namespace: namespace)
        let loop = tool.map { Self.loopKey(tool: $0, arguments: arguments ?? "") } ?? ""
        var scriptArguments: [RedisArgument] = [
            RedisArgument(callID), RedisArgument(Self.milliseconds(ttl)), RedisArgument(context.depth),
            RedisArgument(context.deadlineMilliseconds ?? 0), RedisArgument(loop), RedisArgument(context.treeID),
        ]
        for (resource, amount) in estimate.amounts.sorted(by: { $0.key < $1.key }) {
            scriptArguments += [RedisArgument(resource), RedisArgument(amount)]
        }
        let reply = try await redis.run(
            LuaScripts.treeEnter,
            keys: [keys.key("tree", context.treeID), keys.key("tree", context.treeID, "calls"), keys.events],
            arguments: scriptArguments)
        let parts = reply.array ?? []
        guard parts.first?.integer == 1 else {
            let refusal = Self.refusal(parts, context: context, tool: tool)
            logger.debug(
                "tree call refused", metadata: ["sluice.code": "\(refusal.code)", "sluice.tree": "\(context.treeID)"])
            throw refusal
        }
        return TreeTicket(context: context, callID: callID, estimate: estimate)
    }

    /// Settles an admitted call with its actual usage (a resource not named keeps its estimate).
    /// Idempotent: a second settle is a no-op. Returns whether this call settled it.
    @discardableResult
    public func settle(_ ticket: TreeTicket, usage: Cost) async throws -> Bool {
        try usage.checkForCall("a tree call's usage")
        var arguments: [RedisArgument] = [RedisArgument(ticket.callID), "settle"]
        for (resource, amount) in usage.amounts.sorted(by: { $0.key < $1.key }) {
            arguments += [RedisArgument(resource), RedisArgument(amount)]
        }
        return try await exit(ticket, arguments)
    }

    /// Undoes an admission whose call never ran (another check refused it): the reservation and the
    /// loop-guard count are given back. Idempotent.
    @discardableResult
    public func refund(_ ticket: TreeTicket) async throws -> Bool {
        try await exit(ticket, [RedisArgument(ticket.callID), "refund"])
    }

    /// The tree's recorded usage, budgets, calls in flight and children per node.
    public func usage(_ context: TreeContext) async throws -> TreeUsage {
        let keys = context.partitionKeys(namespace: namespace)
        let replies = try await redis.pipeline([
            RedisCommand("HGETALL", keys.key("tree", context.treeID)),
            RedisCommand("ZCARD", keys.key("tree", context.treeID, "calls")),
        ])
        let flat = (replies[0].array ?? []).map { $0.string ?? "" }
        var usage = TreeUsage(used: [:], budgets: [:], inFlight: Int(replies[1].integer ?? 0), children: [:])
        for index in stride(from: 0, to: flat.count - 1, by: 2) {
            let field = flat[index]
            let value = Int64(flat[index + 1]) ?? 0
            if field.hasPrefix("u:") { usage.used[String(field.dropFirst(2))] = value }
            if field.hasPrefix("b:") { usage.budgets[String(field.dropFirst(2))] = value }
            if field.hasPrefix("c:") { usage.children[String(field.dropFirst(2))] = Int(value) }
        }
        return usage
    }

    private func exit(_ ticket: TreeTicket, _ arguments: [RedisArgument]) async throws -> Bool {
        let keys = ticket.context.partitionKeys(namespace: namespace)
        let reply = try await redis.run(
            LuaScripts.treeExit,
            keys: [keys.key("tree", ticket.context.treeID), keys.key("tree", ticket.context.treeID, "calls")],
            arguments: arguments)
        return reply.integer == 1
    }

    static func refusal(_ parts: [RedisValue], context: TreeContext, tool: String?) -> BackpressureError {
        let reason = parts.count > 1 ? parts[1].string ?? "" : ""
        let detail = parts.count > 2 ? parts[2].string ?? "" : ""
        let limit = parts.count > 3 ? parts[3].integer ?? 0 : 0
        let used = parts.count > 4 ? parts[4].string ?? "" : ""
        let tree = "tree \(context.treeID)"
        switch reason {
        case "depth":
            return BackpressureError(
                .treeDepth, "\(tree): a call at depth \(context.depth) is beyond the max depth \(limit)")
        case "in-flight":
            return BackpressureError(
                .treeInFlight, "\(tree): \(used) calls in flight, the most allowed is \(limit)",
                retryAfter: .milliseconds(50))
        case "loop":
            return BackpressureError(
                .loopGuard, "\(tree): \(tool ?? "the tool") was already called \(limit) times with the same arguments")
        case "budget":
            return BackpressureError(
                .treeBudget, "\(tree): the \(detail) budget of \(limit) is spent (\(used) used or reserved)")
        default:
            return BackpressureError(.deadlineExceeded, "\(tree): the deadline has passed")
        }
    }

    /// `<escaped tool>|<FNV-1a 64 of the arguments>`: the loop guard's field.
    static func loopKey(tool: String, arguments: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in arguments.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        let hex = String(hash, radix: 16)
        return PartitionKeys.escape(tool) + "|" + String(repeating: "0", count: 16 - hex.count) + hex
    }

    static func milliseconds(_ duration: Duration) -> Int {
        max(1, Int(duration / .milliseconds(1)))
    }
}
