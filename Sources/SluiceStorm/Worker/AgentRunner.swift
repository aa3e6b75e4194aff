import SluiceRedis

/// Runs request trees the way agents do: a planner call, parallel branches of steps with tool calls between
/// them, sub-agents, a synthesis call, or a runaway loop; every LLM call goes through the mode's ``CallGate``
/// and is recorded in the ``WorkerLedger``.
struct AgentRunner: Sendable {
    let gate: any CallGate
    let client: ProviderClient
    let ledger: WorkerLedger
    /// Wall-clock ms at which the run ends.
    let endMs: Double

    /// Runs one tree to its end. `seed` fixes every random choice in it. Returns how long the limiter said to
    /// wait (ms) when it shed the tree's first call, so that a job runner honours that before its next job.
    @discardableResult
    func runTree(_ tree: AgentTree, seed: UInt64) async -> Double? {
        var tree = tree
        await gate.treeStarted(&tree)
        return await runTreeCalls(tree, seed: seed)
    }

    private func runTreeCalls(_ tree: AgentTree, seed: UInt64) async -> Double? {
        let shape = tree.group.tree
        let planner = await conclude(shape.planner, kind: "planner", tree: tree, seed: seed, path: "p")
        guard planner.outcome == .ok else { return planner.outcome == .shed ? planner.retryAfterMs : nil }
        if let loop = shape.loop {
            await withTaskGroup(of: Void.self) { group in
                for agent in 0..<loop.parallel {
                    group.addTask { await runaway(loop, agent: agent, tree: tree, seed: seed) }
                }
            }
            return nil
        }
        await branches(of: shape, fanout: shape.fanout, depth: shape.depth, tree: tree, seed: seed, path: "")
        if let final = shape.final {
            _ = await call(final, kind: "final", tree: tree, seed: seed, path: "f")
        }
        return nil
    }

    /// `fanout` parallel branches; below depth 1 each is a sub-agent with a planner and branches of its own.
    private func branches(
        of shape: TreeShape, fanout: Int, depth: Int, tree: AgentTree, seed: UInt64, path: String
    ) async {
        await withTaskGroup(of: Void.self) { group in
            for branch in 0..<fanout {
                let branchPath = path + "b\(branch)."
                group.addTask {
                    if depth > 1 {
                        var child = tree
                        child.depth += 1
                        guard
                            await call(shape.planner, kind: "planner", tree: child, seed: seed, path: branchPath + "p")
                        else { return }
                        await branches(
                            of: shape, fanout: shape.subagentFanout ?? shape.fanout, depth: depth - 1, tree: child,
                            seed: seed, path: branchPath)
                    } else {
                        for step in 0..<shape.steps {
                            if step > 0 { guard await tool(shape.toolMs) else { return } }
                            guard
                                await call(
                                    shape.step, kind: "step", tree: tree, seed: seed, path: branchPath + "s\(step)")
                            else { return }
                        }
                    }
                }
            }
        }
    }

    /// A runaway agent: call the LLM, call a tool that fails, try again with the same arguments.
    private func runaway(_ loop: LoopShape, agent: Int, tree: AgentTree, seed: UInt64) async {
        for iteration in 0..<loop.iterations {
            guard await call(loop.call, kind: "loop", tree: tree, seed: seed, path: "l\(agent).\(iteration)") else {
                return
            }
            do {
                try await gate.beforeTool(loop.tool, arguments: "query=the same failing query", tree: tree)
            } catch {
                return
            }
            guard await tool(tree.group.tree.toolMs) else { return }
        }
    }

    /// A tool call: it takes its time; false when the run ended meanwhile.
    private func tool(_ milliseconds: Double) async -> Bool {
        do {
            try await Task.sleep(for: .microseconds(Int64(milliseconds * 1000)))
            return true
        } catch {
            return false
        }
    }

    /// One logical LLM call with all its attempts; true when the provider served it.
    func call(_ shape: CallShape, kind: String, tree: AgentTree, seed: UInt64, path: String) async -> Bool {
        await conclude(shape, kind: kind, tree: tree, seed: seed, path: path).outcome == .ok
    }

    /// One logical LLM call with all its attempts, and how it ended.
    func conclude(_ shape: CallShape, kind: String, tree: AgentTree, seed: UInt64, path: String) async
        -> GateConclusion
    {
        guard StormClock.nowMs() < endMs, !Task.isCancelled else { return GateConclusion(outcome: .cancelled) }
        let ticket = CallTicket(
            tree: tree, shape: shape, seed: SeededRandom.derive([seed, SeededRandom.hash(path)]), kind: kind)
        let tally = AttemptTally()
        let start = ledger.now()
        let ledger = self.ledger
        let client = self.client
        ledger.changeWaiting(by: 1)
        let conclusion = await gate.perform(ticket) { _ in
            ledger.changeWaiting(by: -1)
            ledger.changeInFlight(by: 1)
            let result = await client.send(shape, user: tree.tenant, seed: ticket.seed)
            ledger.changeInFlight(by: -1)
            ledger.changeWaiting(by: 1)
            tally.add(result)
            return result
        }
        ledger.changeWaiting(by: -1)
        let end = ledger.now()
        let counts = tally.counts
        var outcome = conclusion.outcome
        if outcome != .ok, Task.isCancelled || StormClock.nowMs() >= endMs { outcome = .cancelled }
        ledger.record(
            CallRecord(
                tenant: tree.tenant, group: tree.group.name, role: tree.group.role, tree: tree.id, start: start,
                end: end, outcome: outcome, attempts: counts.attempts, provider429s: counts.limited,
                providerErrors: counts.errors, tokens: counts.tokens, estimate: shape.estimate,
                waitedMs: max(0, (end - start) * 1000 - counts.attemptMs), refusal: conclusion.refusal,
                refusals: conclusion.refusals))
        var concluded = conclusion
        concluded.outcome = outcome
        return concluded
    }
}

/// The attempts of one logical call, counted from inside the gate's attempt closure.
final class AttemptTally: Sendable {
    struct Counts {
        var attempts = 0
        var limited = 0
        var errors = 0
        var tokens = 0
        /// Time spent at the provider, in ms.
        var attemptMs = 0.0
    }

    private let state = SluiceMutex(Counts())

    func add(_ result: AttemptResult) {
        state.withLock { counts in
            counts.attempts += 1
            counts.attemptMs += result.latencyMs
            if result.succeeded {
                counts.tokens += result.tokens
            } else if result.isQuota {
                counts.limited += 1
            } else {
                counts.errors += 1
            }
        }
    }

    var counts: Counts { state.withLock { $0 } }
}
