import Sluice

/// A request tree as the agents of one worker carry it.
struct AgentTree: Sendable {
    var id: String
    var tenant: String
    var group: TenantGroup
    var startMs: Double
    /// Wall-clock ms after which the tree's calls are pointless.
    var deadlineMs: Double
    var depth: Int
    /// The tree as the Sluice library knows it (mode `sluice` only).
    var context: TreeContext?

    var priority: String { group.priority }
}
