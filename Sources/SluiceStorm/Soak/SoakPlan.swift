/// The chaos soak's limits, small and simple enough that its ledger can check them exactly (``SoakCheck``): token
/// buckets without debt or headroom, so that what a bucket admits in any interval `[a, b]` is at most
/// `burst + rate × (b − a)`, and request trees with a token budget, so that a tree's admitted tokens are at most its
/// budget. Workers, the checker and `scripts/soak.sh` (which flips the quota of ``flippedTenant``) all read them here.
public enum SoakPlan {
    /// A token bucket: `rate` units per second, holding `burst` at most, no debt.
    public struct Bucket: Sendable, Hashable, Codable {
        public var rate: Double
        public var burst: Double

        /// The spec, as the limiter and `sluice quota set` take it.
        public var spec: String { "bucket rate=\(Int(rate))/s burst=\(Int(burst)) debt=0" }
    }

    /// The root scope of every soak path, and so the partition of every key (one hash tag on Redis Cluster).
    public static let partition = "soak"
    /// Tenants whose calls go through `Backpressure.call` in request trees.
    public static let treeTenants = ["t0", "t1", "t2", "t3"]
    /// Tenants whose calls reserve through `Limiter.reserve` and settle.
    public static let reservingTenants = ["r0", "r1"]
    /// `global=soak`: requests, shared by every call of every worker.
    public static let globalRequests = Bucket(rate: 40, burst: 40)
    /// Every tenant's tokens, unless an operator says otherwise.
    public static let tenantTokens = Bucket(rate: 3_000, burst: 3_000)
    /// The tenant whose quota the chaos driver flips between ``tenantTokens`` and ``strictTenantTokens``.
    public static let flippedTenant = "t0"
    /// The flipped tenant's strict quota: a quarter of the rate, the same burst.
    public static let strictTenantTokens = Bucket(rate: 750, burst: 3_000)
    /// Each request tree's token budget.
    public static let treeBudget = 2_500
    /// Concurrency slots on the provider (fleet-wide leases).
    public static let concurrencySlots = 6
    /// The timeout of every `Backpressure.call`; a call that returns more than ``lateMargin`` after it is late.
    public static let callTimeout: Duration = .seconds(2)
    /// How long a Redis command may take (and so a `Limiter.reserve`, which is one).
    public static let commandTimeout: Duration = .milliseconds(500)
    /// How far past its deadline a call may return before it counts as late.
    public static let lateMargin: Duration = .milliseconds(100)
    /// The leases' time to live (renewed while held): a SIGKILLed worker's slots come back after it.
    public static let leaseTTL: Duration = .seconds(3)
    /// How long an admitted call counts in flight at most.
    public static let maxCallDuration: Duration = .seconds(10)

    /// The limiter's defaults per scope kind.
    public static var defaults: [String: String] {
        ["global": "requests: \(globalRequests.spec)", "tenant": "tokens: \(tenantTokens.spec)"]
    }
}
