import Foundation

/// Draws the provider's latency: a log-normal time to first token whose median and 99th percentile are those of
/// ``LatencySettings``, plus a time per output token, times the latency factor of any incident.
struct LatencyModel: Sendable {
    let settings: LatencySettings

    /// The log-normal's sigma: the p99 sits 2.326 standard deviations above the median.
    var sigma: Double { log(settings.p99Ms / settings.medianMs) / 2.326_347_874 }

    /// The latency in milliseconds for the quantile `u` (in (0, 1)) and `outputTokens`.
    func milliseconds(quantile u: Double, outputTokens: Int, factor: Double) -> Double {
        let firstToken = settings.medianMs * exp(sigma * SeededRandom.normalQuantile(u))
        return (firstToken + Double(outputTokens) * settings.msPerOutputToken) * factor
    }
}
