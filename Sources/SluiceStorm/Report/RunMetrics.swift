import Histogram

/// The figures of one run, as `summary.json` and the terminal table carry them. Nil where a figure does not
/// apply to the scenario.
public struct RunMetrics: Sendable, Hashable {
    public var scenario: String
    public var mode: String
    public var provider429s: Int
    public var provider429sAfterWarmup: Int
    /// Tokens of successful calls per second, after warm-up.
    public var goodputTokensPerSecond: Double
    /// Tokens served over the tokens the provider could have served, during the saturation window.
    public var utilization: Double
    public var lightP50Ms: Double?
    public var lightP99Ms: Double?
    public var lightP99BaselineMs: Double?
    /// Refusals and 429s the light tenants got: calls the limiter refused (each refused ask of the single bucket,
    /// each call Sluice shed or refused) plus the provider's 429s to their calls. Nil without light tenants.
    public var lightRefusals: Int?
    public var jainIndex: Double?
    public var runawayTokens: Int?
    public var runawayBudget: Int?
    public var peakQueueDepth: Int
    public var shed: Int
    /// The slowest the fleet took to follow a change of the provider's ceiling.
    public var followSeconds: Double?
    /// Redis commands sent per request the provider received (``RedisCost``); nil when not measured.
    public var redisCallsPerProviderCall: Double?
    /// Microseconds Redis spent in Sluice's scripts per request the provider received; nil when not measured.
    public var redisMicrosecondsPerProviderCall: Double?

    /// Calls served / attempted, and how light tenants' calls ended, for the HTML report.
    public var callsOK: Int
    public var callsTotal: Int
    public var workerFailures: [String]
    /// Shed calls by the refusal that shed them (`quotaDenied`, `overloaded`, `leaseUnavailable`, …).
    public var shedByReason: [String: Int]
    /// The p99 time from wanting a call to its being shed, for the 2 a.m. story.
    public var shedP99Ms: Double?

    public init(_ run: RunResult, baseline: RunResult?) {
        let scenario = run.scenario
        let bin = ProviderRecorder.binSeconds
        let afterWarmup = run.provider.indices.filter { (Double($0) + 0.5) * bin >= scenario.warmup }
        self.scenario = scenario.name
        mode = run.mode.name
        provider429s = run.provider.reduce(0) { $0 + $1.limited }
        provider429sAfterWarmup = afterWarmup.reduce(0) { $0 + run.provider[$1].limited }
        let measured = Double(afterWarmup.count) * bin
        goodputTokensPerSecond =
            measured > 0 ? Double(afterWarmup.reduce(0) { $0 + run.provider[$1].tokensServed }) / measured : 0

        let window = scenario.saturation ?? TimeWindow(from: scenario.warmup, until: scenario.duration)
        let saturated = run.provider.indices.filter { window.contains((Double($0) + 0.5) * bin) }
        let served = saturated.reduce(0.0) { $0 + Double(run.provider[$1].tokensServed) }
        let capacity = saturated.reduce(0.0) { $0 + run.provider[$1].capacityTokensPerSecond * bin }
        utilization = capacity > 0 ? served / capacity : 0

        let lightCalls = run.calls.filter { $0.role == "light" }
        let light = Latencies(lightCalls.map(\.latencyMs))
        lightP50Ms = light.percentile(0.50)
        lightP99Ms = light.percentile(0.99)
        lightP99BaselineMs = baseline.flatMap {
            Latencies($0.calls.filter { $0.role == "light" }.map(\.latencyMs)).percentile(0.99)
        }
        lightRefusals =
            scenario.tenants.contains { $0.role == "light" }
            ? lightCalls.reduce(0) { $0 + $1.refusals + $1.provider429s } : nil
        jainIndex = Self.jain(run)

        let runawayGroups = scenario.tenants.filter { $0.role == "runaway" }
        if runawayGroups.isEmpty {
            runawayTokens = nil
            runawayBudget = nil
        } else {
            var perTree: [String: Int] = [:]
            for call in run.calls where call.role == "runaway" { perTree[call.tree, default: 0] += call.tokens }
            runawayTokens = perTree.values.max() ?? 0
            runawayBudget = runawayGroups.compactMap(\.tree.budgetTokens).min()
        }
        peakQueueDepth = run.waiting.max() ?? 0
        let shedCalls = run.calls.filter { $0.outcome == .shed }
        shed = shedCalls.count
        shedByReason = shedCalls.reduce(into: [:]) { $0[$1.refusal ?? "unknown", default: 0] += 1 }
        shedP99Ms = Latencies(shedCalls.map(\.latencyMs)).percentile(0.99)
        followSeconds = Self.follow(run)
        redisCallsPerProviderCall = run.redisCost?.callsPerProviderCall
        redisMicrosecondsPerProviderCall = run.redisCost?.microsecondsPerProviderCall
        callsOK = run.calls.filter { $0.outcome == .ok }.count
        callsTotal = run.calls.count
        workerFailures = run.workerFailures
    }

