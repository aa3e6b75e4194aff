import Foundation
import Tracing

/// Where a piece of work sits in a request tree: the tree, this node, its parent, its depth, the
/// tree's deadline and priority, and the partition holding the tree's state.
///
/// The context is a value of the task's `ServiceContext` (``ServiceContext/sluiceTree``), beside the
/// application's trace: child tasks inherit it, and whatever carries the application's `ServiceContext`
/// carries the tree too. It crosses process boundaries as one compact header value (``headerValue``,
/// ``init(headerValue:)``), which ``TreeContextPropagator`` injects and extracts for the application's
/// instrument, so a sub-agent on another host counts against the same tree.
///
/// ```swift
/// let root = try await trees.open(partition: "openai", limits: TreeLimits(budgets: ["tokens": 200_000]))
/// try await root.run {
///     // TreeContext.current (ServiceContext.current?.sluiceTree) is `root` here and in every child task
/// }
/// ```
public struct TreeContext: Sendable, Hashable {
    /// The current task's tree context (``ServiceContext/sluiceTree`` of `ServiceContext.current`), inherited
    /// by child tasks.
    public static var current: TreeContext? { ServiceContext.current?.sluiceTree }

    /// The header that carries a context to another process.
    public static let headerName = "Sluice-Tree"

    /// The tree's id (one per user request).
    public var treeID: String
    /// This node's id (an agent, a sub-agent, a branch).
    public var nodeID: String
    /// The parent node's id; `nil` at the root.
    public var parentID: String?
    /// The root is at depth 0; each spawned child is one deeper.
    public var depth: Int
    /// The tree's deadline in milliseconds since 1970 on the Redis clock; `nil`: none.
    public var deadlineMilliseconds: Int64?
    /// The tree's priority class (the quota layer's ``Priority``).
    public var priority: Priority
    /// The partition (hash tag) that holds the tree's keys.
    public var partition: String
    /// On a sharded global ceiling (`quota set global=NAME ... --shards N`): the shard whose hash slot holds the
    /// tree's keys, its tenant's, so that a call of the tree is decided with its quota path in one script on Redis
    /// Cluster (``RequestTrees/open(id:partition:tenant:limits:priority:)``). `nil`: the partition's own slot.
    public var shard: Int?
    /// The limits of a tree started with ``RequestTrees/start(id:partition:tenant:limits:priority:)``, which the tree's
    /// first call records; `nil` for a tree opened with a round trip of its own, or joined from an old header.
    public internal(set) var limitsToRecord: TreeLimits?

    /// Creates a context. Most code gets one from ``RequestTrees/open(id:partition:tenant:limits:priority:)``,
    /// ``RequestTrees/spawn(from:nodeID:)`` or a header instead.
    public init(
        treeID: String, nodeID: String = TreeContext.newID(), parentID: String? = nil, depth: Int = 0,
        deadlineMilliseconds: Int64? = nil, priority: Priority = .interactive, partition: String, shard: Int? = nil
    ) {
        self.treeID = treeID
        self.nodeID = nodeID
        self.parentID = parentID
        self.depth = depth
        self.deadlineMilliseconds = deadlineMilliseconds
        self.priority = priority
        self.partition = partition
        self.shard = shard
    }

    /// The keys of the tree's partition, or of its shard.
    func partitionKeys(namespace: String) -> PartitionKeys {
        PartitionKeys(partition: partition, shard: shard, namespace: namespace)
    }

    /// A child node of this one, one level deeper, without asking Redis: for counting a child
    /// against the tree's limits, use ``RequestTrees/spawn(from:nodeID:)``.
    public func child(nodeID: String = TreeContext.newID()) -> TreeContext {
        var child = self
        child.parentID = self.nodeID
        child.nodeID = nodeID
        child.depth = depth + 1
        return child
    }

    /// Runs `body` with this context as ``current`` (and in every child task it starts): the current
    /// `ServiceContext`, trace and all, with this tree in it.
    public func run<Result>(
        isolation: isolated (any Actor)? = #isolation, _ body: () async throws -> Result
    ) async rethrows -> Result {
        var context = ServiceContext.current ?? .topLevel
        context.sluiceTree = self
        return try await ServiceContext.withValue(context, operation: body)
    }

    /// The time left before the deadline, by this machine's wall clock; `nil`: no deadline.
    public var remaining: Duration? {
        guard let deadlineMilliseconds else { return nil }
        let now = Int64((Date().timeIntervalSince1970 * 1000).rounded(.down))
        return .milliseconds(max(0, deadlineMilliseconds - now))
    }

    /// The deadline as an instant of the continuous clock (for sleeping and timeouts).
    public var deadlineInstant: ContinuousClock.Instant? {
        remaining.map { ContinuousClock.now + $0 }
    }

    /// A fresh random id: 16 lowercase hex digits.
    public static func newID() -> String {
        let value = UInt64.random(in: 0...UInt64.max)
        let hex = String(value, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}
