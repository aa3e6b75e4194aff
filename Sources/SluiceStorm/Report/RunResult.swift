/// Everything one run of one scenario in one mode produced: the provider's time series (the ground truth) and
/// the workers' records.
public struct RunResult: Sendable {
    public var scenario: Scenario
    public var mode: StormMode
    /// A run without the scenario's `baseline_without` tenants, for `light_p99_baseline_ms`.
    public var isBaseline: Bool
    public var provider: [ProviderRecorder.Bin]
    public var calls: [CallRecord]
    /// Per bin, the calls waiting fleet-wide (summed over workers' peaks).
    public var waiting: [Int]
    /// Worker failures: a worker that crashed, exited non-zero or reported an error.
    public var workerFailures: [String]
    /// The sluice mode's global ceiling per bin (tokens per second), when the gate reported one.
    public var ceiling: [Double?]
    /// What the run asked of Redis, when the server's statistics could be read.
    public var redisCost: RedisCost?

    public init(
        scenario: Scenario, mode: StormMode, isBaseline: Bool, provider: [ProviderRecorder.Bin], calls: [CallRecord],
        waiting: [Int], workerFailures: [String], ceiling: [Double?] = [], redisCost: RedisCost? = nil
    ) {
        self.scenario = scenario
        self.mode = mode
        self.isBaseline = isBaseline
        self.provider = provider
        self.calls = calls
        self.waiting = waiting
        self.workerFailures = workerFailures
        self.ceiling = ceiling
        self.redisCost = redisCost
    }
}
