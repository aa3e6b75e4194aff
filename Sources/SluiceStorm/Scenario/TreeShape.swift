/// What one request tree (one user request to an agent) does.
///
/// A planner call, then `fanout` parallel branches, each making `steps` LLM calls with a tool call of `tool_ms`
/// between them, then an optional `final` synthesis call. With `depth` > 1 every branch is a sub-agent: a
/// planner of its own fanning out into `subagent_fanout` branches, one level down. A `loop` makes the tree a
/// runaway: after its planner it runs `loop.parallel` agents that call the LLM, call a tool that always fails,
/// and try again with the same arguments, up to `loop.iterations` times each.
public struct TreeShape: Codable, Sendable, Hashable {
    public var planner: CallShape
    public var fanout: Int
    public var steps: Int
    public var step: CallShape
    public var final: CallShape?
    public var toolMs: Double
    public var depth: Int
    public var subagentFanout: Int?
    /// Seconds from the tree's start after which its calls are pointless (the user gave up).
    public var deadline: Double?
    /// A hard budget of tokens for the whole tree (enforced only by the `sluice` mode; measured in all).
    public var budgetTokens: Int?
    /// The most calls of this tree in flight at once, fleet-wide (enforced by the `sluice` mode).
    public var maxInFlight: Int?
    /// The most times one tool may be called with the same arguments in the tree (enforced by the `sluice` mode).
    public var loopGuard: Int?
    public var loop: LoopShape?

    public init(
        planner: CallShape, fanout: Int = 0, steps: Int = 1, step: CallShape, final: CallShape? = nil,
        toolMs: Double = 20, depth: Int = 1, subagentFanout: Int? = nil, deadline: Double? = nil,
        budgetTokens: Int? = nil, maxInFlight: Int? = nil, loopGuard: Int? = nil, loop: LoopShape? = nil
    ) {
        self.planner = planner
        self.fanout = fanout
        self.steps = steps
        self.step = step
        self.final = final
        self.toolMs = toolMs
        self.depth = depth
        self.subagentFanout = subagentFanout
        self.deadline = deadline
        self.budgetTokens = budgetTokens
        self.maxInFlight = maxInFlight
        self.loopGuard = loopGuard
        self.loop = loop
    }

    /// Decodes with defaults for what a scenario file may leave out: no fan-out, one step like the planner,
    /// 20 ms tools, depth 1, no limits.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        planner = try container.decode(CallShape.self, forKey: .planner)
        fanout = try container.decodeIfPresent(Int.self, forKey: .fanout) ?? 0
        steps = try container.decodeIfPresent(Int.self, forKey: .steps) ?? 1
        step = try container.decodeIfPresent(CallShape.self, forKey: .step) ?? planner
        final = try container.decodeIfPresent(CallShape.self, forKey: .final)
        toolMs = try container.decodeIfPresent(Double.self, forKey: .toolMs) ?? 20
        depth = try container.decodeIfPresent(Int.self, forKey: .depth) ?? 1
        subagentFanout = try container.decodeIfPresent(Int.self, forKey: .subagentFanout)
        deadline = try container.decodeIfPresent(Double.self, forKey: .deadline)
        budgetTokens = try container.decodeIfPresent(Int.self, forKey: .budgetTokens)
        maxInFlight = try container.decodeIfPresent(Int.self, forKey: .maxInFlight)
        loopGuard = try container.decodeIfPresent(Int.self, forKey: .loopGuard)
        loop = try container.decodeIfPresent(LoopShape.self, forKey: .loop)
    }

    func validate(_ fail: (String) -> ScenarioError) throws(ScenarioError) {
        guard fanout >= 0, fanout <= 1_000, steps >= 1, steps <= 1_000 else {
            throw fail("tree needs 0 <= fanout <= 1000 and 1 <= steps <= 1000")
        }
        guard depth >= 1, depth <= 4 else { throw fail("tree depth must be 1...4") }
        guard toolMs >= 0, toolMs <= 3_600_000 else { throw fail("tool_ms must be 0...3600000") }
        if let deadline, !(deadline > 0 && deadline <= Scenario.maximumDuration) {
            throw fail("deadline must be in (0, 86400] s")
        }
        if let budgetTokens, budgetTokens < 1 { throw fail("budget_tokens must be positive") }
        if let maxInFlight, maxInFlight < 1 { throw fail("max_in_flight must be positive") }
        if let loopGuard, loopGuard < 1 { throw fail("loop_guard must be positive") }
        for call in [planner, step] + (final.map { [$0] } ?? []) { try call.validate(fail) }
        if let loop {
            guard loop.iterations >= 1, loop.parallel >= 1, loop.parallel <= 100 else {
                throw fail("loop needs iterations >= 1 and 1 <= parallel <= 100")
            }
            try loop.call.validate(fail)
        }
    }
}

/// The size of one LLM call: the prompt it sends and the most it may write back. The provider writes between
/// 40% and 100% of `max_tokens`.
public struct CallShape: Codable, Sendable, Hashable {
    public var promptTokens: Int
    public var maxTokens: Int

    public init(promptTokens: Int, maxTokens: Int) {
        self.promptTokens = promptTokens
        self.maxTokens = maxTokens
    }

    /// What the provider (and a reservation) charges up front.
    public var estimate: Int { promptTokens + maxTokens }

    func validate(_ fail: (String) -> ScenarioError) throws(ScenarioError) {
        guard promptTokens >= 1, promptTokens <= 200_000, maxTokens >= 1, maxTokens <= 100_000 else {
            throw fail("a call needs 1 <= prompt_tokens <= 200000 and 1 <= max_tokens <= 100000")
        }
    }
}

/// A runaway agent: it calls the LLM, calls `tool` (which always fails), and tries again with the same arguments.
public struct LoopShape: Codable, Sendable, Hashable {
    public var tool: String
    public var iterations: Int
    public var parallel: Int
    public var call: CallShape

    public init(tool: String, iterations: Int, parallel: Int = 1, call: CallShape) {
        self.tool = tool
        self.iterations = iterations
        self.parallel = parallel
        self.call = call
    }
}
