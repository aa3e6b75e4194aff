/// Everything one worker process needs to know, written by the coordinator as a JSON file and passed to
/// `sluice storm-worker --assignment FILE`.
public struct WorkerAssignment: Codable, Sendable {
    public var scenario: Scenario
    public var mode: StormMode
    public var workerIndex: Int
    public var workerCount: Int
    public var providerURL: String
    public var redisURL: String
    /// Names this run's Redis keys (the global scope), so that runs never share state.
    public var runID: String
    /// Wall-clock second zero of the run, in ms since the epoch.
    public var startMs: Double
    /// Where the worker writes its records (JSON lines).
    public var recordsPath: String
    /// How long one attempt may wait for the provider's answer.
    public var attemptTimeoutMs: Double
    /// The loopback port on which the worker process serves its swift-metrics in Prometheus' text format
    /// (`sluice storm --worker-metrics-port-base`); nil: none.
    public var metricsPort: Int?

    public init(
        scenario: Scenario, mode: StormMode, workerIndex: Int, workerCount: Int, providerURL: String,
        redisURL: String, runID: String, startMs: Double, recordsPath: String, attemptTimeoutMs: Double = 2_000,
        metricsPort: Int? = nil
    ) {
        self.scenario = scenario
        self.mode = mode
        self.workerIndex = workerIndex
        self.workerCount = workerCount
        self.providerURL = providerURL
        self.redisURL = redisURL
        self.runID = runID
        self.startMs = startMs
        self.recordsPath = recordsPath
        self.attemptTimeoutMs = attemptTimeoutMs
        self.metricsPort = metricsPort
    }

    /// The tenants this worker runs: every `workerCount`-th tenant of the scenario, in order, starting at
    /// `workerIndex`.
    public var tenants: [TenantSlot] {
        let all = scenario.tenants.flatMap { group in group.tenantNames.map { TenantSlot(name: $0, group: group) } }
        return all.enumerated().filter { $0.offset % workerCount == workerIndex }.map(\.element)
    }
}

/// One tenant and the group it belongs to.
public struct TenantSlot: Sendable {
    public var name: String
    public var group: TenantGroup
}
