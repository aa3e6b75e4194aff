/// What Redis holds about one partition at one moment, read by ``FleetReader``: the queues, leases,
/// breakers, the reconciler's ceiling, shadow counters, the trees spending most and the recent events.
///
/// Read only, and approximate where the fleet keeps no total: it is what `sluice top` shows and what
/// `sluice serve` exports to Prometheus.
public struct FleetSnapshot: Sendable {
    /// One scope's queue and leases (``AdmissionQueue``, ``LeasePool``).
    public struct Scope: Sendable, Hashable {
        /// The scope's name, as the calls give it (say `openai/gpt-4o`).
        public var name: String
        /// Callers waiting for admission (or for their scheduled time).
        public var waiting: Int
        /// Admitted calls still running.
        public var inFlight: Int
        /// Concurrency leases held now. The slots themselves are each worker's configuration, not kept in Redis.
        public var leasesHeld: Int
        /// Leases granted since the pool's key was created (its fencing counter).
        public var leasesGranted: Int64
    }

    /// One circuit breaker (``CircuitBreaker``).
    public struct Breaker: Sendable, Hashable {
        /// The dependency's name.
        public var name: String
        /// The state as stored; an open breaker whose cool-down is over turns half-open on its next call.
        public var state: CircuitBreaker.State
        /// Until when an open breaker refuses calls (ms since 1970).
        public var openUntil: Int64?
        /// Calls and failures counted in the breaker's recent window (closed only).
        public var calls: Int64
        public var failures: Int64
        /// Probe calls in flight (half-open only).
        public var probes: Int
        /// How often it opened while its key lived.
        public var timesOpened: Int64
    }

    /// One request tree (``RequestTrees``): what it spent or holds reserved, against its budgets.
    public struct Tree: Sendable, Hashable {
        public var id: String
        /// Spent or reserved, per resource.
        public var spent: [String: Int64]
        /// Budgets, per resource (0: unlimited).
        public var budgets: [String: Int64]
        /// Its calls in flight.
        public var callsInFlight: Int
        /// Its deadline (ms since 1970), if any.
        public var deadline: Int64?
    }

    /// Would-deny counts of shadow limits, summed per scope kind, resource and limit kind.
    public struct ShadowCount: Sendable, Hashable {
        public var scopeKind: String
        public var resource: String
        public var limitKind: String
        public var count: Int64
    }

    /// The partition (its hash tag, unescaped).
    public var partition: String
    /// Redis' time when read (ms since 1970).
    public var now: Int64
    /// Scopes with a queue or a lease pool, by name.
    public var scopes: [Scope]
    /// Breakers, by name.
    public var breakers: [Breaker]
    /// The reconciler's state of each root scope that has one.
    public var reconciler: [ReconcilerStatus]
    /// Shadow limits' would-deny counters.
    public var shadow: [ShadowCount]
    /// Request trees whose keys live now.
    public var treesOpen: Int
    /// How many of them were read (at most ``FleetReader/Configuration/maxTrees``): the top trees are among these.
    public var treesRead: Int
    /// The trees spending most (by their largest spent resource), at most ``FleetReader/Configuration/topTrees``.
    public var topTrees: [Tree]
    /// Workers whose registration is live.
    public var workers: Int
    /// Entries in the event stream (capped at ``EventLog/maximumLength``).
    public var streamLength: Int
    /// The last events, oldest first.
    public var recentEvents: [SluiceEvent]
    /// Whether the key scan stopped at its budget, or more scopes or breakers existed than were read: the
    /// snapshot then covers part of the partition.
    public var truncated: Bool
}
