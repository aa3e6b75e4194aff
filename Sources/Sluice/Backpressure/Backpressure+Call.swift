import Logging
import SluiceRedis
import Tracing

extension Backpressure {
    /// Runs one provider call end to end: joins the scope's queue (shed when it is full), enters
    /// the current tree (``TreeContext/current``: deadline, depth, in-flight, loop guard, budget
    /// reservation), reserves the quota path with scheduled admission, takes a concurrency lease
    /// (waiting with backoff), then makes attempts through the dependency's breaker and the retry
    /// budget, with full-jitter backoff that honours retry-after and stops at the deadline. Finally
    /// it settles the actual usage on the tree and the quota, records the outcome, and releases
    /// the lease — also when the call fails.
    ///
    /// A call with a quota path inside a tree of the same partition is admitted by the tree and the
    /// quota in one atomic decision (``TreeCall``): neither is charged when the other refuses, and
    /// one settle closes both. Otherwise the tree is entered first and refunded when a later stage
    /// refuses.
    ///
    /// When Sluice refuses the call (a ``BackpressureError``), `degrade` may return another call to
    /// try instead — a smaller model, a cached path — or `nil` to give up with the refusal.
    ///
    /// When Redis is unreachable, ``Configuration/failurePolicy`` decides, and no Redis step can
    /// hold the call past its deadline.
    ///
    /// `logger` receives this call's own lines (at `debug`: what the failure policy decided for it); `nil` uses
    /// the background ``logger``.
    public func call<Value: Sendable>(
        _ call: ProviderCall,
        degrade: (@Sendable (BackpressureError, ProviderCall) -> ProviderCall?)? = nil,
        logger: Logger? = nil,
        _ operation: @escaping @Sendable (CallAttempt) async throws -> CallOutcome<Value>
    ) async throws -> CallResult<Value> {
        var logger = logger ?? self.logger
        if logger[metadataKey: "sluice.partition"] == nil {
            logger[metadataKey: "sluice.partition"] = "\(configuration.partition)"
        }
        return try await traced("sluice.call") { span in
            span.attributes["sluice.partition"] = configuration.partition
            span.attributes["sluice.dependency"] = call.dependency
            var current = call
            var fellBack = false
            var tried: Set<ProviderCall> = []
            while true {
                try current.validate()
                tried.insert(current)
                do {
                    var result = try await run(current, logger: logger, operation)
                    result.fellBack = fellBack
                    span.attributes["sluice.attempts"] = result.attempts
                    span.attributes["sluice.degraded"] = result.degraded
                    span.attributes["sluice.fell_back"] = fellBack
                    return result
                } catch let refusal as BackpressureError where refusal.isRefusal {
                    span.attributes["sluice.refusal"] = "\(refusal.code)"
                    guard let degrade, let next = degrade(refusal, current), !tried.contains(next) else {
                        throw refusal
                    }
                    current = next
                    fellBack = true
                }
            }
        }
    }

    /// Runs one attempt of the provider call in its span, cut off at the call's deadline.
    func runAttempt<Value: Sendable>(
        _ context: CallAttempt, _ operation: @escaping @Sendable (CallAttempt) async throws -> CallOutcome<Value>
    ) async throws -> CallOutcome<Value> {
        try await traced("sluice.attempt") { span in
            span.attributes["sluice.attempt"] = context.number
            return try await withDeadline(
                context.deadline,
                onTimeout: { BackpressureError(.deadlineExceeded, "the call did not finish before its deadline") }
            ) { try await operation(context) }
        }
    }

    /// The refusal of a retry by the scope's spent retry budget.
    static func retryBudgetSpent(
        _ verdict: RetryBudget.Verdict, _ call: ProviderCall, _ failure: ProviderFailure
    ) -> BackpressureError {
        BackpressureError(
            .retryBudgetExhausted,
            "the retry budget of \(call.scope) is spent (\(Int(verdict.retries)) retries for "
                + "\(Int(verdict.requests)) requests); last failure: \(failure.message)")
    }

