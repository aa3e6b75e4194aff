import CoreMetrics
import SluiceRedis

/// ``Backpressure``'s metrics, created once per layer on the factory it was given (by default the application's
/// bootstrapped backend). Every dimension is bounded: the partition, the failure policy's kind, a result, a limit
/// kind, a scope kind, a resource name, a response class, a breaker state. Never a tenant, a tree or a scope name.
///
/// | Metric | Type | Dimensions |
/// |---|---|---|
/// | `sluice_decisions_total` | counter | partition, result (`admitted`, `denied`), limit_kind, scope_kind, resource |
/// | `sluice_admission_wait_seconds` | timer | partition |
/// | `sluice_worker_calls_waiting`, `sluice_worker_calls_in_flight` | gauge | partition |
/// | `sluice_worker_leases_held` | gauge | partition |
/// | `sluice_worker_breakers` | gauge | partition, state (dependencies last seen in it) |
/// | `sluice_breaker_transitions_total` | counter | partition, state (the new one) |
/// | `sluice_retry_budget_refusals_total` | counter | partition |
/// | `sluice_provider_responses_total` | counter | partition, class (`ok`, `quota` = 429, `overload`, `do_not_retry`, `error`) |
/// | `sluice_worker_ceiling_share` | gauge | partition (this worker's local-fallback rate, calls/s) |
/// | `sluice_redis_degraded` | gauge | partition, policy (1 while Redis is unavailable) |
/// | `sluice_redis_outages_total` | counter | partition, policy |
/// | `sluice_degraded_seconds_total` | floating-point counter | partition, policy (grows during an outage, at failed trials and at most once a second while steps are skipped) |
/// | `sluice_failure_policy_decisions_total` | counter | partition, policy, result (`admitted`, `refused`) |
final class BackpressureMetrics: Sendable {
    private let factory: any MetricsFactory
    private let partition: String
    let policy: String

    let admissionWait: Timer
    private let waiting: Gauge
    private let inFlight: Gauge
    private let leasesHeld: Gauge
    private let retryBudgetRefusals: Counter
    private let ceilingShare: Gauge
    private let redisDegraded: Gauge
    private let outages: Counter
    private let degradedSeconds: FloatingPointCounter
    private let policyAdmitted: Counter
    private let policyRefused: Counter
    private let breakerGauges: [String: Gauge]

    private struct Counts {
        var waiting = 0
        var inFlight = 0
        var leases = 0
        /// Each dependency's breaker state, as this worker last saw it.
        var breakers: [String: CircuitBreaker.State] = [:]
    }
    private let counts = SluiceMutex(Counts())
    /// The counters whose dimensions are known only when they happen, made once each.
    private let labelled = SluiceMutex<[String: Counter]>([:])

    static let breakerStates: [CircuitBreaker.State] = [.closed, .open, .halfOpen]

    init(factory: any MetricsFactory, partition: String, policy: FailurePolicy) {
        self.factory = factory
        self.partition = partition
        switch policy.kind {
        case .closed: self.policy = "fail_closed"
        case .open: self.policy = "fail_open"
        case .fallback: self.policy = "local_fallback"
        }
        let p = [("partition", partition)]
        let pp = p + [("policy", self.policy)]
        admissionWait = Timer(label: "sluice_admission_wait_seconds", dimensions: p, factory: factory)
        waiting = Gauge(label: "sluice_worker_calls_waiting", dimensions: p, factory: factory)
        inFlight = Gauge(label: "sluice_worker_calls_in_flight", dimensions: p, factory: factory)
        leasesHeld = Gauge(label: "sluice_worker_leases_held", dimensions: p, factory: factory)
        retryBudgetRefusals = Counter(label: "sluice_retry_budget_refusals_total", dimensions: p, factory: factory)
        ceilingShare = Gauge(label: "sluice_worker_ceiling_share", dimensions: p, factory: factory)
        redisDegraded = Gauge(label: "sluice_redis_degraded", dimensions: pp, factory: factory)
        outages = Counter(label: "sluice_redis_outages_total", dimensions: pp, factory: factory)
        degradedSeconds = FloatingPointCounter(label: "sluice_degraded_seconds_total", dimensions: pp, factory: factory)
        policyAdmitted = Counter(
            label: "sluice_failure_policy_decisions_total", dimensions: pp + [("result", "admitted")], factory: factory)
        policyRefused = Counter(
            label: "sluice_failure_policy_decisions_total", dimensions: pp + [("result", "refused")], factory: factory)
        var gauges: [String: Gauge] = [:]
        for state in Self.breakerStates {
            gauges[state.description] = Gauge(
                label: "sluice_worker_breakers", dimensions: p + [("state", state.description)], factory: factory)
        }
        breakerGauges = gauges
        redisDegraded.record(0)
    }

