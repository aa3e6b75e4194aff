/// The provider's own time series, the ground truth of the report: what it received, refused, failed and served,
/// in bins of ``binSeconds`` of run time. Not thread-safe: ``MockProvider`` guards it.
public struct ProviderRecorder: Sendable {
    public static let binSeconds = 0.1

    /// One bin of the time series.
    public struct Bin: Sendable, Codable, Hashable {
        public var requests = 0
        public var served = 0
        public var limited = 0
        public var errors = 0
        public var timeouts = 0
        /// Tokens (prompt + completion) of the requests that completed in this bin.
        public var tokensServed = 0
        /// The provider's token capacity in force, per second.
        public var capacityTokensPerSecond = 0.0
        /// The most requests the provider held at once.
        public var peakInFlight = 0
    }

    public private(set) var bins: [Bin] = []
    private(set) var inFlight = 0

    public init() {}

    mutating func withBin(at time: Double, _ body: (inout Bin) -> Void) {
        let index = max(0, Int(time / Self.binSeconds))
        if index >= bins.count { bins.append(contentsOf: Array(repeating: Bin(), count: index - bins.count + 1)) }
        body(&bins[index])
    }

    mutating func arrived(at time: Double, capacity: Double) {
        inFlight += 1
        let inFlight = inFlight
        withBin(at: time) {
            $0.requests += 1
            $0.capacityTokensPerSecond = capacity
            $0.peakInFlight = max($0.peakInFlight, inFlight)
        }
    }

    enum Outcome { case served(tokens: Int), limited, error, timeout }

    mutating func finished(_ outcome: Outcome, at time: Double, capacity: Double) {
        inFlight -= 1
        withBin(at: time) { bin in
            bin.capacityTokensPerSecond = capacity
            switch outcome {
            case .served(let tokens):
                bin.served += 1
                bin.tokensServed += tokens
            case .limited: bin.limited += 1
            case .error: bin.errors += 1
            case .timeout: bin.timeouts += 1
            }
        }
    }

    /// Fills the capacity of bins in which nothing happened from the settings, up to `duration` seconds.
    mutating func close(duration: Double, settings: ProviderSettings) {
        let count = Int((duration / Self.binSeconds).rounded(.up))
        if bins.count < count { bins.append(contentsOf: Array(repeating: Bin(), count: count - bins.count)) }
        for index in bins.indices {
            let time = (Double(index) + 0.5) * Self.binSeconds
            bins[index].capacityTokensPerSecond =
                (Double(settings.tokensPerWindow) * settings.capacityFactor(at: time)).rounded(.down) / settings.window
        }
    }
}
