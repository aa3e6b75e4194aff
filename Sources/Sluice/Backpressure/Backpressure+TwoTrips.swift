import Logging
import SluiceRedis
import Tracing

/// The provider call in two Redis round trips: `call-admit` joins the queue, checks the breaker, takes
/// the lease and decides the quota path with the tree, all or nothing; `call-finish` settles, records
/// the outcome, gives the lease back, leaves the queue and merges the provider's observation.
///
/// It serves every call whose quota path, queue, breaker, lease pool and tree share one partition (one
/// hash tag: one script may touch all their keys, on Redis Cluster too) on one Redis client. A call that
/// must wait learns when to proceed in the admission's reply (the quota's schedule, charged into
/// bounded debt): it sleeps, then runs, without asking again.
extension Backpressure {
    /// What the two-trip path needs: the limiter, the path and the tree call decided with it.
    struct TwoTrips {
        let limiter: Limiter
        let path: ScopePath
        let together: TreeCall?
    }

    func twoTrips(for call: ProviderCall, tree: TreeContext?) -> TwoTrips? {
        guard let limiter, let path = call.quotaPath,
            limiter.client === redis || limiter.client.configuration == redis.configuration,
            limiter.sharesPartition(with: configuration.partition, path: path)
        else { return nil }
        if let reconciler, !(reconciler.limiter === limiter || reconciler.limiter.client === limiter.client) {
            return nil
        }
        guard let tree else { return TwoTrips(limiter: limiter, path: path, together: nil) }
        guard let together = Self.decideTogether(limiter, path, tree, call, ttl: configuration.maxCallDuration)
        else { return nil }
        return TwoTrips(limiter: limiter, path: path, together: together)
    }

