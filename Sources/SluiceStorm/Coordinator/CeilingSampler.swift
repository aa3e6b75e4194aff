import Sluice
import SluiceRedis

/// Samples the `sluice` mode's global token ceiling during a run, as the fleet sees it: the rate in the global
/// scope's config hash when one was written (by the ceiling follower, or an operator), else the default the
/// workers configure. One value per bin of ``ProviderRecorder/binSeconds``.
struct CeilingSampler {
    let redisURL: String
    let scenario: Scenario
    let runID: String
    let startMs: Double

    func run() async -> [Double?] {
        let bins = Int((scenario.duration / ProviderRecorder.binSeconds).rounded(.up))
        var samples: [Double?] = Array(repeating: nil, count: bins)
        let settings = SluiceSettings(provider: scenario.provider)
        let fallback = Self.tokensPerSecond(
            settings.globalSpec(
                tokensPerWindow: scenario.provider.tokensPerWindow,
                requestsPerWindow: scenario.provider.requestsPerWindow))
        guard let client = try? RedisClient(url: redisURL),
            let pattern = try? ScopePattern(parsing: ["global=\(runID)"])
        else { return samples }
        defer { client.close() }
        let store = QuotaStore(client: client)
        while !Task.isCancelled {
            let bin = Int((StormClock.nowMs() - startMs) / 1000 / ProviderRecorder.binSeconds)
            if bin >= bins { break }
            if bin >= 0 {
                let field = try? await store.get(pattern)
                let configured = (try? field?.spec.get()).flatMap { Self.tokensPerSecond($0.description) }
                samples[bin] = configured ?? fallback
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