    /// The usage to settle after the last attempt. A provider failure names what it used; what it does not name,
    /// it did not use. Otherwise (`known` false: the call did not say) the estimate stays for what is not named.
    static func settled(_ usage: Cost, known: Bool, _ call: ProviderCall) -> Cost {
        guard known else { return usage }
        var settled = usage
        for resource in call.estimate.amounts.keys where settled.amounts[resource] == nil { settled[resource] = 0 }
        return settled
    }

    /// The Redis-side parts of one call in the layer's partition: its scope's queue, its dependency's breaker,
    /// its scope's retry budget and, with a concurrency limit, its lease pool, whose slots follow the reconciler's
    /// overload cuts of `path` when one is given.
    func parts(of call: ProviderCall, followingReconcilerOn path: ScopePath?) -> (
        queue: AdmissionQueue, breaker: CircuitBreaker, budget: RetryBudget, pool: LeasePool?
    ) {
        let partition = configuration.partition
        let queue = AdmissionQueue(
            redis: redis, partition: partition, scope: call.scope, configuration: configuration.queue,
            namespace: namespace)
        let breaker = CircuitBreaker(
            redis: redis, partition: partition, name: call.dependency, configuration: configuration.breaker,
            namespace: namespace, logger: logger)
        let budget = RetryBudget(
            redis: redis, partition: partition, scope: call.scope, configuration: configuration.retryBudget,
            namespace: namespace, logger: logger)
        let pool = call.concurrency.map { slots in
            let pool = LeasePool(
                redis: redis, partition: partition, scope: call.scope, slots: slots, ttl: configuration.leaseTTL,
                holder: configuration.holder, namespace: namespace, logger: logger)
            guard let reconciler, let path else { return pool }
            return pool.following(reconciler, path: path)
        }
        return (queue, breaker, budget, pool)
    }

    private func run<Value: Sendable>(
        _ call: ProviderCall, logger: Logger,
        _ operation: @escaping @Sendable (CallAttempt) async throws -> CallOutcome<Value>
    ) async throws -> CallResult<Value> {
        do {
            return try await runOnce(call, logger: logger, operation)
        } catch is PartitionSplit {
            // Refused with nothing taken: the partition was split since this process read its layout (read again
            // now), and the call's route changes with it. The provider was not called.
            do {
                return try await runOnce(call, logger: logger, operation)
            } catch is PartitionSplit {
                throw BackpressureError(.redisError, "the shard layout of the call's partition changed twice during it")
            }
        }
    }