    private func counter(_ label: String, _ dimensions: [(String, String)]) -> Counter {
        let all = [("partition", partition)] + dimensions
        let key = label + "|" + all.map { "\($0.0)=\($0.1)" }.joined(separator: ",")
        return labelled.withLock { made in
            if let counter = made[key] { return counter }
            let counter = Counter(label: label, dimensions: all, factory: factory)
            made[key] = counter
            return counter
        }
    }

    // MARK: Calls

    /// A quota decision: admitted, or denied by a limit (its kind, its scope's kind and its resource).
    func decision(_ decision: Decision) {
        if decision.allowed {
            counter("sluice_decisions_total", [("result", "admitted")]).increment()
        } else {
            let limit = decision.deniedBy
            counter(
                "sluice_decisions_total",
                [
                    ("result", "denied"), ("limit_kind", limit.map { "\($0.kind)" } ?? "none"),
                    ("scope_kind", limit?.scope.kind ?? "none"), ("resource", limit?.resource ?? "none"),
                ]
            ).increment()
        }
    }

    /// A call started waiting for its admission.
    func startedWaiting() { adjust(\.waiting, by: 1, gauge: waiting) }
    /// A call's admission ended (admitted or not).
    func stoppedWaiting() { adjust(\.waiting, by: -1, gauge: waiting) }
    /// A call's operation started running.
    func startedRunning() { adjust(\.inFlight, by: 1, gauge: inFlight) }
    /// A call's operation ended (for good: all its attempts).
    func stoppedRunning() { adjust(\.inFlight, by: -1, gauge: inFlight) }
    /// A concurrency lease was taken.
    func tookLease() { adjust(\.leases, by: 1, gauge: leasesHeld) }
    /// A concurrency lease was given back (or given up).
    func gaveLease() { adjust(\.leases, by: -1, gauge: leasesHeld) }

    private func adjust(_ field: WritableKeyPath<Counts, Int>, by delta: Int, gauge: Gauge) {
        // Recorded under the lock: two changes cannot reach the gauge in the other order.
        counts.withLock { counts in
            counts[keyPath: field] += delta
            gauge.record(counts[keyPath: field])
        }
    }

    /// A breaker's state as a permit, a refusal or a recorded outcome showed it.
    func breaker(_ dependency: String, is state: CircuitBreaker.State) {
        counts.withLock { counts in
            let previous = counts.breakers[dependency]
            guard previous != state else { return }
            if counts.breakers.count >= 1_000, previous == nil { return }  // dependencies come from code: bounded
            counts.breakers[dependency] = state
            if previous != nil {
                counter("sluice_breaker_transitions_total", [("state", state.description)]).increment()
            }
            for known in Self.breakerStates {
                breakerGauges[known.description]?.record(counts.breakers.values.count { $0 == known })
            }
        }
    }

    /// What one attempt's provider answered: its observation's class, `ok` for a success without one, `error` for a
    /// failure without one.
    func response(success: Bool, observation: ProviderObservation?) {
        let name = observation?.responseClass.name ?? (success ? "ok" : "error")
        counter("sluice_provider_responses_total", [("class", name)]).increment()
    }

    func retryBudgetRefused() { retryBudgetRefusals.increment() }

    func ceiling(share: Double) { ceilingShare.record(share) }

    // MARK: Redis

    func redisHealth(_ transition: RedisHealth.Transition) {
        switch transition {
        case .degraded:
            outages.increment()
            redisDegraded.record(1)
        case .stillDegraded(let degradedFor):
            degradedSeconds.increment(by: degradedFor.inSeconds)
        case .recovered(_, let degradedFor):
            degradedSeconds.increment(by: degradedFor.inSeconds)
            redisDegraded.record(0)
        }
    }

    func failurePolicy(admitted: Bool) {
        (admitted ? policyAdmitted : policyRefused).increment()
    }
}
