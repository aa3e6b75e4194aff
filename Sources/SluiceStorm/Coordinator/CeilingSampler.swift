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

    func run() async -> [Double?] {
        let bins = Int((scenario.duration / ProviderRecorder.binSeconds).rounded(.up))
        var samples: [Double?] = Array(repeating: nil, count: bins)
        let settings = SluiceSettings(provider: scenario.provider)
        let configured = Self.tokensPerSecond(
            settings.globalSpec(
                tokensPerWindow: scenario.provider.tokensPerWindow,
                requestsPerWindow: scenario.provider.requestsPerWindow))
        guard let configured, let limiter = try? Limiter(url: redisURL),
            let reconciler = try? Reconciler(limiter: limiter, configuration: settings.reconciler),
            let path = try? ScopePath("global=\(runID)")
        else { return samples }
        defer { limiter.close() }
        while !Task.isCancelled {
            let bin = Int((StormClock.nowMs() - startMs) / 1000 / ProviderRecorder.binSeconds)
            if bin >= bins { break }
            if bin >= 0 {
                let tokens = (try? await reconciler.status(path))?.resources.first { $0.name == "tokens" }
                let ceiling = tokens?.ceiling.map { $0 / scenario.provider.window }
                samples[bin] = min(configured, ceiling ?? configured)
            }
            do { try await Task.sleep(for: .milliseconds(Int(ProviderRecorder.binSeconds * 1000))) } catch { break }
        }
        return samples
    }

    /// The tokens bucket's rate of a spec, per second.
    static func tokensPerSecond(_ text: String) -> Double? {
        guard let spec = try? QuotaSpec(parsing: text), let rate = spec.limits(for: "tokens")?.first?.rate,
            rate.milliseconds > 0
        else { return nil }
        return Double(rate.amount) * 1000 / Double(rate.milliseconds)
    }
}