    private func runOnce<Value: Sendable>(
        _ call: ProviderCall, logger: Logger,
        _ operation: @escaping @Sendable (CallAttempt) async throws -> CallOutcome<Value>
    ) async throws -> CallResult<Value> {
        let tree = TreeContext.current
        let started = ContinuousClock.now
        let deadline = ContinuousClock.Instant.earliest(
            started + (call.timeout ?? configuration.defaultTimeout), tree?.deadlineInstant)!
        guard started < deadline else {
            throw BackpressureError(.deadlineExceeded, "the deadline passed before the call started")
        }
        // A sharded root's decisions go to the tenant's shard, another slot than the partition's queue, breaker and
        // pool: known before choosing the route (the limiter caches it), they take the route of separate trips.
        if let limiter, let path = call.quotaPath { _ = try? await limiter.shardLayout(path) }
        if let route = twoTrips(for: call, tree: tree) {
            return try await runInTwoTrips(call, route, tree: tree, deadline: deadline, logger: logger, operation)
        }
        // Otherwise (no quota path, or parts in other partitions) each stage is a round trip of its own.
        var step = Steps(owner: self, deadline: deadline, logger: logger)
        let id = TreeContext.newID()
        // Overloads cut the partition's concurrency share; the pool's slots follow it when its key shares the
        // reconciler's hash slot (the same partition), so that the script may read both on Redis Cluster.
        let followed = call.quotaPath.flatMap { path in
            reconciler?.limiter.sharesPartition(with: configuration.partition, path: path) == true ? path : nil
        }
        let (queue, breaker, budget, pool) = parts(of: call, followingReconcilerOn: followed)
        let trees = self.trees
        let maxCallDuration = configuration.maxCallDuration
        let metrics = self.metrics
        let dependency = call.dependency

        // Admission: each stage undoes what the earlier ones took when a later one refuses. The steps that take
        // something await their reply: a caller cancelled while one is in flight still learns what it took (the next
        // step, or the first attempt, throws its cancellation), and gives it back below.
        var admitted = Admitted()
        var admittedAt = ContinuousClock.now
        metrics.startedWaiting()
        do {
            if try await traced(
                "sluice.queue",
                { _ in
                    try await step.run(awaitingReply: true) {
                        try await queue.enter(callerID: id, patience: deadline - .now)
                    }
                }) != nil
            {
                admitted.queued = true
            }
            // With a quota path in the tree's partition, one script decides both (the tree's checks
            // and writes join the quota's): no refund window in which the tree looks fuller than it is.
            let together = tree.flatMap { tree in
                call.quotaPath.flatMap { path in
                    limiter.flatMap { Self.decideTogether($0, path, tree, call, ttl: maxCallDuration) }
                }
            }
            if let tree, together == nil {
                admitted.ticket = try await traced("sluice.tree") { _ in
                    try await step.run(awaitingReply: true) {
                        try await trees.enter(
                            tree, callID: id, estimate: call.estimate, tool: call.tool, arguments: call.arguments,
                            ttl: maxCallDuration)
                    }
                }
            }
            if let limiter, let path = call.quotaPath {
                admitted.reservation = try await traced("sluice.quota") { _ in
                    try await schedule(limiter, path, call, tree: tree, together: together, step: &step)
                }
                admittedAt = .now  // the admission's wait is over: its sendsAt is about now
            }
            if let pool {
                admitted.lease = try await traced("sluice.lease") { _ in try await acquire(pool, step: &step) }
                if admitted.lease != nil { metrics.tookLease() }
            }
            if admitted.queued {
                _ = try await step.run { try await queue.leave(callerID: id, admitted: true, callTTL: maxCallDuration) }
            }
        } catch {
            metrics.stoppedWaiting()
            await release(admitted, ran: false, usage: [:], call: call, queue: queue, pool: pool, step: &step, id: id)
            throw error
        }
        metrics.stoppedWaiting()
        metrics.admissionWait.recordNanoseconds((ContinuousClock.now - started).nanosecondsClamped)
        metrics.startedRunning()
        defer { metrics.stoppedRunning() }

        // Attempts.
        let heartbeat = admitted.lease.map { lease in Task { await pool!.keepAlive(lease) } }
        defer { heartbeat?.cancel() }
        // What the provider said goes to the reconciler, timed by the admission (which gates its cuts).
        let admittedInRedis = admitted.reservation?.decision.decidedAt
        func report(_ observation: ProviderObservation?, of attempt: CallAttempt, step: inout Steps) async {
            guard let reconciler, let path = call.quotaPath, let observation else { return }
            _ = try? await step.run {
                try await reconciler.record(
                    observation, path: path, sentAt: attempt.sentAt, admittedAt: admittedInRedis)
            }
        }
        var attempt = 0
        var usage: Cost = [:]
        var ran = false  // whether the operation ran at all (else the admission is given back)
        var usageKnown = false  // whether the last failure said what it used (else the estimate stays)
        do {
            while true {
                attempt += 1
                if attempt == 1 {
                    _ = try await step.run { try await budget.recordRequest() }
                }
                let permit: CircuitBreaker.Permit?
                do {
                    permit = try await step.run { try await breaker.permit() }
                } catch let error as BackpressureError where error.code == .breakerOpen {
                    metrics.breaker(dependency, is: .open)
                    throw error
                }
                if let permit { metrics.breaker(dependency, is: permit.state) }
                let context = CallAttempt(
                    call: call, number: attempt, deadline: deadline, isProbe: permit?.isProbe ?? false,
                    degraded: step.degraded, tree: tree,
                    sentAt: admitted.reservation.map { $0.decision.sendsAt + (.now - admittedAt).milliseconds },
                    admittedAt: admitted.reservation?.decision.decidedAt)
                ran = true
                do {
                    let outcome = try await runAttempt(context, operation)
                    metrics.response(success: true, observation: outcome.observation)
                    if let permit, let state = try? await step.run({ try await breaker.record(permit, success: true) })
                    {
                        metrics.breaker(dependency, is: state)
                    }
                    await report(outcome.observation, of: context, step: &step)
                    usage = outcome.usage
                    heartbeat?.cancel()
                    await release(
                        admitted, ran: true, usage: usage, call: call, queue: queue, pool: pool, step: &step, id: id)
                    return CallResult(
                        value: outcome.value, usage: usage, attempts: attempt, call: call, fellBack: false,
                        degraded: step.degraded)
                } catch {
                    let failure = error as? ProviderFailure
                    let timedOut = (error as? BackpressureError)?.code == .deadlineExceeded
                    if failure != nil { metrics.response(success: false, observation: failure?.observation) }
                    if let permit, failure?.countsAgainstBreaker ?? true,
                        let state = try? await step.run({ try await breaker.record(permit, success: false) })
                    {
                        metrics.breaker(dependency, is: state)
                    }
                    await report(failure?.observation, of: context, step: &step)
                    usage = failure?.usage ?? [:]
                    usageKnown = failure != nil
                    guard !timedOut, let failure, failure.retryable, attempt < call.maxAttempts else { throw error }
                    guard
                        let pause = configuration.backoff.delay(
                            attempt: attempt - 1, retryAfter: failure.retryAfter, deadline: deadline)
                    else {
                        throw BackpressureError(
                            .deadlineExceeded,
                            "no time left to retry before the deadline (last failure: \(failure.message))")
                    }
                    let verdict = try await step.run { try await budget.allowRetry() }
                    if let verdict, !verdict.allowed {
                        metrics.retryBudgetRefused()
                        throw Self.retryBudgetSpent(verdict, call, failure)
                    }
                    try await Task.sleep(for: pause)
                }
            }
        } catch {
            heartbeat?.cancel()
            await release(
                admitted, ran: ran, usage: Self.settled(usage, known: usageKnown, call), call: call, queue: queue,
                pool: pool, step: &step, id: id)
            throw error
        }
    }

