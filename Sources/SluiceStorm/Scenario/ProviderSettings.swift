/// The mock provider of a scenario: its quota, its latency and its incidents.
///
/// The quota is a set of buckets, each holding its `*_per_window` and refilling completely in `window` seconds
/// (the provider's reset period), in one of two families:
/// - `openai`: a request bucket and a token bucket. A request is charged its prompt tokens plus `max_tokens` on
///   arrival and adjusted to its real usage when it completes; the headers are OpenAI's `x-ratelimit-*` with
///   Go-style reset durations, 429s carry `retry-after-ms` and `retry-after`.
/// - `anthropic`: a request bucket and separate input and output token buckets. A request is charged its prompt
///   to the input bucket and its `max_tokens` to the output bucket on arrival, and the output bucket is adjusted
///   to the real answer when it completes (as Anthropic estimates output tokens); the headers are Anthropic's
///   `anthropic-ratelimit-{requests,input-tokens,output-tokens}-{limit,remaining,reset}` with RFC 3339 resets,
///   429s carry `retry-after` in whole seconds, and overloads are 529 `overloaded_error`.
/// A request that fails is refunded.
public struct ProviderSettings: Codable, Sendable, Hashable {
    /// The API the provider speaks: `openai` or `anthropic` (see the type's description).
    public var family: String
    public var requestsPerWindow: Int
    /// Tokens per window: OpenAI's token limit; for `anthropic`, the input and output limits together (what the
    /// report measures utilisation against, and what the single bucket and Sluice's `tokens` buckets are sized by).
    public var tokensPerWindow: Int
    /// Anthropic's input-token limit per window (`anthropic` only).
    public var inputTokensPerWindow: Int?
    /// Anthropic's output-token limit per window (`anthropic` only).
    public var outputTokensPerWindow: Int?
    /// Seconds in which an empty bucket refills completely: the provider's reset period.
    public var window: Double
    public var latency: LatencySettings
    public var incidents: [Incident]

    public static let families: Set<String> = ["openai", "anthropic"]
    /// The largest limit per window a scenario may state.
    public static let maximumQuota = 1_000_000_000_000

    /// An OpenAI-style provider.
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

    /// An Anthropic-style provider with separate input and output token limits.
    public init(
        anthropicRequestsPerWindow requestsPerWindow: Int, inputTokensPerWindow: Int, outputTokensPerWindow: Int,
        window: Double = 1, latency: LatencySettings = LatencySettings(), incidents: [Incident] = []
    ) {
        self.init(
            family: "anthropic", requestsPerWindow: requestsPerWindow,
            tokensPerWindow: inputTokensPerWindow + outputTokensPerWindow, window: window, latency: latency,
            incidents: incidents)
        self.inputTokensPerWindow = inputTokensPerWindow
        self.outputTokensPerWindow = outputTokensPerWindow
    }

    /// Decodes with defaults: `openai`, a 1-second window, the default latency, no incidents; for `anthropic`,
    /// `tokens_per_window` is the input and output limits together.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        family = try container.decodeIfPresent(String.self, forKey: .family) ?? "openai"
        requestsPerWindow = try container.decode(Int.self, forKey: .requestsPerWindow)
        inputTokensPerWindow = try container.decodeIfPresent(Int.self, forKey: .inputTokensPerWindow)
        outputTokensPerWindow = try container.decodeIfPresent(Int.self, forKey: .outputTokensPerWindow)
        if family == "anthropic" {
            // Wrapping: validate() refuses limits that large (and missing ones) before anything adds them.
            tokensPerWindow =
                try container.decodeIfPresent(Int.self, forKey: .tokensPerWindow)
                ?? (inputTokensPerWindow ?? 0) &+ (outputTokensPerWindow ?? 0)
        } else {
            tokensPerWindow = try container.decode(Int.self, forKey: .tokensPerWindow)
        }
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
        guard Self.families.contains(family) else { throw fail("family must be \"openai\" or \"anthropic\"") }
        let quotas = 1...Self.maximumQuota
        if family == "anthropic" {
            guard let input = inputTokensPerWindow, let output = outputTokensPerWindow else {
                throw fail("anthropic needs input_tokens_per_window and output_tokens_per_window")
            }
            guard quotas.contains(input), quotas.contains(output) else {
                throw fail("quotas must be 1...\(Self.maximumQuota)")
            }
            guard tokensPerWindow == input + output else {
                throw fail("for anthropic, tokens_per_window is input + output tokens per window; leave it out")
            }
        } else if inputTokensPerWindow != nil || outputTokensPerWindow != nil {
            throw fail("input_tokens_per_window and output_tokens_per_window are for the anthropic family")
        }
        guard quotas.contains(requestsPerWindow), quotas.contains(tokensPerWindow) else {
            throw fail("quotas must be 1...\(Self.maximumQuota)")
        }
        guard window > 0 else { throw fail("window must be positive") }
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
        guard at >= 0 else { throw fail("at must be >= 0") }
        if let until, until <= at { throw fail("until must be after at") }
        if let capacity, !(capacity > 0) { throw fail("capacity must be positive") }
        if let errorRate, !(0...1).contains(errorRate) { throw fail("error_rate must be in [0, 1]") }
        if let error, error != "timeout", !(500...599).contains(Int(error) ?? 0) {
            throw fail("error must be a 5xx status or \"timeout\"")
        }
        if let latencyFactor, !(latencyFactor > 0) { throw fail("latency_factor must be positive") }
    }
}
