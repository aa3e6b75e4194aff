import SluiceRedis

/// A call inside a request tree, decided in one step with its quota path: pass it to
/// ``Limiter/schedule(_:cost:maxWait:priority:reportLimits:tree:)`` or
/// ``Limiter/reserve(_:estimate:ttl:id:priority:reportLimits:tree:)``.
///
/// The tree's checks (deadline, depth, loop guard, budgets, calls in flight — those of
/// ``RequestTrees/enter(_:callID:estimate:tool:arguments:ttl:)``) run in the same script as the
/// quota's limits, so the call is admitted by both or by neither: a tree refusal charges no quota,
/// and a quota refusal reserves nothing on the tree. The tree's budgets reserve the decision's cost.
/// Settling or cancelling the reservation closes the tree side too (its actual usage on the
/// budgets; the call stops counting as in flight), once. A refusal by the tree is a denied
/// ``Decision`` whose ``Decision/deniedBy`` has one of the tree kinds (``QuotaLimit/Kind/treeBudget``,
/// ...); ``Decision/treeRefusal(_:)`` turns it into the ``BackpressureError`` `enter` would throw.
///
/// The tree's partition must be the quota path's (both sets of keys share one hash tag); on a sharded global
/// ceiling, the tree must be on the shard of the path's tenant (``RequestTrees/open(id:partition:tenant:limits:priority:)``).
public struct TreeCall: Sendable, Hashable {
    /// The tree and the node the call is made from.
    public var context: TreeContext
    /// The tool and its arguments (any stable text), for the tree's loop guard; `nil`: no guard.
    public var tool: String?
    /// See ``tool``.
    public var arguments: String?
    /// After this long (counted from when the call may proceed) the call stops counting as in
    /// flight even if it is never settled (a crashed worker).
    public var ttl: Duration

    /// A call from `context`'s node.
    public init(_ context: TreeContext, tool: String? = nil, arguments: String? = nil, ttl: Duration = .seconds(600)) {
        self.context = context
        self.tool = tool
        self.arguments = arguments
        self.ttl = ttl
    }

    /// The keys decide.lua and settle.lua take after the path's: the tree's hash, its calls in flight
    /// and (decide only) the partition's events, exactly those of tree-enter.lua, in the limiter's namespace.
    func keys(namespace: String) -> (tree: RedisArgument, calls: RedisArgument, events: RedisArgument) {
        let keys = context.partitionKeys(namespace: namespace)
        return (keys.key("tree", context.treeID), keys.key("tree", context.treeID, "calls"), keys.events)
    }

    /// The tree's wake-up list: call-finish pushes one when a call of the tree stops counting in flight.
    func freed(namespace: String) -> WakeUpList {
        WakeUpList(
            key: context.partitionKeys(namespace: namespace).key("tree", context.treeID, "free"))
    }

    /// decide.lua's "tree" group (its header documents it).
    func arguments(callID: String, path: ScopePath) -> [RedisArgument] {
        let loop = tool.map { RequestTrees.loopKey(tool: $0, arguments: arguments ?? "") } ?? ""
        let scope = path.scopes.lastIndex { $0.kind == "tree" } ?? 0
        var group: [RedisArgument] = [
            "tree", RedisArgument(callID), RedisArgument(RequestTrees.milliseconds(ttl)), RedisArgument(context.depth),
            RedisArgument(context.deadlineMilliseconds ?? 0), RedisArgument(loop), RedisArgument(context.treeID),
            RedisArgument(scope),
        ]
        if let limits = context.limitsToRecord {  // a started tree: the first call records it
            group.append(RedisArgument(limits.recordText(deadlineMilliseconds: context.deadlineMilliseconds)))
        }
        return group
    }

    /// Checks what the script would refuse, before any I/O.
    func validate(path: ScopePath, limiter: Limiter) throws(QuotaError) {
        guard ttl >= .milliseconds(1), ttl <= .seconds(7 * 86_400) else {
            throw QuotaError(.invalidDuration, "a tree call's ttl is between 1 ms and 7 days")
        }
        guard !context.treeID.isEmpty, context.depth >= 0 else {
            throw QuotaError(.invalidScope, "a tree call needs a tree id and a depth >= 0")
        }
        guard limiter.sharesSlot(with: context, path: path) else {
            throw QuotaError(
                .invalidScope,
                context.partition == path.partition
                    ? "the tree is on another shard of \(context.partition) than the path's tenant: one decision needs one"
                    : "the tree and the quota path are in different partitions: one decision needs one")
        }
    }
}

extension Decision {
    /// When the tree of a ``TreeCall`` refused this decision: the refusal, as
    /// ``RequestTrees/enter(_:callID:estimate:tool:arguments:ttl:)`` throws it (``BackpressureError/Code/treeBudget``,
    /// ``BackpressureError/Code/loopGuard``, ``BackpressureError/Code/treeDepth``,
    /// ``BackpressureError/Code/treeInFlight`` or ``BackpressureError/Code/deadlineExceeded``); `nil`
    /// when it was admitted or a quota limit refused it.
    public func treeRefusal(_ call: TreeCall) -> BackpressureError? {
        guard !allowed, let limit = deniedBy else { return nil }
        let tree = "tree \(call.context.treeID)"
        let used = limit.limit - limit.remaining
        switch limit.kind {
        case .treeDepth:
            return BackpressureError(
                .treeDepth, "\(tree): a call at depth \(call.context.depth) is beyond the max depth \(limit.limit)")
        case .treeInFlight:
            return BackpressureError(
                .treeInFlight, "\(tree): \(used) calls in flight, the most allowed is \(limit.limit)",
                retryAfter: .milliseconds(50))
        case .loopGuard:
            return BackpressureError(
                .loopGuard,
                "\(tree): \(call.tool ?? "the tool") was already called \(limit.limit) times with the same arguments")
        case .treeBudget:
            return BackpressureError(
                .treeBudget,
                "\(tree): the \(limit.resource) budget of \(limit.limit) is spent (\(used) used or reserved)")
        case .treeDeadline:
            return BackpressureError(.deadlineExceeded, "\(tree): the deadline has passed")
        default:
            return nil
        }
    }
}
