import Sluice
import SluiceRedis

/// Samples the `sluice` mode's global token ceiling during a run, as the fleet's decisions see it: the configured
/// global bucket's rate, lowered to the reconciler's ceiling (the provider's stated limit x the safety factor x
/// what the last cut left) when that is lower. One value per bin of ``ProviderRecorder/binSeconds``.
struct CeilingSampler {
    let redisURL: String
    let scenario: Scenario
    let runID: String
    let startMs: Double

    /// The samples, and how many status scripts the sampling ran (the storm's own Redis calls, which
    /// ``RedisMeter`` leaves out of the guard's cost).
    func run() async -> (samples: [Double?], statusCalls: Int) {
        let bins = Int((scenario.duration / ProviderRecorder.binSeconds).rounded(.up))
        var samples: [Double?] = Array(repeating: nil, count: bins)
        var statusCalls = 0
        let settings = SluiceSettings(provider: scenario.provider)
        let configured = Self.tokensPerSecond(
            settings.globalSpec(
                tokensPerWindow: scenario.provider.tokensPerWindow,
                requestsPerWindow: scenario.provider.requestsPerWindow))
        guard let configured, let limiter = try? Limiter(url: redisURL),
            let reconciler = try? Reconciler(limiter: limiter, configuration: settings.reconciler),
            let path = try? ScopePath("global=\(runID)")
        else { return (samples, statusCalls) }
        defer { limiter.close() }
        while !Task.isCancelled {
            let bin = Int((StormClock.nowMs() - startMs) / 1000 / ProviderRecorder.binSeconds)
            if bin >= bins { break }
            if bin >= 0 {
                statusCalls += 1
                let tokens = (try? await reconciler.status(path))?.resources.first { $0.name == "tokens" }
                let ceiling = tokens?.ceiling.map { $0 / scenario.provider.window }
                samples[bin] = min(configured, ceiling ?? configured)
            }
            do { try await Task.sleep(for: .milliseconds(Int(ProviderRecorder.binSeconds * 1000))) } catch { break }
        }
        return (samples, statusCalls)
    }

    /// Runs the status script `times` times, as sampling does, so that ``RedisMeter`` can learn what one costs.
    func probe(times: Int) async {
        guard let limiter = try? Limiter(url: redisURL),
            let reconciler = try? Reconciler(
                limiter: limiter, configuration: SluiceSettings(provider: scenario.provider).reconciler),
            let path = try? ScopePath("global=\(runID)")
        else { return }
        defer { limiter.close() }
        for _ in 0..<times { _ = try? await reconciler.status(path) }
    }

    /// The tokens bucket's rate of a spec, per second.
    static func tokensPerSecond(_ text: String) -> Double? {
        guard let spec = try? QuotaSpec(parsing: text), let rate = spec.limits(for: "tokens")?.first?.rate,
            rate.milliseconds > 0
        else { return nil }
        return Double(rate.amount) * 1000 / Double(rate.milliseconds)
    }
}