    func runInTwoTrips<Value: Sendable>(
        _ call: ProviderCall, _ route: TwoTrips, tree: TreeContext?, deadline: ContinuousClock.Instant,
        logger: Logger, _ operation: @escaping @Sendable (CallAttempt) async throws -> CallOutcome<Value>
    ) async throws -> CallResult<Value> {
        var step = Steps(owner: self, deadline: deadline, logger: logger)
        let redis = self.redis
        let (queue, breaker, budget, pool) = parts(of: call, followingReconcilerOn: route.path)
        let reconciler = self.reconciler
        let limiter = route.limiter
        let cost = call.estimate
        let priority = tree?.priority ?? .interactive
        let callTTL = configuration.maxCallDuration
        let metrics = self.metrics
        let dependency = call.dependency
        let started = ContinuousClock.now
        metrics.startedWaiting()
        var waiting = true
        defer { if waiting { metrics.stoppedWaiting() } }

        // 1. Admission: one round trip; again only when every lease is held (woken when one may be free), or, for a
        // batch call, at the place in line it was given (the root's buckets were as deep in debt as they may go).
        let id = Reservation.newID()
        var admitted: Admitted?
        // Whether call-admit put the caller in the queue as waiting (for a lease, or at its place in line): a refusal
        // after that takes it out again (call-admit itself only does so when it admits).
        var waitsInQueue = false
        // Whether it holds a turn in the batch line (given with its place, kept while it waits for a call slot of its
        // tree): leaving the queue gives that up too.
        var holdsTurn = false
        func leaveQueue() async {
            guard waitsInQueue || holdsTurn else { return }
            let line = holdsTurn ? priority : nil
            _ = try? await step.cleanup {
                try await queue.leave(callerID: id, admitted: false, callTTL: .seconds(1), line: line)
            }
            waitsInQueue = false
            holdsTurn = false
        }
        // One span for the admission round trip(s): queue, breaker, lease, tree and quota are decided together.
        // A caller that stops waiting without being admitted (refused, cancelled, or its wait failed) leaves the queue
        // and the line at once, in the catch below: no waiting slot (counted against the queue's most) and no turn
        // stays behind until it lapses.
        do {
            try await traced("sluice.admit") { span in
                while admitted == nil {
                    try Task.checkCancellation()
                    let asked = ContinuousClock.now
                    let request = try limiter.scheduleRequest(
                        route.path, cost: cost, maxWait: min(.seconds(86_400), max(.zero, deadline - asked)),
                        priority: priority, tree: route.together, id: id)
                    var steps = [
                        queue.admitStep(callerID: id, callTTL: callTTL, patience: deadline - asked),
                        breaker.permitStep(),
                    ]
                    if let pool { steps += [pool.acquireStep(), pool.freedStep] }
                    if priority == .batch {  // an interactive caller is better told at once than kept waiting
                        steps.append(
                            queue.lineStep(
                                priority: priority, patience: deadline - asked, callerID: id,
                                tenant: route.path.count > 1 ? route.path.scopes[1] : nil))
                    }
                    steps.append(request.step)
                    if let together = route.together {
                        steps.append(together.freed(namespace: limiter.configuration.namespace).freedStep)
                    }
                    steps.append(budget.step("count"))  // a first attempt, counted without reading the window
                    let admit = ScriptStep.composite(LuaScripts.callAdmit, steps)
                    // Awaiting its reply: a caller cancelled while the admission is in flight still reads what it took
                    // (a lease, a place, a charge), and gives it back below, instead of leaving it until it expires.
                    guard let reply = try await step.run(awaitingReply: true, { try await redis.run(admit) }) else {
                        break  // degraded
                    }
                    // Waits are counted from the reply, not from asking: the server's "now" lies between the two, so a
                    // caller never comes back (or runs) before its time (counted from asking, a caller back at its place
                    // in line could come a round trip early, find no room yet and ask once more). Unless that passes the
                    // deadline: the server gave a wait that ends by the deadline counted from asking, so it is counted
                    // from there, as the server promised, not cut short (a call started at its deadline fails at once).
                    let answered = ContinuousClock.now
                    func waited(_ wait: Duration) -> ContinuousClock.Instant {
                        answered + wait < deadline ? answered + wait : asked + wait
                    }
                    let parts = reply.array ?? []
                    guard parts.count >= 2, let status = parts[0].string else {
                        throw BackpressureError(.redisError, "call-admit replied unexpectedly")
                    }
                    switch status {
                    case "shed":
                        throw queue.overloaded(waiting: Int(parts[1].integer ?? 0))
                    case "breaker":
                        metrics.breaker(dependency, is: .open)
                        _ = try breaker.parsePermit(parts[1])
                        throw BackpressureError(
                            .breakerOpen, "the circuit breaker of \(call.dependency) refused the call")
                    case "lease":
                        guard let pool, case .busy(let held, let earliest) = try pool.parseAcquire(parts[1]) else {
                            throw BackpressureError(.redisError, "call-admit replied unexpectedly")
                        }
                        waitsInQueue = true
                        // Woken by a release (or when the earliest lease expires), not by asking again and again.
                        guard ContinuousClock.now + .milliseconds(1) < deadline else {
                            throw BackpressureError(
                                .leaseUnavailable, "all \(held) slots of \(pool.scope) stay held past the deadline",
                                retryAfter: earliest)
                        }
                        let until = min(deadline, ContinuousClock.now + earliest + .milliseconds(1))
                        do {
                            _ = try await pool.freed.wait(on: redis, until: until)
                        } catch is CancellationError {
                            throw CancellationError()
                        } catch {
                            // The wait itself failed (a pool connection): wait out the earliest expiry instead.
                            try await Task.sleep(until: until, clock: .continuous)
                        }
                        // Woken at the deadline: refused now. Asking again with no time left would time out, and a
                        // timeout counts as Redis being unreachable (it would open the health breaker for every call).
                        guard ContinuousClock.now + .milliseconds(1) < deadline else {
                            throw BackpressureError(
                                .leaseUnavailable, "all \(held) slots of \(pool.scope) stayed held until the deadline",
                                retryAfter: earliest)
                        }
                    case "line" where parts.count == 3:
                        // Its place in line: it sleeps until then and asks again, holding the place (no newcomer of
                        // its priority may take the debt promised to the line meanwhile).
                        let place = waited(.milliseconds(parts[2].integer ?? 0))
                        waitsInQueue = true
                        holdsTurn = true
                        try await Task.sleep(until: min(place, deadline), clock: .continuous)
                        guard ContinuousClock.now + .milliseconds(1) < deadline else {
                            let decision = try DecideRequest.parse(parts[1], path: route.path).decision
                            throw refusal(decision, call: call, together: route.together)
                        }
                    case "quota":
                        let decision = try DecideRequest.parse(parts[1], path: route.path).decision
                        let refused = refusal(decision, call: call, together: route.together)
                        // It waited for a lease, or at its place in line: refused now. call-admit gave its turn up
                        // already, or kept it for a caller that waits for a call slot of its tree (below): that one
                        // gives it up when it stops waiting without an answer.
                        let keepsTurn = holdsTurn && refused.code == .treeInFlight
                        holdsTurn = false
                        await leaveQueue()
                        holdsTurn = keepsTurn
                        if decision.deniedBy?.kind == .resharded {  // nothing was taken: the call goes to the shard
                            _ = try? await limiter.reloadShardLayout(route.path)  // else the next route reads it
                            throw PartitionSplit()
                        }
                        metrics.decision(decision)
                        await reportWarnings(decision, step: &step)
                        // Every call slot of the tree is taken: woken when one of its calls ends, then asks again.
                        guard refused.code == .treeInFlight, let together = route.together,
                            ContinuousClock.now + .milliseconds(1) < deadline
                        else { throw refused }
                        do {
                            _ = try await together.freed(namespace: limiter.configuration.namespace).wait(
                                on: redis, until: deadline)
                        } catch is CancellationError {
                            throw CancellationError()
                        } catch {
                            throw refused
                        }
                        // As for a lease: no asking again with no time left.
                        guard ContinuousClock.now + .milliseconds(1) < deadline else { throw refused }
                    case "admitted" where parts.count == 4:
                        let decision = try DecideRequest.parse(parts[1], path: route.path).decision
                        metrics.decision(decision)
                        await reportWarnings(decision, step: &step)
                        let reservation = Reservation(
                            id: id, path: route.path, estimate: cost, decision: decision, limiter: limiter,
                            resources: request.resources, tree: route.together, keys: request.keys)
                        var lease: Lease?
                        if let pool, case .acquired(let taken) = try pool.parseAcquire(parts[3]) {
                            lease = taken
                            metrics.tookLease()
                        }
                        let permit = try breaker.parsePermit(parts[2])
                        metrics.breaker(dependency, is: permit.state)
                        admitted = Admitted(
                            reservation: reservation, permit: permit, lease: lease, proceedAt: waited(decision.wait))
                    default:
                        throw BackpressureError(.redisError, "call-admit replied unexpectedly")
                    }
                }
                span.attributes["sluice.admitted"] = admitted != nil
                span.attributes["sluice.degraded"] = step.degraded
            }
        } catch {
            await leaveQueue()
            throw error
        }

        // 2. Everything after the provider answered, in one round trip (best effort, like any cleanup).
        // `outcome` is the last attempt's, recorded on the breaker with that attempt's `permit` (a retry's may be a
        // half-open probe, where the first attempt's was not).
        func finish(
            ran: Bool, usage: Cost, outcome: Bool?, permit: CircuitBreaker.Permit? = nil,
            observation: ProviderObservation?, sentAt: Int64?
        ) async {
            guard let admitted else { return }
            var steps: [ScriptStep] = []
            if ran {
                // A resource the usage does not name keeps its estimate.
                let actual = call.estimate.merging(usage)
                if let settle = try? admitted.reservation.settleStep(actual: actual) { steps.append(settle) }
            } else {
                steps.append(admitted.reservation.closeStep(["cancel"]))
            }
            if priority == .batch { steps.append(queue.lineCreditStep(priority: priority)) }
            var breakerReply: Int?
            if let outcome, let permit {
                breakerReply = steps.count
                steps.append(breaker.recordStep(permit, success: outcome))
            }
            if let lease = admitted.lease, let pool {
                steps.append(pool.releaseStep(lease))
                metrics.gaveLease()
            }
            steps.append(queue.finishStep(callerID: id))
            if let together = route.together {
                steps.append(together.freed(namespace: limiter.configuration.namespace).wakeStep)
            }
            if let reconciler, let observation {
                steps.append(
                    reconciler.recordStep(
                        observation, path: route.path, sentAt: sentAt,
                        admittedAt: admitted.reservation.decision.decidedAt))
            }
            let finish = ScriptStep.composite(LuaScripts.callFinish, steps)
            let replies = try? await traced("sluice.settle") { _ in
                try await step.cleanup { try await redis.run(finish) }
            }
            if let breakerReply, let parts = replies?.array, breakerReply < parts.count,
                let state = parts[breakerReply].array?.first?.string
            {
                metrics.breaker(dependency, is: CircuitBreaker.State(state))
                if let permit = admitted.permit {
                    breaker.logTransition(from: permit.state, to: CircuitBreaker.State(state))
                }
            }
            // call-finish answers one reply per step, in order: the reconciler's is the last.
            if let reconciler, let observation, let last = replies?.array?.last,
                let outcome = try? Reconciler.parseRecord(last)
            {
                reconciler.log(outcome, path: route.path, responseClass: observation.responseClass)
            }
        }

        if let admitted {
            do {
                try Task.checkCancellation()  // cancelled while admitted: it gives everything back, unsent
                // The quota's scheduled admission: charged already, the call waits its turn.
                if admitted.proceedAt > .now {
                    try await traced("sluice.quota_wait") { _ in
                        try await Task.sleep(until: admitted.proceedAt, clock: .continuous)
                    }
                }
            } catch {
                await finish(ran: false, usage: [:], outcome: nil, observation: nil, sentAt: nil)
                throw error
            }
        }
        waiting = false
        metrics.stoppedWaiting()
        metrics.admissionWait.recordNanoseconds((ContinuousClock.now - started).nanosecondsClamped)
        metrics.startedRunning()
        defer { metrics.stoppedRunning() }

        // 3. Attempts: the first one's breaker permit came with the admission.
        let heartbeat = admitted?.lease.map { lease in Task { await pool!.keepAlive(lease) } }
        defer { heartbeat?.cancel() }
        var permit = admitted?.permit
        // A retry's permit from a closed breaker comes with the failed attempt's report (see below).
        var nextPermit: CircuitBreaker.Permit?
        var attempt = 0
        var usage: Cost = [:]
        var ran = false
        var usageKnown = false
        let admittedAt = ContinuousClock.now
        while true {
            attempt += 1
            if attempt > 1, let prefetched = nextPermit {
                permit = prefetched
                nextPermit = nil
            } else if attempt > 1 {
                do {
                    permit = try await step.run { try await breaker.permit() }
                    if let permit { metrics.breaker(dependency, is: permit.state) }
                } catch {
                    if (error as? BackpressureError)?.code == .breakerOpen { metrics.breaker(dependency, is: .open) }
                    heartbeat?.cancel()
                    await finish(
                        ran: ran, usage: Self.settled(usage, known: usageKnown, call), outcome: nil,
                        observation: nil, sentAt: nil)
                    throw error
                }
            }
            let context = CallAttempt(
                call: call, number: attempt, deadline: deadline, isProbe: permit?.isProbe ?? false,
                degraded: step.degraded, tree: tree,
                sentAt: admitted.map { $0.reservation.decision.sendsAt + (.now - admittedAt).milliseconds },
                admittedAt: admitted?.reservation.decision.decidedAt)
            ran = true
            do {
                let outcome = try await runAttempt(context, operation)
                metrics.response(success: true, observation: outcome.observation)
                heartbeat?.cancel()
                usage = outcome.usage
                await finish(
                    ran: true, usage: usage, outcome: permit.map { _ in true }, permit: permit,
                    observation: outcome.observation, sentAt: context.sentAt)
                return CallResult(
                    value: outcome.value, usage: usage, attempts: attempt, call: call, fellBack: false,
                    degraded: step.degraded)
            } catch {
                let failure = error as? ProviderFailure
                if failure != nil { metrics.response(success: false, observation: failure?.observation) }
                let timedOut = (error as? BackpressureError)?.code == .deadlineExceeded
                let counts = permit != nil && (failure?.countsAgainstBreaker ?? true)
                usage = failure?.usage ?? [:]
                usageKnown = failure != nil
                let retry: Duration? = {
                    guard !timedOut, let failure, failure.retryable, attempt < call.maxAttempts else { return nil }
                    return configuration.backoff.delay(
                        attempt: attempt - 1, retryAfter: failure.retryAfter, deadline: deadline)
                }()
                guard let retry, let failure else {
                    heartbeat?.cancel()
                    await finish(
                        ran: true, usage: Self.settled(usage, known: usageKnown, call), outcome: counts ? false : nil,
                        permit: permit, observation: failure?.observation, sentAt: context.sentAt)
                    if !timedOut, let failure, failure.retryable, attempt < call.maxAttempts {
                        throw BackpressureError(
                            .deadlineExceeded,
                            "no time left to retry before the deadline (last failure: \(failure.message))")
                    }
                    throw error
                }
                // This attempt's outcome and observation, and the retry budget, in one round trip: the call goes on.
                var report: [ScriptStep] = []
                if counts, let permit { report.append(breaker.recordStep(permit, success: false)) }
                if let reconciler, let observation = failure.observation, let admitted {
                    report.append(
                        reconciler.recordStep(
                            observation, path: route.path, sentAt: context.sentAt,
                            admittedAt: admitted.reservation.decision.decidedAt))
                }
                report.append(budget.step("retry"))
                // The next attempt's permit, when the breaker is closed (a probe is asked for after the pause).
                report.append(breaker.permitStep(ifClosed: true))
                let composite = ScriptStep.composite(LuaScripts.callFinish, report)
                let verdict: RetryBudget.Verdict?
                do {
                    // call-finish runs each step on its own: the breaker's reply is the last one, the retry
                    // budget's the one before, the reconciler's (when it took part) the one before that.
                    let reconciling = reconciler != nil && failure.observation != nil && admitted != nil
                    let answer = try await step.run {
                        let replies = try await redis.run(composite).array ?? []
                        if reconciling, let reconciler, let observation = failure.observation, replies.count >= 3,
                            let outcome = try? Reconciler.parseRecord(replies[replies.count - 3])
                        {
                            reconciler.log(outcome, path: route.path, responseClass: observation.responseClass)
                        }
                        let verdict = try budget.verdict(from: replies.count >= 2 ? replies[replies.count - 2] : .null)
                        return (verdict, breaker.parsePermitIfClosed(replies.last ?? .null))
                    }
                    verdict = answer?.0
                    nextPermit = answer?.1
                    if let verdict, !verdict.allowed {
                        metrics.retryBudgetRefused()
                        throw Self.retryBudgetSpent(verdict, call, failure)
                    }
                    try await Task.sleep(for: retry)
                } catch {
                    heartbeat?.cancel()
                    await finish(
                        ran: true, usage: Self.settled(usage, known: true, call), outcome: nil, observation: nil,
                        sentAt: nil)
                    throw error
                }
            }
        }
    }
}

/// What one call's admission took, to be given back by `call-finish`.
private struct Admitted: Sendable {
    let reservation: Reservation
    let permit: CircuitBreaker.Permit?
    let lease: Lease?
    let proceedAt: ContinuousClock.Instant
}
