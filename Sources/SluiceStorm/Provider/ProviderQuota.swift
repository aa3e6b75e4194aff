/// The mock provider's quota: one bucket per resource of its family (``ProviderSettings``), each refilling
/// completely in one window and sized by its stated limit times the capacity factor in force. Not thread-safe:
/// ``MockProvider`` guards it.
struct ProviderQuota {
    /// What a bucket counts.
    enum Resource: CaseIterable {
        case requests, tokens, inputTokens, outputTokens
    }

    /// What the rate-limit headers say about one bucket at one moment.
    struct Level: Equatable {
        var limit: Int
        var remaining: Int
        /// Milliseconds until the bucket is full again.
        var resetMs: Double
    }

    /// What the rate-limit headers say at one moment, per bucket.
    struct Snapshot {
        var levels: [Resource: Level]
        subscript(_ resource: Resource) -> Level? { levels[resource] }
    }

    enum Admission {
        case admitted(Snapshot)
        /// Over quota: wait this long before the request could pass.
        case limited(retryAfterMs: Double, Snapshot)
    }

    let settings: ProviderSettings
    /// The buckets of the family, in header order.
    let resources: [Resource]
    private(set) var factor: Double
    private var levels: [Resource: Double] = [:]
    private var lastTime: Double = 0

    init(settings: ProviderSettings) {
        self.settings = settings
        resources =
            settings.family == "anthropic" ? [.requests, .inputTokens, .outputTokens] : [.requests, .tokens]
        factor = settings.capacityFactor(at: 0)
        for resource in resources { levels[resource] = limit(resource) }
    }

    /// The stated limit per window of `resource`.
    func stated(_ resource: Resource) -> Int {
        switch resource {
        case .requests: settings.requestsPerWindow
        case .tokens: settings.tokensPerWindow
        case .inputTokens: settings.inputTokensPerWindow ?? 0
        case .outputTokens: settings.outputTokensPerWindow ?? 0
        }
    }

    /// The limit of `resource` per window at the capacity in force.
    func limit(_ resource: Resource) -> Double { (Double(stated(resource)) * factor).rounded(.down) }

    /// Tokens per second at the capacity in force (input and output together for `anthropic`).
    var tokensPerSecond: Double { (Double(settings.tokensPerWindow) * factor).rounded(.down) / settings.window }

    /// What a request of `prompt` tokens asking for up to `maxTokens` is charged on arrival.
    func charge(prompt: Int, maxTokens: Int) -> [Resource: Double] {
        resources.contains(.tokens)
            ? [.requests: 1, .tokens: Double(prompt + maxTokens)]
            : [.requests: 1, .inputTokens: Double(prompt), .outputTokens: Double(maxTokens)]
    }

    /// Brings the buckets to `time` (seconds of run time): refill, and apply a capacity change.
    mutating func advance(to time: Double) {
        let newFactor = settings.capacityFactor(at: time)
        if newFactor != factor {
            factor = newFactor
            for resource in resources { levels[resource] = min(levels[resource]!, limit(resource)) }
        }
        let elapsed = max(0, time - lastTime)
        lastTime = max(lastTime, time)
        for resource in resources {
            let limit = limit(resource)
            levels[resource] = min(limit, levels[resource]! + elapsed * limit / settings.window)
        }
    }

    /// Charges one request (prompt and `max_tokens`), or refuses it whole.
    mutating func admit(prompt: Int, maxTokens: Int, at time: Double) -> Admission {
        advance(to: time)
        let charge = charge(prompt: prompt, maxTokens: maxTokens)
        if charge.allSatisfy({ levels[$0.key]! >= $0.value }) {
            for (resource, amount) in charge { levels[resource]! -= amount }
            return .admitted(snapshot)
        }
        let waits = charge.map { resource, amount -> Double in
            let level = levels[resource]!
            let limit = limit(resource)
            guard level < amount else { return 0 }
            guard limit > 0 else { return settings.window }
            return (min(amount, limit) - level) * settings.window / limit
        }
        return .limited(retryAfterMs: (waits.max() ?? 0) * 1000, snapshot)
    }

    /// Gives back what a request was charged beyond what it used: `prompt` input tokens (all of them when it
    /// failed) and `output` tokens of its `max_tokens`.
    mutating func refund(prompt: Int, output: Int, at time: Double) {
        advance(to: time)
        let back: [Resource: Double] =
            resources.contains(.tokens)
            ? [.tokens: Double(max(0, prompt) + max(0, output))]
            : [.inputTokens: Double(max(0, prompt)), .outputTokens: Double(max(0, output))]
        for (resource, amount) in back { levels[resource] = min(limit(resource), levels[resource]! + amount) }
    }

    var snapshot: Snapshot {
        var snapshot = Snapshot(levels: [:])
        for resource in resources {
            let limit = limit(resource)
            let level = levels[resource]!
            snapshot.levels[resource] = Level(
                limit: Int(limit), remaining: Int(max(0, level)),
                resetMs: limit > 0 ? (limit - level) * settings.window / limit * 1000 : settings.window * 1000)
        }
        return snapshot
    }
}
