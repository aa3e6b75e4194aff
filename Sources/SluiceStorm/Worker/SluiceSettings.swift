import Sluice

/// How the `sluice` mode configures the library for a scenario's provider, from what an operator knows: the
/// provider's stated limits and reset window.
///
/// - global scope (the provider): token and request buckets at the stated rate, a burst of 40% of a window,
///   half of it kept as headroom that only interactive callers may use, and a debt as deep as that headroom (so
///   batch callers scheduled ahead never push the bucket below empty for interactive ones);
/// - tenant scope: a token bucket at 75% of the global rate, so that no one tenant can take the whole fleet, with a
///   debt as deep as its burst so that a tenant past its share is scheduled rather than refused;
/// - each request tree: its budget, loop guard, in-flight cap and deadline (``TreeShape``), fleet-wide;
/// - around every call: a fleet-wide admission queue of at most 150 waiting calls (beyond it callers are shed at
///   once as overloaded), a circuit breaker on the provider (opens at 50% failures over at least 20 calls in 5 s,
///   cools down 1 s, 3 probes), a retry budget of 20% of requests plus 10 per 5 s, and exponential backoff with
///   full jitter that honours retry-after;
/// - fleet-wide concurrency leases on the provider: enough slots for the stated request rate at the p99 latency,
///   plus half again (Little's law), so a latency spike cannot pile up unbounded calls at the provider;
/// - the reconciler, fed every response: the provider's window, no safety factor below the stated limit (the
///   buckets never hold more than the lowest remaining the provider reported, refilled since that request was
///   sent, so the remaining-headers, not a flat margin, keep the fleet under the limit), a cut of 30% per
///   congestion event and a climb back within a third of a window: the remaining-headers still bound every
///   step of the climb, so it can be as fast as they report room, and a ceiling that comes back is followed
///   within about one reset period.
struct SluiceSettings: Sendable {
    /// The share of the stated limits the fleet aims at.
    static let utilizationTarget = 1.0
    static let maxWaiting = 150
    static let maxAttempts = 4

    let provider: ProviderSettings

    /// Fleet-wide slots for calls in flight at the provider.
    var concurrencySlots: Int {
        let perSecond = Double(provider.requestsPerWindow) / provider.window
        return max(4, Int((perSecond * provider.latency.p99Ms / 1000 * 1.5).rounded(.up)))
    }

    var reconciler: Reconciler.Configuration {
        let window = Duration.milliseconds(Int64((provider.window * 1000).rounded(.up)))
        return Reconciler.Configuration(
            window: window, safetyFactor: Self.utilizationTarget, cutFactor: 0.7, recovery: window / 3,
            // A 429 that names no wait pauses the fleet for a fifth of the reset period.
            defaultPause: .milliseconds(Int64((provider.window * 200).rounded(.up))))
    }

    /// The limiter's defaults per scope kind, for a stated limit of `tokensPerWindow` and `requestsPerWindow`.
    func defaults(tokensPerWindow: Int, requestsPerWindow: Int) -> [String: String] {
        [
            "global": globalSpec(tokensPerWindow: tokensPerWindow, requestsPerWindow: requestsPerWindow),
            "tenant": tenantSpec(tokensPerWindow: tokensPerWindow),
        ]
    }

    func globalSpec(tokensPerWindow: Int, requestsPerWindow: Int) -> String {
        let tokens = Self.bucket(perWindow: tokensPerWindow, window: provider.window, share: Self.utilizationTarget)
        let requests = Self.bucket(perWindow: requestsPerWindow, window: provider.window, share: Self.utilizationTarget)
        return "tokens: \(tokens); requests: \(requests)"
    }

    func tenantSpec(tokensPerWindow: Int) -> String {
        let rate = Int(Double(tokensPerWindow) / provider.window * Self.utilizationTarget * 0.75)
        // A debt as deep as the burst: a tenant past its share is scheduled behind its own earlier calls (told when
        // to proceed in its admission's reply) rather than refused and left to ask again.
        let burst = max(1, Int(Double(tokensPerWindow) * 0.3))
        return "tokens: bucket rate=\(max(1, rate))/s burst=\(burst) debt=\(burst)"
    }

    /// A bucket at `share` of a stated `perWindow`: burst 40% of a window, headroom half of it, debt as deep.
    static func bucket(perWindow: Int, window: Double, share: Double) -> String {
        let rate = max(1, Int(Double(perWindow) / window * share))
        let burst = max(2, Int(Double(perWindow) * 0.4))
        return "bucket rate=\(rate)/s burst=\(burst) headroom=50 debt=\(burst / 2)"
    }
}