    /// The tree call to decide with the quota path, when both live in one partition (one hash tag)
    /// and the call's ttl is one decide.lua takes (else the tree is entered on its own, as before).
    static func decideTogether(
        _ limiter: Limiter, _ path: ScopePath, _ tree: TreeContext, _ call: ProviderCall, ttl: Duration
    ) -> TreeCall? {
        guard limiter.sharesSlot(with: tree, path: path), ttl >= .milliseconds(1),
            ttl <= .seconds(7 * 86_400)
        else { return nil }
        return TreeCall(tree, tool: call.tool, arguments: call.arguments, ttl: ttl)
    }

    private func schedule(
        _ limiter: Limiter, _ path: ScopePath, _ call: ProviderCall, tree: TreeContext?, together: TreeCall?,
        step: inout Steps
    ) async throws -> Reservation? {
        let cost = call.estimate
        let maxWait = max(.zero, step.deadline - .now)
        let priority = tree?.priority ?? .interactive
        let admission = try await step.run(awaitingReply: true) {
            do {
                return try await limiter.schedule(
                    path, cost: cost, maxWait: maxWait, priority: priority, tree: together)
            } catch let error as QuotaError {
                if error.underlying is PartitionSplit { throw PartitionSplit() }  // the call starts again
                throw error.redisError ?? error  // a Redis failure is an outage, for the failure policy
            }
        }
        guard let admission else { return nil }
        metrics.decision(admission.decision)
        await reportWarnings(admission.decision, step: &step)
        guard admission.allowed else { throw refusal(admission.decision, call: call, together: together) }
        try await admission.proceed()
        return admission.reservation
    }

