import Foundation

/// One storm scenario: a provider with its quota and incidents, and the tenants whose agents call it.
///
/// Scenarios are JSON files (keys in snake_case; see `Sources/SluiceStorm/README-section.md` for the format).
/// All times are seconds from the start of the run, on the scenario's nominal timeline: `--duration` rescales
/// the whole timeline (incidents, arrivals, warm-up, saturation window) proportionally, and `--time-scale`
/// stretches the scenario's world as a whole, the provider's reset period included (``timeScaled(by:)``).
public struct Scenario: Codable, Sendable, Hashable {
    public var name: String
    public var description: String
    /// The nominal length of a run, in seconds.
    public var duration: Double
    /// Seconds at the start during which provider 429s do not count as "after warm-up".
    public var warmup: Double
    public var provider: ProviderSettings
    public var tenants: [TenantGroup]
    /// The interval during which demand exceeds the provider's capacity by construction; utilisation is
    /// measured over it. Nil: utilisation over the whole run after warm-up.
    public var saturation: TimeWindow?
    /// Tenant groups left out of the baseline run that gives `light_p99_baseline_ms`. Nil or empty: no baseline.
    public var baselineWithout: [String]?

    public init(
        name: String, description: String, duration: Double, warmup: Double, provider: ProviderSettings,
        tenants: [TenantGroup], saturation: TimeWindow? = nil, baselineWithout: [String]? = nil
    ) {
        self.name = name
        self.description = description
        self.duration = duration
        self.warmup = warmup
        self.provider = provider
        self.tenants = tenants
        self.saturation = saturation
        self.baselineWithout = baselineWithout
    }

    /// Decodes with defaults: no description, no warm-up.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name)
        description = try container.decodeIfPresent(String.self, forKey: .description) ?? ""
        duration = try container.decode(Double.self, forKey: .duration)
        warmup = try container.decodeIfPresent(Double.self, forKey: .warmup) ?? 0
        provider = try container.decode(ProviderSettings.self, forKey: .provider)
        tenants = try container.decode([TenantGroup].self, forKey: .tenants)
        saturation = try container.decodeIfPresent(TimeWindow.self, forKey: .saturation)
        baselineWithout = try container.decodeIfPresent([String].self, forKey: .baselineWithout)
    }

    /// The same scenario on a timeline stretched or shrunk to `newDuration` seconds.
    public func rescaled(to newDuration: Double) -> Scenario {
        guard newDuration > 0, newDuration != duration else { return self }
        let factor = newDuration / duration
        var copy = self
        copy.duration = newDuration
        copy.warmup = warmup * factor
        copy.saturation = saturation.map { TimeWindow(from: $0.from * factor, until: $0.until * factor) }
        copy.provider.incidents = provider.incidents.map { $0.rescaled(by: factor) }
        copy.tenants = tenants.map { $0.rescaled(by: factor) }
        return copy
    }

    /// The same scenario in a world `factor` times slower: every time of the timeline, the provider's reset period
    /// and the trees' deadlines are multiplied by it, and open-loop arrival rates divided. What takes real time
    /// whatever the scale stays: the provider's latency, tool calls, call sizes, limits per window, fan-out and
    /// concurrency. The built-ins compress a provider's minute into a second; a factor of 60 runs them at real
    /// provider time (a 60-second reset period, runs of minutes).
    public func timeScaled(by factor: Double) -> Scenario {
        guard factor > 0, factor.isFinite, factor != 1 else { return self }
        var copy = rescaled(to: duration * factor)
        copy.provider.window = provider.window * factor
        copy.tenants = copy.tenants.map { group in
            var group = group
            group.arrivals.rate = group.arrivals.rate.map { $0 / factor }
            group.tree.deadline = group.tree.deadline.map { $0 * factor }
            return group
        }
        return copy
    }

    /// The scenario without the tenant groups named in ``baselineWithout``, or nil when it names none.
    public var baseline: Scenario? {
        guard let names = baselineWithout, !names.isEmpty else { return nil }
        var copy = self
        copy.tenants = tenants.filter { !names.contains($0.name) }
        copy.baselineWithout = nil
        return copy
    }

    /// Checks what the decoder cannot: positive sizes, ordered windows, known names.
    public func validate() throws(ScenarioError) {
        func fail(_ why: String) -> ScenarioError { ScenarioError("scenario \(name): \(why)") }
        guard duration > 0 else { throw fail("duration must be positive") }
        guard warmup >= 0, warmup < duration else { throw fail("warmup must be in [0, duration)") }
        guard !tenants.isEmpty else { throw fail("needs at least one tenant group") }
        try provider.validate(scenario: name)
        var seen: Set<String> = []
        for group in tenants {
            guard seen.insert(group.name).inserted else { throw fail("tenant group \(group.name) appears twice") }
            try group.validate(scenario: name)
        }
        for excluded in baselineWithout ?? [] where !seen.contains(excluded) {
            throw fail("baseline_without names \(excluded), which is no tenant group")
        }
        if let saturation, saturation.until <= saturation.from {
            throw fail("saturation must end after it starts")
        }
    }
}

/// A half-open interval of run time, in seconds.
public struct TimeWindow: Codable, Sendable, Hashable {
    public var from: Double
    public var until: Double

    public init(from: Double, until: Double) {
        self.from = from
        self.until = until
    }

    public func contains(_ time: Double) -> Bool { time >= from && time < until }
}

/// Why a scenario file was refused.
public struct ScenarioError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
