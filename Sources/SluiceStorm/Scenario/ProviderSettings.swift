/// The mock provider of a scenario: its quota, its latency and its incidents.
///
/// The quota imitates OpenAI's: a request bucket and a token bucket, each holding `*_per_window` and refilling
/// completely in `window` seconds (the provider's reset period). A request is charged its prompt tokens plus
/// `max_tokens` when it arrives and adjusted to its real usage when it completes (as Anthropic does for output
/// tokens); a request that fails is refunded.
public struct ProviderSettings: Codable, Sendable, Hashable {
    /// The header family the provider speaks. Only `openai` (`x-ratelimit-*`, Go-style durations,
    /// `retry-after-ms`) is implemented.
    public var family: String
    public var requestsPerWindow: Int
    public var tokensPerWindow: Int
    /// Seconds in which an empty bucket refills completely: the provider's reset period.
    public var window: Double
    public var latency: LatencySettings
    public var incidents: [Incident]

    public init(
        family: String = "openai", requestsPerWindow: Int, tokensPerWindow: Int, window: Double = 1,
        latency: LatencySettings = LatencySettings(), incidents: [Incident] = []
    ) {
        self.family = family
        self.requestsPerWindow = requestsPerWindow
        self.tokensPerWindow = tokensPerWindow
        self.window = window
        self.latency = latency
        self.incidents = incidents
    }

    /// Decodes with defaults: `openai`, a 1-second window, the default latency, no incidents.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        family = try container.decodeIfPresent(String.self, forKey: .family) ?? "openai"
        requestsPerWindow = try container.decode(Int.self, forKey: .requestsPerWindow)
        tokensPerWindow = try container.decode(Int.self, forKey: .tokensPerWindow)
        window = try container.decodeIfPresent(Double.self, forKey: .window) ?? 1
        latency = try container.decodeIfPresent(LatencySettings.self, forKey: .latency) ?? LatencySettings()
        incidents = try container.decodeIfPresent([Incident].self, forKey: .incidents) ?? []
    }

    /// Tokens per second at full capacity.
    public var tokensPerSecond: Double { Double(tokensPerWindow) / window }

    /// The capacity factor in force at `time` (1 = the stated quota): the latest capacity incident that has
    /// started and not ended.
    public func capacityFactor(at time: Double) -> Double {
        incidents.filter { $0.capacity != nil && $0.isActive(at: time) }.last?.capacity ?? 1
    }

    /// The incidents in force at `time`.
    public func activeIncidents(at time: Double) -> [Incident] {
        incidents.filter { $0.isActive(at: time) }
    }

    /// The moments at which the capacity changes, with the factor before and after.
    public var capacityChanges: [(time: Double, before: Double, after: Double)] {
        var moments = Set<Double>()
        for incident in incidents where incident.capacity != nil {
            moments.insert(incident.at)
            if let until = incident.until { moments.insert(until) }
        }
        return moments.sorted().compactMap { time in
            let before = capacityFactor(at: time - 1e-6)
            let after = capacityFactor(at: time)
            return before == after ? nil : (time, before, after)
        }
    }

    func validate(scenario: String) throws(ScenarioError) {
        func fail(_ why: String) -> ScenarioError { ScenarioError("scenario \(scenario): provider: \(why)") }
        guard family == "openai" else { throw fail("family must be \"openai\"") }
        // The `sluice` mode turns the quotas into bucket rates per second, which must stay below 2^50.
        guard requestsPerWindow > 0, tokensPerWindow > 0, requestsPerWindow <= 1_000_000_000_000,
            tokensPerWindow <= 1_000_000_000_000
        else { throw fail("quotas must be 1...10^12 per window") }
        guard window >= 0.001, window <= Scenario.maximumDuration else { throw fail("window must be 0.001...86400 s") }
        try latency.validate(scenario: scenario)
        for incident in incidents { try incident.validate(scenario: scenario) }
    }
}

/// How long the provider takes to answer: a log-normal time to first token (given by its median and 99th
/// percentile), plus a time per output token.
public struct LatencySettings: Codable, Sendable, Hashable {
    public var medianMs: Double
    public var p99Ms: Double
    public var msPerOutputToken: Double

    public init(medianMs: Double = 120, p99Ms: Double = 450, msPerOutputToken: Double = 0.4) {
        self.medianMs = medianMs
        self.p99Ms = p99Ms
        self.msPerOutputToken = msPerOutputToken
    }

    func validate(scenario: String) throws(ScenarioError) {
        guard medianMs > 0, p99Ms >= medianMs, msPerOutputToken >= 0 else {
            throw ScenarioError("scenario \(scenario): latency needs 0 < median_ms <= p99_ms, ms_per_output_token >= 0")
        }
        // Bounds that keep the slowest answer the provider draws (its 1 - 10^-6 quantile) a sleep it can take.
        guard p99Ms <= 600_000, p99Ms <= 100 * medianMs, msPerOutputToken <= 10_000 else {
            throw ScenarioError(
                "scenario \(scenario): latency needs p99_ms <= 600000 and <= 100 x median_ms, ms_per_output_token <= 10000"
            )
        }
    }
}

/// Something that happens to the provider from `at` until `until` (or the end of the run). Each field that is
/// set changes one thing; the latest active incident wins for each of them.
public struct Incident: Codable, Sendable, Hashable {
    public var at: Double
    public var until: Double?
    /// Multiplies the stated quota (0.5: the ceiling halves). The rate-limit headers state the new limit.
    public var capacity: Double?
    /// The fraction of requests that fail instead of being served.
    public var errorRate: Double?
    /// How they fail: an HTTP status such as `"500"`, `"503"`, `"504"`, or `"timeout"` (the provider holds the
    /// request without answering). Defaults to `"503"`.
    public var error: String?
    /// Multiplies every latency (3: three times slower).
    public var latencyFactor: Double?

    public init(
        at: Double, until: Double? = nil, capacity: Double? = nil, errorRate: Double? = nil, error: String? = nil,
        latencyFactor: Double? = nil
    ) {
        self.at = at
        self.until = until
        self.capacity = capacity
        self.errorRate = errorRate
        self.error = error
        self.latencyFactor = latencyFactor
    }

    public func isActive(at time: Double) -> Bool { time >= at && time < (until ?? .infinity) }

    /// The HTTP status of a failure, or nil for a timeout.
    public var errorStatus: Int? {
        let kind = error ?? "503"
        return kind == "timeout" ? nil : Int(kind)
    }

    func rescaled(by factor: Double) -> Incident {
        var copy = self
        copy.at = at * factor
        copy.until = until.map { $0 * factor }
        return copy
    }

    func validate(scenario: String) throws(ScenarioError) {
        func fail(_ why: String) -> ScenarioError { ScenarioError("scenario \(scenario): incident at \(at): \(why)") }
        guard Scenario.isTime(at) else { throw fail("at must be 0...86400 s") }
        if let until, until <= at || !Scenario.isTime(until) { throw fail("until must be after at, at most 86400 s") }
        if let capacity, !(capacity > 0 && capacity <= 100) { throw fail("capacity must be in (0, 100]") }
        if let errorRate, !(0...1).contains(errorRate) { throw fail("error_rate must be in [0, 1]") }
        if let error, error != "timeout", !(500...599).contains(Int(error) ?? 0) {
            throw fail("error must be a 5xx status or \"timeout\"")
        }
        if let latencyFactor, !(latencyFactor > 0 && latencyFactor <= 100) {
            throw fail("latency_factor must be in (0, 100]")
        }
    }
}
