import Sluice
import SluiceRedis

/// Mode `sluice`: every call goes through the library's high-level ``Backpressure/call(_:degrade:logger:_:)`` — the
/// fleet-wide admission queue, scheduled admission on the hierarchical quota path `global → tenant` with
/// reserve/settle of tokens, atomic with the request tree's limits (budget, loop guard, deadline), a fleet-wide
/// concurrency lease on the provider, the provider's circuit breaker, and the retry budget with backoff. Every
/// response goes back through `Backpressure` to the ``Reconciler``, which pauses the fleet on a 429, follows the
/// provider's ceiling, and cuts the concurrency slots on overloads. See ``SluiceSettings`` for the numbers.
///
/// Refusals become outcomes, and nobody asks again: a caller that must wait for its turn learns when in its
/// admission's reply (the quota's schedule; batch callers behind the headroom interactive ones keep) or is woken
/// when a lease or a slot of its tree frees up, inside ``Backpressure/call(_:degrade:logger:_:)``. A refusal is final:
/// the wait would pass the caller's deadline, or the queue or the breaker turned it away.
final class SluiceGate: CallGate {
    private let redis: RedisClient
    private let limiter: Limiter
    private let backpressure: Backpressure
    private let trees: RequestTrees
    private let partition: String
    private let reconciler: Reconciler
    private let concurrencySlots: Int

    init(assignment: WorkerAssignment) async throws {
        let provider = assignment.scenario.provider
        let settings = SluiceSettings(provider: provider)
        partition = assignment.runID
        redis = try RedisClient(configuration: RedisConfiguration(url: assignment.redisURL), poolSize: 4)
        limiter = try Limiter(
            client: redis,
            configuration: .init(
                defaults: settings.defaults(
                    tokensPerWindow: provider.tokensPerWindow, requestsPerWindow: provider.requestsPerWindow)))
        reconciler = try Reconciler(limiter: limiter, configuration: settings.reconciler)
        backpressure = Backpressure(
            redis: redis,
            configuration: .init(
                partition: partition, failurePolicy: .failClosed,
                queue: .init(
                    maxWaiting: SluiceSettings.maxWaiting, growthAlert: 100, window: .seconds(5),
                    tenantWeights: Dictionary(
                        assignment.scenario.tenants.flatMap { group in group.tenantNames.map { ($0, group.weight) } },
                        uniquingKeysWith: { _, last in last })),
                breaker: .init(
                    window: .seconds(5), buckets: 10, minimumCalls: 20, failureRatio: 0.5, coolDown: .seconds(1),
                    probes: 3, probeTimeout: .seconds(3)),
                retryBudget: .init(ratio: 0.2, floor: 10, window: .seconds(5)),
                backoff: .init(initial: .milliseconds(100), maximum: .seconds(2)),
                defaultTimeout: .seconds(30), heartbeat: nil, holder: "storm-\(assignment.workerIndex)"),
            limiter: limiter, reconciler: reconciler)
        trees = RequestTrees(redis: redis)
        concurrencySlots = settings.concurrencySlots
    }

    func treeStarted(_ tree: inout AgentTree) async {
        let shape = tree.group.tree
        let limits = TreeLimits(
            budgets: shape.budgetTokens.map { ["tokens": Int64($0)] } ?? [:], maxInFlight: shape.maxInFlight,
            loopGuard: shape.loopGuard, deadline: .milliseconds(Int64(max(1, tree.deadlineMs - StormClock.nowMs()))))
        tree.context = try? trees.start(
            id: tree.id, partition: partition, limits: limits,
            priority: tree.priority == "batch" ? .batch : .interactive)
    }

    func beforeTool(_ tool: String, arguments: String, tree: AgentTree) async throws {
        guard let context = tree.context else { return }
        do {
            let ticket = try await trees.enter(context, tool: tool, arguments: arguments)
            try await trees.settle(ticket, usage: [:])
        } catch let error as BackpressureError where error.isRefusal {
            throw GateRefusal(outcome: .budget, reason: error.code.description)
        }
    }

    func perform(_ call: CallTicket, attempt: @escaping @Sendable (Int) async -> AttemptResult) async -> GateConclusion
    {
        guard let context = call.tree.context else {
            return GateConclusion(outcome: .failed, refusal: "tree-not-opened")
        }
        let path: ScopePath
        do {
            path = try ScopePath("global=\(partition)", "tenant=\(call.tree.tenant)")
        } catch {
            return GateConclusion(outcome: .failed, refusal: "invalid-path")
        }
        let concurrencySlots = self.concurrencySlots
        let remaining = call.remainingMs
        guard remaining > 1 else { return GateConclusion(outcome: .deadline) }
        let providerCall = ProviderCall(
            scope: "provider", estimate: ["tokens": Int64(call.shape.estimate), "requests": 1], quotaPath: path,
            concurrency: concurrencySlots,
            timeout: .milliseconds(Int64(remaining)), maxAttempts: SluiceSettings.maxAttempts, label: call.kind)
        do {
            _ = try await context.run {
                try await backpressure.call(providerCall) { attemptContext in
                    let result = await attempt(attemptContext.number)
                    let observation =
                        result.status.map { ObservationParser().observe(status: $0, headers: result.headers) }
                        ?? .noResponse
                    if result.succeeded {
                        return CallOutcome(
                            (), usage: ["tokens": Int64(result.tokens), "requests": 1], observation: observation)
                    }
                    throw ProviderFailure(observation, usage: ["tokens": 0, "requests": 1])
                }
            }
            return .ok
        } catch let refusal as BackpressureError {
            switch refusal.code {
            case .quotaDenied, .overloaded, .breakerOpen, .leaseUnavailable, .treeInFlight:
                return GateConclusion(
                    outcome: .shed, refusal: refusal.code.description,
                    retryAfterMs: refusal.retryAfter.map { Double($0 / .milliseconds(1)) })
            case .treeBudget, .loopGuard, .treeDepth, .treeChildren:
                return GateConclusion(outcome: .budget, refusal: refusal.code.description)
            case .deadlineExceeded:
                return GateConclusion(outcome: .deadline, refusal: refusal.code.description)
            default:
                return GateConclusion(outcome: .failed, refusal: refusal.code.description)
            }
        } catch is CancellationError {
            return GateConclusion(outcome: .cancelled)
        } catch is ProviderFailure {
            return GateConclusion(outcome: .failed)
        } catch {
            return GateConclusion(outcome: Task.isCancelled ? .cancelled : .failed, refusal: "\(error)")
        }
    }

    func shutdown() async {
        await backpressure.shutdown()
        redis.close()
    }
}
