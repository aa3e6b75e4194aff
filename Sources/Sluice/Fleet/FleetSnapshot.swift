/// What Redis holds about one partition at one moment, read by ``FleetReader``: the queues, leases,
/// breakers, the reconciler's ceiling, shadow counters, the trees spending most and the recent events.
///
/// Read only, and approximate where the fleet keeps no total: it is what `sluice top` shows and what
/// `sluice serve` exports to Prometheus.
package struct FleetSnapshot: Sendable {
    /// One scope's queue and leases (``AdmissionQueue``, ``LeasePool``).
    package struct Scope: Sendable, Hashable {
        /// The scope's name, as the calls give it (say `openai/gpt-4o`).
        package var name: String
        /// Callers waiting for admission (or for their scheduled time).
        package var waiting: Int
        /// Admitted calls still running.
        package var inFlight: Int
        /// Concurrency leases held now. The slots themselves are each worker's configuration, not kept in Redis.
        package var leasesHeld: Int
        /// Leases granted since the pool's key was created (its fencing counter).
        package var leasesGranted: Int64
    }

    /// One circuit breaker (``CircuitBreaker``).
    package struct Breaker: Sendable, Hashable {
        /// The dependency's name.
        package var name: String
        /// The state as stored; an open breaker whose cool-down is over turns half-open on its next call.
        package var state: CircuitBreaker.State
        /// Until when an open breaker refuses calls (ms since 1970).
        package var openUntil: Int64?
        /// Calls and failures counted in the breaker's recent window (closed only).
        package var calls: Int64
        package var failures: Int64
        /// Probe calls in flight (half-open only).
        package var probes: Int
        /// How often it opened while its key lived.
        package var timesOpened: Int64
    }

    /// One request tree (``RequestTrees``): what it spent or holds reserved, against its budgets.
    package struct Tree: Sendable, Hashable {
        package var id: String
        /// Spent or reserved, per resource.
        package var spent: [String: Int64]
        /// Budgets, per resource (0: unlimited).
        package var budgets: [String: Int64]
        /// Its calls in flight.
        package var callsInFlight: Int
        /// Its deadline (ms since 1970), if any.
        package var deadline: Int64?
    }

    /// Would-deny counts of shadow limits, summed per scope kind, resource and limit kind.
    package struct ShadowCount: Sendable, Hashable {
        package var scopeKind: String
        package var resource: String
        package var limitKind: String
        package var count: Int64
    }

    /// The partition (its hash tag, unescaped).
    package var partition: String
    /// Redis' time when read (ms since 1970).
    package var now: Int64
    /// Scopes with a queue or a lease pool, by name.
    package var scopes: [Scope]
    /// Breakers, by name.
    package var breakers: [Breaker]
    /// The reconciler's state of each root scope that has one.
    package var reconciler: [ReconcilerStatus]
    /// Shadow limits' would-deny counters.
    package var shadow: [ShadowCount]
    /// Request trees whose keys live now.
    package var treesOpen: Int
    /// How many of them were read (at most ``FleetReader/Configuration/maxTrees``): the top trees are among these.
    package var treesRead: Int
    /// The trees spending most (by their largest spent resource), at most ``FleetReader/Configuration/topTrees``.
    package var topTrees: [Tree]
    /// Workers whose registration is live.
    package var workers: Int
    /// Entries in the event stream (capped at ``EventLog/maximumLength``).
    package var streamLength: Int
    /// The last events, oldest first.
    package var recentEvents: [SluiceEvent]
    /// Whether the key scan stopped at its budget, or more scopes or breakers existed than were read: the
    /// snapshot then covers part of the partition.
    package var truncated: Bool
}
