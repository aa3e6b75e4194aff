/// A call admitted into a tree by ``RequestTrees/enter(_:callID:estimate:tool:arguments:ttl:)``:
/// its estimate is reserved on the tree's budgets until ``RequestTrees/settle(_:usage:)`` or
/// ``RequestTrees/refund(_:)``.
public struct TreeTicket: Sendable, Hashable {
    /// The tree the call counts against.
    public let context: TreeContext
    /// The call's id, unique within the tree.
    public let callID: String
    /// What was reserved per resource.
    public let estimate: Cost
}

/// A tree's usage as recorded in Redis.
public struct TreeUsage: Sendable, Hashable {
    /// Spent (settled) plus reserved (in flight) per resource.
    public var used: Cost
    /// The budgets, per resource.
    public var budgets: Cost
    /// Calls in flight right now.
    public var inFlight: Int
    /// Children started, per node id.
    public var children: [String: Int]
}
