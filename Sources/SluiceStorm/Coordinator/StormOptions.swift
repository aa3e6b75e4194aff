/// What `sluice storm` runs, and where.
public struct StormOptions: Sendable {
    /// Redis to share among the workers; nil: a throwaway `redis-server` started (and stopped) by the storm.
    public var redisURL: String?
    /// Worker processes per run.
    public var workers: Int
    /// Seconds per run; nil: each scenario's own duration (times ``timeScale``). The scenario's timeline is
    /// rescaled to it.
    public var duration: Double?
    /// Multiplies every time of each scenario, its provider's reset period included (``Scenario/timeScaled(by:)``):
    /// the built-ins compress a provider's minute into a second, and 60 runs them at real provider time.
    public var timeScale: Double
    public var scenarios: [Scenario]
    public var modes: [StormMode]
    /// The `sluice` executable that runs `storm-worker` (the running binary, for the CLI).
    public var workerExecutable: String
    /// How long one attempt may wait for the provider.
    public var attemptTimeoutMs: Double
    /// How long before a run's second zero its workers are started (they connect and wait).
    public var startLeadMs: Double
    /// When set, worker `i` of each run serves its swift-metrics (the library's `sluice_*` metrics) in Prometheus'
    /// text format on `127.0.0.1:(base + i)/metrics` while it runs; nil: the workers serve nothing.
    public var workerMetricsPortBase: Int?

    public init(
        redisURL: String? = nil, workers: Int = 4, duration: Double? = nil, timeScale: Double = 1,
        scenarios: [Scenario],
        modes: [StormMode] = StormMode.all, workerExecutable: String, attemptTimeoutMs: Double = 2_000,
        startLeadMs: Double = 700, workerMetricsPortBase: Int? = nil
    ) {
        self.redisURL = redisURL
        self.workers = workers
        self.duration = duration
        self.timeScale = timeScale
        self.scenarios = scenarios
        self.modes = modes
        self.workerExecutable = workerExecutable
        self.attemptTimeoutMs = attemptTimeoutMs
        self.startLeadMs = startLeadMs
        self.workerMetricsPortBase = workerMetricsPortBase
    }
}