    /// Operators' invalid config that a decision ignored goes to the event stream (rate-limited per worker).
    func reportWarnings(_ decision: Decision, step: inout Steps) async {
        limiter?.log(decision.warnings)  // throttled there: a decision the limiter ran itself is logged once
        guard !decision.warnings.isEmpty, shouldReport(decision.warnings) else { return }
        let log = EventLog(redis: redis, namespace: namespace)
        let detail = decision.warnings.map(\.description).joined(separator: "; ")
        _ = try? await step.run {
            try await log.record(
                partition: self.configuration.partition, type: "invalid-config", fields: [("detail", detail)])
        }
    }

    /// The error a refused decision becomes: the tree's refusal, or the quota's.
    func refusal(_ decision: Decision, call: ProviderCall, together: TreeCall?) -> BackpressureError {
        if let together, let refusal = decision.treeRefusal(together) { return refusal }
        let denied = decision.deniedBy.map { "\($0.scope) \($0.resource) \($0.kind)" } ?? "a limit"
        return BackpressureError(
            .quotaDenied, "the quota \(denied) refused \(call.scope)",
            retryAfter: decision.retryable ? decision.retryAfter : nil)
    }

    private func acquire(_ pool: LeasePool, step: inout Steps) async throws -> Lease? {
        var attempt = 0
        let backoff = RetryBackoff(initial: .milliseconds(10), maximum: .milliseconds(500))
        while true {
            guard let outcome = try await step.run(awaitingReply: true, { try await pool.tryAcquire() }) else {
                return nil
            }
            switch outcome {
            case .acquired(let lease):
                return lease
            case .busy(let held, let earliest):
                let now = ContinuousClock.now
                let pause = min(backoff.delay(attempt: attempt), earliest + .milliseconds(1))
                guard now + pause < step.deadline else {
                    throw BackpressureError(
                        .leaseUnavailable, "all \(held) slots of \(pool.scope) stay held past the deadline",
                        retryAfter: earliest)
                }
                attempt += 1
                try await Task.sleep(for: pause)
            }
        }
    }

    private func release(
        _ admitted: Admitted, ran: Bool, usage: Cost, call: ProviderCall, queue: AdmissionQueue,
        pool: LeasePool?, step: inout Steps, id: String
    ) async {
        _ = try? await traced("sluice.settle") { _ in
            await settle(admitted, ran: ran, usage: usage, call: call, queue: queue, pool: pool, step: &step, id: id)
        }
    }

    private func settle(
        _ admitted: Admitted, ran: Bool, usage: Cost, call: ProviderCall, queue: AdmissionQueue,
        pool: LeasePool?, step: inout Steps, id: String
    ) async {
        let trees = self.trees
        if let ticket = admitted.ticket {
            _ = try? await step.cleanup {
                ran ? try await trees.settle(ticket, usage: usage) : try await trees.refund(ticket)
            }
        }
        if let reservation = admitted.reservation {
            // As on the tree: a resource the usage does not name keeps its estimate.
            let actual = call.estimate.merging(usage)
            _ = try? await step.cleanup {
                ran ? try await reservation.settle(actual: actual) : try await reservation.cancel()
            }
        }
        if let lease = admitted.lease, let pool {
            _ = try? await step.cleanup { try await pool.release(lease) }
            metrics.gaveLease()
        }
        if admitted.queued {
            _ = try? await step.cleanup {
                if ran {
                    try await queue.finish(callerID: id)
                } else {
                    try await queue.leave(callerID: id, admitted: false, callTTL: .seconds(1))
                }
            }
        }
    }
}

