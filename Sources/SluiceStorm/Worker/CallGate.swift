/// What stands between an agent and the provider in one mode: admission, the attempts and their retries, and
/// the bookkeeping around them. One gate serves all the agents of a worker process.
protocol CallGate: Sendable {
    /// Runs one logical call to its end. `attempt` sends one attempt to the provider (the gate decides when, and
    /// whether to retry) and returns what the provider answered.
    func perform(_ call: CallTicket, attempt: @escaping @Sendable (Int) async -> AttemptResult) async -> GateConclusion
    /// A tree starts: a gate may record it (its budget, deadline, loop guard) and keep a handle in `tree`.
    func treeStarted(_ tree: inout AgentTree) async
    /// An agent is about to call a tool; a gate may refuse it (a loop guard). Default: allowed.
    func beforeTool(_ tool: String, arguments: String, tree: AgentTree) async throws
    /// Closes connections.
    func shutdown() async
}

extension CallGate {
    func treeStarted(_ tree: inout AgentTree) async {}
    func beforeTool(_ tool: String, arguments: String, tree: AgentTree) async throws {}
    func shutdown() async {}
}

/// How a logical call ended, as the gate saw it.
struct GateConclusion: Sendable {
    var outcome: CallEnding
    /// Why the limiter refused it, when it did.
    var refusal: String?
    /// How many times the limiter refused the call on its way (each refused ask of the single bucket; Sluice's
    /// refusal that ended it).
    var refusals: Int
    /// When the refusal that ended the call said the caller could be served (ms from now), if it did.
    var retryAfterMs: Double?

    /// `refusals` defaults to one when a limiter's `refusal` ended the call (shed, over budget, past its deadline)
    /// and to none otherwise.
    init(outcome: CallEnding, refusal: String? = nil, refusals: Int? = nil, retryAfterMs: Double? = nil) {
        self.outcome = outcome
        self.refusal = refusal
        self.retryAfterMs = retryAfterMs
        self.refusals =
            refusals ?? (refusal != nil && [.shed, .budget, .deadline].contains(outcome) ? 1 : 0)
    }

    static let ok = GateConclusion(outcome: .ok)
}

/// The limiter refused a tool call.
struct GateRefusal: Error, Sendable {
    var outcome: CallEnding
    var reason: String
}
