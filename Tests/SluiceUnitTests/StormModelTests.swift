import Foundation
import Sluice
import Testing

@testable import SluiceStorm

/// The storm's pieces that need no server: scenarios, the provider's quota and headers, the report's figures.
@Suite("Storm: scenarios, provider quota, metrics")
struct StormModelTests {
    @Test("Every built-in scenario parses, validates, and rescales its timeline", arguments: BuiltinScenarios.names)
    func builtins(name: String) throws {
        let scenario = try BuiltinScenarios.load(name)
        #expect(scenario.name == name)
        let half = scenario.rescaled(to: scenario.duration / 2)
        #expect(half.warmup == scenario.warmup / 2)
        #expect(half.provider.incidents.map(\.at) == scenario.provider.incidents.map { $0.at / 2 })
        #expect(half.provider.window == scenario.provider.window)
    }

    @Test("Invalid scenarios are refused with the reason")
    func invalid() throws {
        var text = try #require(BuiltinScenarios.text(named: "tier-change"))
        text = text.replacingOccurrences(of: #""capacity": 0.5"#, with: #""capacity": -1"#)
        #expect(throws: ScenarioError.self) { try BuiltinScenarios.decode(text, source: "test") }
        let missing = #"{"name": "x", "description": "", "duration": 5, "warmup": 1, "tenants": []}"#
        let error = #expect(throws: ScenarioError.self) { try BuiltinScenarios.decode(missing, source: "x.json") }
        #expect(error?.description.contains("provider") == true)
    }

    // Found by Fuzz/FuzzScenario: each of these validated, then trapped converting a time or a rate to an integer
    // (the provider's time series, the `sluice` mode's bucket rates, the workers' sleeps), or gave the library
    // settings it refuses.
    @Test(
        "Values a run cannot represent are refused when the scenario is read, not by a crash during the run",
        arguments: [
            (#""duration": 8,"#, #""duration": 1e300,"#, "duration"),
            (#""window": 1,"#, #""window": 1e-300,"#, "window"),
            (#""window": 1,"#, #""window": 1e300,"#, "window"),
            (#""tokens_per_window": 40000"#, #""tokens_per_window": 9223372036854775807"#, "quotas"),
            (#""tool_ms": 20"#, #""tool_ms": 1e300"#, "tool_ms"),
            (#""deadline": 8"#, #""deadline": 1e300"#, "deadline"),
            (#""capacity": 0.5"#, #""capacity": 1e300"#, "capacity"),
            (#""until": 5.5"#, #""until": 1e300"#, "until"),
            (#""p99_ms": 450"#, #""p99_ms": 1e300"#, "latency"),
        ])
    func unrepresentable(original: String, replacement: String, reason: String) throws {
        let text = try #require(BuiltinScenarios.text(named: "tier-change"))
        #expect(text.contains(original))
        let error = #expect(throws: ScenarioError.self) {
            try BuiltinScenarios.decode(text.replacingOccurrences(of: original, with: replacement), source: "t.json")
        }
        #expect(error?.description.contains(reason) == true, "\(String(describing: error))")
    }

    @Test("The baseline leaves out the named tenant groups")
    func baseline() throws {
        let scenario = try BuiltinScenarios.load("hierarchy-collapse")
        let baseline = try #require(scenario.baseline)
        #expect(baseline.tenants.map(\.name) == ["light"])
    }

    @Test(
        "Go-style durations as OpenAI sends them",
        arguments: [
            (0.0, "0s"), (12.0, "12ms"), (1.5, "1.5ms"), (0.34, "340µs"), (1_000.0, "1s"), (179_560.0, "2m59.56s"),
            (360_000.0, "6m0s"), (85_656_648.0, "23h47m36.648s"),
        ])
    func goDurations(milliseconds: Double, expected: String) {
        #expect(GoDurationFormat.string(milliseconds: milliseconds) == expected)
    }

    @Test("The provider's quota admits its window, then answers 429 with a retry-after, and refunds")
    func quota() throws {
        let settings = ProviderSettings(requestsPerWindow: 100, tokensPerWindow: 1_000, window: 1)
        var quota = ProviderQuota(settings: settings)
        for _ in 0..<2 {
            guard case .admitted = quota.admit(estimate: 500, at: 0) else { Issue.record("refused early"); return }
        }
        guard case .limited(let retryAfterMs, let snapshot) = quota.admit(estimate: 500, at: 0) else {
            Issue.record("admitted beyond the quota")
            return
        }
        #expect(abs(retryAfterMs - 500) < 1)
        #expect(snapshot.tokensRemaining == 0)
        quota.refund(300, at: 0)
        guard case .limited = quota.admit(estimate: 500, at: 0) else { Issue.record("over-refunded"); return }
        guard case .admitted = quota.admit(estimate: 500, at: 0.2) else { Issue.record("did not refill"); return }
    }

    @Test("A capacity incident changes the stated limit, and Sluice's parser reads the provider's headers")
    func capacityHeaders() throws {
        let scenario = try BuiltinScenarios.load("tier-change")
        var quota = ProviderQuota(settings: scenario.provider)
        quota.advance(to: 3)
        #expect(quota.snapshot.tokenLimit == 20_000)
        let snapshot = quota.snapshot
        let headers = ResponseHeaders([
            "x-ratelimit-limit-tokens": String(snapshot.tokenLimit),
            "x-ratelimit-remaining-tokens": String(snapshot.tokensRemaining),
            "x-ratelimit-reset-tokens": GoDurationFormat.string(milliseconds: 250),
            "retry-after-ms": "250",
        ])
        let observation = ProviderObservation(status: 429, headers: headers)
        #expect(observation.responseClass == .quota)
        #expect(observation[.tokens]?.limit == 20_000)
        #expect(observation[.tokens]?.resetAfter == .milliseconds(250))
        #expect(observation.retryAfter == .milliseconds(250))
        quota.advance(to: 6)
        #expect(quota.snapshot.tokenLimit == 40_000)
    }

    @Test("Weighted max-min fair shares")
    func fairness() {
        let shares = RunMetrics.fairShares(
            demand: ["a": 10, "b": 100, "c": 100], weight: ["a": 1, "b": 1, "c": 2], capacity: 100)
        #expect(shares["a"] == 10)
        #expect(abs(shares["b"]! - 30) < 1e-9)
        #expect(abs(shares["c"]! - 60) < 1e-9)
    }

    @Test("Following a cut: the time until the last 429 after it")
    func follow() throws {
        var scenario = try BuiltinScenarios.load("tier-change")
        scenario.duration = 8
        var bins = Array(repeating: ProviderRecorder.Bin(), count: 80)
        for index in bins.indices {
            bins[index].capacityTokensPerSecond = (25..<55).contains(index) ? 20_000 : 40_000
            bins[index].tokensServed = Int(bins[index].capacityTokensPerSecond / 10)
        }
        bins[31].limited = 3  // last 429 in the bin ending at 3.2 s: 0.7 s after the cut at 2.5 s
        let run = RunResult(
            scenario: scenario, mode: .sluice, isBaseline: false, provider: bins, calls: [], waiting: [],
            workerFailures: [])
        let follow = try #require(RunMetrics.follow(run))
        #expect(abs(follow - 0.7) < 1e-9)
    }

    @Test("summary.json has exactly the issue's fields, null where a figure does not apply")
    func summaryShape() throws {
        let scenario = try BuiltinScenarios.load("retry-storm")
        let run = RunResult(
            scenario: scenario, mode: .none, isBaseline: false,
            provider: Array(repeating: ProviderRecorder.Bin(), count: 60), calls: [], waiting: [], workerFailures: [])
        let json = StormReport(runs: [run]).summaryJSON
        let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
        #expect(object != nil)
        let runs = try #require(object?["runs"] as? [[String: Any]])
        #expect(
            Set(runs[0].keys) == [
                "scenario", "mode", "provider_429s", "provider_429s_after_warmup", "goodput_tokens_per_sec",
                "utilization", "light_p50_ms", "light_p99_ms", "light_p99_baseline_ms", "jain_index",
                "runaway_tokens", "runaway_budget", "peak_queue_depth", "shed", "follow_seconds",
            ])
        #expect(runs[0]["runaway_tokens"] is NSNull)
        #expect(runs[0]["light_p99_baseline_ms"] is NSNull)
    }
}