/// What a call has taken so far, to be given back.
private struct Admitted {
    var queued = false
    var ticket: TreeTicket?
    var reservation: Reservation?
    var lease: Lease?
}

/// The Redis steps of one call: each bounded by the deadline and guarded by the breaker around
/// Redis; once Redis failed and the failure policy let the call on, later steps are skipped.
struct Steps {
    let owner: Backpressure
    let deadline: ContinuousClock.Instant
    /// The call's logger.
    let logger: Logger
    private(set) var degraded = false

    init(owner: Backpressure, deadline: ContinuousClock.Instant, logger: Logger) {
        self.owner = owner
        self.deadline = deadline
        self.logger = logger
    }

    /// Runs an admission step; `nil` when Redis is unavailable and the policy lets the call on.
    /// `awaitingReply`: the caller's cancellation does not abandon the step's reply, its deadline does (the caller
    /// gives back what the step took).
    mutating func run<T: Sendable>(
        awaitingReply: Bool = false, _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T? {
        if degraded { return nil }
        try Task.checkCancellation()  // a step awaiting its reply would start all the same
        do {
            return try await owner.health.perform(deadline: deadline, awaitingReply: awaitingReply, body)
        } catch let error as BackpressureError where error.code == .redisUnavailable && Task.isCancelled {
            throw CancellationError()  // it waited for Redis after the caller stopped: no failure policy for it
        } catch let error as BackpressureError where error.code == .redisUnavailable {
            try await owner.applyFailurePolicy(error, deadline: deadline, logger: logger)
            degraded = true
            return nil
        } catch let error as QuotaError {
            // One error type out of Backpressure.call: the quota's own error stays underneath.
            let code: BackpressureError.Code =
                error.code == .redis || error.code == .unexpectedReply ? .redisError : .invalidArgument
            throw BackpressureError(code, error.message, underlying: error)
        } catch let error as RedisError {
            throw BackpressureError(.redisError, "Redis answered with an error: \(error.code)", underlying: error)
        }
    }

    /// Runs a bookkeeping step after the call (best effort, bounded by the step timeout only).
    /// Shielded from the caller's cancellation: a cancelled call still gives back what it took (its lease, its
    /// queue slot, its reservation) once its operation has stopped.
    ///
    /// The caller waits for its bookkeeping until the deadline, or ``cleanupGrace`` after the first cleanup step
    /// when that starts at or past the deadline — never longer: when Redis is stopped or slow, the steps finish on
    /// their own in the background (and what they give back expires by itself if they fail), so that no call
    /// returns more than the grace after its deadline (the chaos soak found calls 100-340 ms late after a SIGSTOP).
    func cleanup<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T? {
        if degraded { return nil }
        let health = owner.health
        let limit = cleanupWindow.limit(deadline: deadline)
        // A cancelled caller waits as well (within the same limit): it returns with what it took given back.
        return try await withDeadlineAbandoning(
            limit, shielded: true,
            onTimeout: { RedisError(.timeout, "the call's bookkeeping goes on in the background") }
        ) { try await health.perform(deadline: .now + health.configuration.stepTimeout, body) }
    }

    /// How long past its deadline a call waits for its bookkeeping at most.
    static let cleanupGrace: Duration = .milliseconds(50)
    private let cleanupWindow = CleanupWindow()
}

/// When a call stops waiting for its bookkeeping: fixed by its first cleanup step, shared by the later ones.
private final class CleanupWindow: Sendable {
    private let fixed = SluiceMutex<ContinuousClock.Instant?>(nil)

    func limit(deadline: ContinuousClock.Instant) -> ContinuousClock.Instant {
        fixed.withLock { fixed in
            if let fixed { return fixed }
            let limit = Swift.max(deadline, .now + Steps.cleanupGrace)
            fixed = limit
            return limit
        }
    }
}
