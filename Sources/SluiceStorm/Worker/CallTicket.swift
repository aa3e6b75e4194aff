/// One logical call as a gate sees it.
struct CallTicket: Sendable {
    var tree: AgentTree
    var shape: CallShape
    /// A per-call seed: the provider draws latency and answer length from it.
    var seed: UInt64
    /// `planner`, `step`, `final` or `loop`.
    var kind: String

    /// Milliseconds left before the tree's deadline.
    var remainingMs: Double { tree.deadlineMs - StormClock.nowMs() }
}
