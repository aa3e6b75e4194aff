/// A group of tenants that behave alike: how many, how they weigh, when their request trees arrive and what
/// those trees look like.
public struct TenantGroup: Codable, Sendable, Hashable {
    /// The group's name; its tenants are named `NAME-1`, `NAME-2`, … (or `NAME` when `count` is 1).
    public var name: String
    public var count: Int
    /// What the report measures the group for: `light` (latency, the victims of a noisy neighbour), `heavy`,
    /// `runaway` (tokens burned against the tree budget) or `other`.
    public var role: String
    /// The tenant's weight in the fair share (and in its guaranteed rate under `sluice`).
    public var weight: Double
    /// `interactive` or `batch`.
    public var priority: String
    public var arrivals: Arrivals
    public var tree: TreeShape

    public init(
        name: String, count: Int = 1, role: String = "light", weight: Double = 1, priority: String = "interactive",
        arrivals: Arrivals, tree: TreeShape
    ) {
        self.name = name
        self.count = count
        self.role = role
        self.weight = weight
        self.priority = priority
        self.arrivals = arrivals
        self.tree = tree
    }

    /// Decodes with defaults: one tenant, role `light`, weight 1, `interactive`.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name)
        count = try container.decodeIfPresent(Int.self, forKey: .count) ?? 1
        role = try container.decodeIfPresent(String.self, forKey: .role) ?? "light"
        weight = try container.decodeIfPresent(Double.self, forKey: .weight) ?? 1
        priority = try container.decodeIfPresent(String.self, forKey: .priority) ?? "interactive"
        arrivals = try container.decode(Arrivals.self, forKey: .arrivals)
        tree = try container.decode(TreeShape.self, forKey: .tree)
    }

    public static let roles: Set<String> = ["light", "heavy", "runaway", "other"]

    /// The names of the group's tenants.
    public var tenantNames: [String] {
        count == 1 ? [name] : (1...count).map { "\(name)-\($0)" }
    }

    func rescaled(by factor: Double) -> TenantGroup {
        var copy = self
        copy.arrivals = arrivals.rescaled(by: factor)
        return copy
    }

    func validate(scenario: String) throws(ScenarioError) {
        func fail(_ why: String) -> ScenarioError { ScenarioError("scenario \(scenario): tenants \(name): \(why)") }
        guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
            throw fail("name must be letters, digits, - and _")
        }
        guard count >= 1, count <= 10_000 else { throw fail("count must be 1...10000") }
        guard Self.roles.contains(role) else { throw fail("role must be one of \(Self.roles.sorted())") }
        guard weight > 0 else { throw fail("weight must be positive") }
        guard priority == "interactive" || priority == "batch" else { throw fail("priority: interactive or batch") }
        try arrivals.validate(fail)
        try tree.validate(fail)
    }
}

/// When a tenant's request trees start.
///
/// Either open-loop (`rate` trees per second per tenant, Poisson) or closed-loop (`concurrent` trees kept
/// running per tenant, a new one starting when one ends), from `from` until `until` (default: the whole run).
/// `surges` multiply the rate (or the number of concurrent trees) for a while.
public struct Arrivals: Codable, Sendable, Hashable {
    public var rate: Double?
    public var concurrent: Int?
    public var from: Double?
    public var until: Double?
    public var surges: [Surge]?

    public init(
        rate: Double? = nil, concurrent: Int? = nil, from: Double? = nil, until: Double? = nil, surges: [Surge]? = nil
    ) {
        self.rate = rate
        self.concurrent = concurrent
        self.from = from
        self.until = until
        self.surges = surges
    }

    /// The arrival multiplier at `time`.
    public func surgeFactor(at time: Double) -> Double {
        (surges ?? []).filter { time >= $0.at && time < $0.until }.map(\.factor).max() ?? 1
    }

    func rescaled(by factor: Double) -> Arrivals {
        var copy = self
        copy.from = from.map { $0 * factor }
        copy.until = until.map { $0 * factor }
        copy.surges = surges?.map { Surge(at: $0.at * factor, until: $0.until * factor, factor: $0.factor) }
        return copy
    }

    func validate(_ fail: (String) -> ScenarioError) throws(ScenarioError) {
        guard (rate == nil) != (concurrent == nil) else { throw fail("arrivals need exactly one of rate, concurrent") }
        if let rate, !(rate > 0) { throw fail("arrivals.rate must be positive") }
        if let concurrent, concurrent < 1 { throw fail("arrivals.concurrent must be >= 1") }
        if let from, let until, until <= from { throw fail("arrivals.until must be after from") }
        for time in [from, until].compactMap({ $0 }) where !Scenario.isTime(time) {
            throw fail("arrivals.from and until must be 0...86400 s")
        }
        for surge in surges ?? []
        where !(surge.factor > 0) || surge.until <= surge.at || !Scenario.isTime(surge.at)
            || !Scenario.isTime(surge.until)
        {
            throw fail("a surge needs 0 <= at < until <= 86400 s and a positive factor")
        }
    }
}

/// A period during which arrivals are multiplied by `factor`.
public struct Surge: Codable, Sendable, Hashable {
    public var at: Double
    public var until: Double
    public var factor: Double

    public init(at: Double, until: Double, factor: Double) {
        self.at = at
        self.until = until
        self.factor = factor
    }
}
