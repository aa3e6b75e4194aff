/// The mock provider's quota: a request bucket and a token bucket that refill completely in one window, sized by
/// the stated quota times the capacity factor in force. Not thread-safe: ``MockProvider`` guards it.
struct ProviderQuota {
    let settings: ProviderSettings
    private(set) var requestLevel: Double
    private(set) var tokenLevel: Double
    private(set) var factor: Double = 1
    private var lastTime: Double = 0

    init(settings: ProviderSettings) {
        self.settings = settings
        self.requestLevel = Double(settings.requestsPerWindow)
        self.tokenLevel = Double(settings.tokensPerWindow)
        self.factor = settings.capacityFactor(at: 0)
        self.requestLevel = requestLimit
        self.tokenLevel = tokenLimit
    }

    var requestLimit: Double { (Double(settings.requestsPerWindow) * factor).rounded(.down) }
    var tokenLimit: Double { (Double(settings.tokensPerWindow) * factor).rounded(.down) }
    /// Tokens per second at the capacity in force.
    var tokensPerSecond: Double { tokenLimit / settings.window }

    /// What the rate-limit headers say at one moment.
    struct Snapshot {
        var requestLimit: Int
        var requestsRemaining: Int
        var requestsResetMs: Double
        var tokenLimit: Int
        var tokensRemaining: Int
        var tokensResetMs: Double
    }

    enum Admission {
        case admitted(Snapshot)
        /// Over quota: wait this long before the request could pass.
        case limited(retryAfterMs: Double, Snapshot)
    }

    /// Brings the buckets to `time` (seconds of run time): refill, and apply a capacity change.
    mutating func advance(to time: Double) {
        let newFactor = settings.capacityFactor(at: time)
        if newFactor != factor {
            factor = newFactor
            requestLevel = min(requestLevel, requestLimit)
            tokenLevel = min(tokenLevel, tokenLimit)
        }
        let elapsed = max(0, time - lastTime)
        lastTime = max(lastTime, time)
        requestLevel = min(requestLimit, requestLevel + elapsed * requestLimit / settings.window)
        tokenLevel = min(tokenLimit, tokenLevel + elapsed * tokenLimit / settings.window)
    }

    /// Charges one request and its estimate (prompt + max_tokens), or refuses it whole.
    mutating func admit(estimate: Int, at time: Double) -> Admission {
        advance(to: time)
        let tokens = Double(estimate)
        if requestLevel >= 1, tokenLevel >= tokens {
            requestLevel -= 1
            tokenLevel -= tokens
            return .admitted(snapshot)
        }
        let requestWait = requestLevel >= 1 ? 0 : (1 - requestLevel) * settings.window / requestLimit
        let tokenWait = tokenLevel >= tokens ? 0 : (min(tokens, tokenLimit) - tokenLevel) * settings.window / tokenLimit
        return .limited(retryAfterMs: max(requestWait, tokenWait) * 1000, snapshot)
    }

    /// Gives back what a request was charged beyond what it used (all of it when it failed).
    mutating func refund(_ tokens: Int, at time: Double) {
        advance(to: time)
        tokenLevel = min(tokenLimit, tokenLevel + Double(max(0, tokens)))
    }

    var snapshot: Snapshot {
        Snapshot(
            requestLimit: Int(requestLimit), requestsRemaining: Int(max(0, requestLevel)),
            requestsResetMs: (requestLimit - requestLevel) * settings.window / requestLimit * 1000,
            tokenLimit: Int(tokenLimit), tokensRemaining: Int(max(0, tokenLevel)),
            tokensResetMs: (tokenLimit - tokenLevel) * settings.window / tokenLimit * 1000)
    }
}
