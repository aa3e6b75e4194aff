// libFuzzer target: a storm scenario file (`sluice storm --scenario FILE`).
//
// Beyond "does not crash": a scenario that validates can be run. What the coordinator and the workers derive from
// it without I/O is computed here (the library settings of `sluice` mode, which must themselves be valid;
// rescaling to any `--duration`; baselines; the provider's time series and the report of a run), and every time
// it holds fits the conversions to `Duration` the workers make when they sleep (tool calls, latencies, deadlines).
import Foundation
import Sluice

@testable import SluiceStorm

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    guard let scenario = try? BuiltinScenarios.decode(text, source: "fuzz") else { return 0 }
    // `sluice storm --duration` takes 2...3600 s.
    for variant in [scenario, scenario.rescaled(to: 2), scenario.rescaled(to: 3_600)]
        + (scenario.baseline.map { [$0] } ?? [])
    {
        derive(variant)
    }
    // The report's cost grows with the run's length (a bin per 100 ms): on a 2-second timeline, so that the
    // fuzzer runs thousands of inputs a minute. Its sizes come from times bounded by validation.
    report(scenario.rescaled(to: 2))
    return 0
}

/// The provider's time series and the report of a run (one that made no calls): metrics, summary, table, charts.
func report(_ scenario: Scenario) {
    var recorder = ProviderRecorder()
    recorder.close(duration: scenario.duration, settings: scenario.provider)
    let bins = recorder.bins
    let run = RunResult(
        scenario: scenario, mode: .sluice, isBaseline: false, provider: bins, calls: [],
        waiting: Array(repeating: 0, count: bins.count), workerFailures: [],
        ceiling: Array(repeating: scenario.provider.tokensPerSecond, count: bins.count))
    let report = StormReport(runs: [run])
    // summary.json encodes, and parses back, whatever the scenario's name holds.
    do {
        let summary = try report.summaryJSON
        _ = try JSONSerialization.jsonObject(with: Data(summary.utf8))
    } catch {
        preconditionFailure("the summary of a valid scenario is not JSON: \(error)")
    }
    _ = report.table
    _ = HTMLReport(report: report).html
}

func derive(_ scenario: Scenario) {
    let provider = scenario.provider
    let settings = SluiceSettings(provider: provider)
    _ = settings.concurrencySlots
    do {
        try settings.reconciler.validate()
        try Limiter.Configuration(
            defaults: settings.defaults(
                tokensPerWindow: provider.tokensPerWindow, requestsPerWindow: provider.requestsPerWindow)
        ).validate()
    } catch {
        preconditionFailure("a valid scenario gives invalid library settings: \(error)")
    }
    _ = provider.capacityChanges
    _ = provider.tokensPerSecond
    let latency = LatencyModel(settings: provider.latency)
    let slowest = provider.incidents.compactMap(\.latencyFactor).max() ?? 1
    for group in scenario.tenants {
        _ = group.tenantNames
        _ = group.arrivals.surgeFactor(at: scenario.duration / 2)
        let tree = group.tree
        for call in [tree.planner, tree.step] + (tree.final.map { [$0] } ?? []) + (tree.loop.map { [$0.call] } ?? []) {
            let worst = latency.milliseconds(quantile: 0.999_999, outputTokens: call.maxTokens, factor: slowest)
            fitsMicroseconds(worst, "latency")
        }
        fitsMicroseconds(tree.toolMs, "tool_ms")
        fitsMicroseconds((tree.deadline ?? scenario.duration + 60) * 1000, "deadline")
    }
}

/// The workers sleep for `.microseconds(Int64(milliseconds * 1000))`.
func fitsMicroseconds(_ milliseconds: Double, _ what: String) {
    precondition(Int64(exactly: (milliseconds * 1000).rounded(.down)) != nil, "\(what) \(milliseconds) ms overflows")
}