    /// Latencies in milliseconds, recorded to the microsecond in a histogram of three significant digits, for their
    /// percentiles.
    struct Latencies {
        private var histogram = Histogram<UInt64>(numberOfSignificantValueDigits: .three)

        init(_ milliseconds: some Sequence<Double> = []) {
            for value in milliseconds { record(value) }
        }

        /// Negative values count as 0, values beyond a year as a year; non-finite ones are left out.
        mutating func record(_ milliseconds: Double) {
            guard milliseconds.isFinite else { return }
            histogram.record(UInt64(min(max(0, milliseconds * 1000), 3.2e13).rounded()))
        }

        /// The nearest-rank percentile (`q` in 0...1), within 0.1%; nil when there are none.
        func percentile(_ q: Double) -> Double? {
            guard histogram.totalCount > 0 else { return nil }
            return Double(histogram.valueAtPercentile(q * 100)) / 1000
        }
    }

    /// Jain's index over tenants (runaway tenants excluded: their budget limits them on purpose) of each tenant's
    /// served tokens over its weighted max-min fair share of the capacity, given what it asked for. 1 is perfectly
    /// fair. A call's demand is its real usage when served, else 80% of its estimate.
    static func jain(_ run: RunResult) -> Double? {
        var demand: [String: Double] = [:]
        var served: [String: Double] = [:]
        var weight: [String: Double] = [:]
        for group in run.scenario.tenants where group.role != "runaway" {
            for name in group.tenantNames { weight[name] = group.weight }
        }
        for call in run.calls where weight[call.tenant] != nil {
            demand[call.tenant, default: 0] += call.outcome == .ok ? Double(call.tokens) : 0.8 * Double(call.estimate)
            served[call.tenant, default: 0] += Double(call.tokens)
        }
        let tenants = demand.keys.filter { demand[$0]! > 0 }
        guard tenants.count >= 2 else { return nil }
        let capacity = run.provider.reduce(0.0) { $0 + $1.capacityTokensPerSecond * ProviderRecorder.binSeconds }
        let shares = Self.fairShares(demand: demand, weight: weight, capacity: capacity)
        let x = tenants.map { served[$0, default: 0] / max(1, shares[$0, default: 1]) }
        let sum = x.reduce(0, +)
        let squares = x.reduce(0) { $0 + $1 * $1 }
        return squares > 0 ? sum * sum / (Double(x.count) * squares) : nil
    }

    /// Weighted max-min fair shares (water-filling): tenants asking for less than their weighted share get what
    /// they ask; the rest is split among the others by weight.
    static func fairShares(demand: [String: Double], weight: [String: Double], capacity: Double) -> [String: Double] {
        var shares: [String: Double] = [:]
        var remaining = capacity
        var open = demand.keys.sorted { demand[$0]! / weight[$0, default: 1] < demand[$1]! / weight[$1, default: 1] }
        while !open.isEmpty {
            let totalWeight = open.reduce(0) { $0 + weight[$1, default: 1] }
            let first = open[0]
            let level = remaining / totalWeight
            if demand[first]! <= level * weight[first, default: 1] {
                shares[first] = demand[first]!
                remaining -= demand[first]!
                open.removeFirst()
            } else {
                for tenant in open { shares[tenant] = level * weight[tenant, default: 1] }
                open = []
            }
        }
        return shares
    }

    /// After each change of the provider's capacity past warm-up: for a cut, the time until the last 429 that
    /// followed it; for a rise, the time until the served rate (averaged over half a reset period) reached 80% of the
    /// new capacity.
    /// The slowest of them, or nil when the scenario changes no capacity.
    static func follow(_ run: RunResult) -> Double? {
        let bin = ProviderRecorder.binSeconds
        let changes = run.scenario.provider.capacityChanges.filter {
            $0.time >= run.scenario.warmup && $0.time < run.scenario.duration
        }
        guard !changes.isEmpty else { return nil }
        var slowest = 0.0
        for (index, change) in changes.enumerated() {
            let segmentEnd = index + 1 < changes.count ? changes[index + 1].time : run.scenario.duration
            let first = Int(change.time / bin)
            let last = min(run.provider.count, Int(segmentEnd / bin))
            guard first < last else { continue }
            var followed = segmentEnd - change.time
            if change.after < change.before {
                let lastLimited = (first..<last).last { run.provider[$0].limited > 0 }
                followed = lastLimited.map { Double($0 + 1) * bin - change.time } ?? 0
            } else {
                let window = max(1, Int((0.5 * run.scenario.provider.window / bin).rounded()))
                for end in first..<last where end - window + 1 >= first {
                    let bins = run.provider[(end - window + 1)...end]
                    let rate = Double(bins.reduce(0) { $0 + $1.tokensServed }) / (Double(window) * bin)
                    if rate >= 0.8 * run.provider[end].capacityTokensPerSecond {
                        followed = Double(end + 1) * bin - change.time
                        break
                    }
                }
            }
            slowest = max(slowest, followed)
        }
        return slowest
    }
}
