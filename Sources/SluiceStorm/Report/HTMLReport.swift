import Foundation

/// `report.html`: per scenario, the table of its modes and charts over time with every mode on the same axes —
/// goodput and the fleet's ceiling against the provider's capacity, 429s, errors, calls waiting, light tenants'
/// p99 latency. One file,
/// inline SVG, nothing fetched from the network.
struct HTMLReport {
    let report: StormReport

    static let colors = ["none": "#d62728", "single-bucket": "#ff7f0e", "sluice": "#1f77b4"]
    /// Chart resolution: half a second, coarser for long runs (about 60 points at most).
    static func step(duration: Double) -> Double {
        max(0.5, (duration / 60 / 0.5).rounded(.up) * 0.5)
    }

    var html: String {
        var body = ""
        var seen: [String] = []
        for run in report.runs where !run.isBaseline && !seen.contains(run.scenario.name) {
            seen.append(run.scenario.name)
            body += section(for: run.scenario)
        }
        return """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><title>sluice storm report</title>
            <style>
            body { font-family: system-ui, sans-serif; margin: 24px; color: #222; max-width: 1200px; }
            table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13px; }
            th, td { border-bottom: 1px solid #ddd; padding: 4px 8px; text-align: right; }
            th:first-child, td:first-child { text-align: left; }
            .charts { display: flex; flex-wrap: wrap; gap: 12px; }
            .note { color: #666; font-size: 13px; }
            .bad { color: #b00; }
            </style></head><body>
            <h1>sluice storm</h1>
            <p class="note">Generated \(Self.timestamp()). Each scenario ran once per mode on the same work (the same
            trees, arrivals, prompt sizes and provider latencies); the provider's own records are the ground truth.
            Shaded bands are the provider's incidents.</p>
            \(body)
            </body></html>

            """
    }

    private func section(for scenario: Scenario) -> String {
        let runs = report.runs.filter { $0.scenario.name == scenario.name && !$0.isBaseline }
        let metrics = report.metrics.filter { $0.scenario == scenario.name }
        var rows = ""
        for m in metrics {
            func cell(_ value: Double?, _ format: String) -> String { value.map { String(format: format, $0) } ?? "–" }
            let failures =
                m.workerFailures.isEmpty
                ? "" : "<br><span class=\"bad\">\(SVGChart.escaped(m.workerFailures.joined(separator: "; ")))</span>"
            rows += """
                <tr><td style="color:\(Self.colors[m.mode] ?? "#000")">\(m.mode)\(failures)</td>\
                <td>\(m.provider429s)</td><td>\(m.provider429sAfterWarmup)</td>\
                <td>\(Int(m.goodputTokensPerSecond.rounded()))</td><td>\(cell(m.utilization * 100, "%.0f%%"))</td>\
                <td>\(cell(m.lightP50Ms, "%.0f"))</td><td>\(cell(m.lightP99Ms, "%.0f"))</td>\
                <td>\(cell(m.lightP99BaselineMs, "%.0f"))</td><td>\(m.lightRefusals.map(String.init) ?? "–")</td>\
                <td>\(cell(m.jainIndex, "%.3f"))</td>\
                <td>\(m.runawayTokens.map(String.init) ?? "–") / \(m.runawayBudget.map(String.init) ?? "–")</td>\
                <td>\(m.peakQueueDepth)</td><td>\(m.shed)</td><td>\(cell(m.shedP99Ms, "%.0f"))</td>\
                <td>\(cell(m.followSeconds, "%.1f"))</td><td>\(m.callsOK) / \(m.callsTotal)</td>\
                <td>\(cell(m.redisCallsPerProviderCall, "%.2f"))</td>\
                <td>\(cell(m.redisMicrosecondsPerProviderCall, "%.1f"))</td></tr>

                """
        }
        let bands = scenario.provider.incidents.map { incident in
            SVGChart.Band(from: incident.at, until: incident.until ?? scenario.duration, label: Self.label(incident))
        }
        let step = Self.step(duration: scenario.duration)
        func chart(_ title: String, _ unit: String, capacity: Bool = false, _ values: (RunResult) -> [Double?])
            -> String
        {
            let steps = Int((scenario.duration / step).rounded(.down))
            var series = runs.map { run in
                SVGChart.Series(
                    name: run.mode.name, color: Self.colors[run.mode.name] ?? "#000",
                    points: values(run).prefix(steps).enumerated().map {
                        (Double($0.offset + 1) * step, $0.element)
                    })
            }
            if capacity, let run = runs.first {
                let points = Self.resample(run.provider, step: step) { $0.map(\.capacityTokensPerSecond).max() ?? 0 }
                series.append(
                    SVGChart.Series(
                        name: "provider capacity", color: "#555",
                        points: points.prefix(steps).enumerated().map {
                            (Double($0.offset + 1) * step, $0.element)
                        },
                        dashed: true))
            }
            return SVGChart(title: title, unit: unit, xMax: scenario.duration, series: series, bands: bands).render()
        }
        let perSecond = 1 / step
        let charts = [
            chart("Goodput vs provider capacity", "tokens/s", capacity: true) { run in
                Self.resample(run.provider, step: step) { Double($0.reduce(0) { $0 + $1.tokensServed }) * perSecond }
            },
            chart("Fleet ceiling vs provider capacity", "tokens/s", capacity: true) { run in
                let width = Int((step / ProviderRecorder.binSeconds).rounded())
                return stride(from: 0, to: run.ceiling.count, by: width).map {
                    run.ceiling[$0..<min(run.ceiling.count, $0 + width)].compactMap { $0 }.max()
                }
            },
            chart("Provider 429s", "per second") { run in
                Self.resample(run.provider, step: step) { Double($0.reduce(0) { $0 + $1.limited }) * perSecond }
            },
            chart("Provider errors and timeouts", "per second") { run in
                Self.resample(run.provider, step: step) {
                    Double($0.reduce(0) { $0 + $1.errors + $1.timeouts }) * perSecond
                }
            },
            chart("Calls waiting (queue depth, fleet-wide)", "calls") { run in
                let width = Int((step / ProviderRecorder.binSeconds).rounded())
                return stride(from: 0, to: run.waiting.count, by: width).map {
                    Double(run.waiting[$0..<min(run.waiting.count, $0 + width)].max() ?? 0)
                }
            },
            chart("Light tenants' p99 latency (calls ending in each \(SVGChart.short(step)) s)", "ms") { run in
                Self.latencySeries(run, duration: scenario.duration, step: step)
            },
        ]
        return """
            <section><h2>\(scenario.name)</h2><p>\(SVGChart.escaped(scenario.description))</p>
            <table><tr><th>mode</th><th>429s</th><th>429s after warm-up</th><th>goodput tok/s</th>\
            <th>utilisation</th><th>light p50 ms</th><th>light p99 ms</th><th>p99 without heavy</th>\
            <th>light refusals &amp; 429s</th><th>Jain</th><th>runaway / budget</th><th>peak queue</th><th>shed</th>\
            <th>shed p99 ms</th><th>follow s</th><th>calls ok</th><th>Redis calls per provider call</th>\
            <th>Redis µs per provider call</th></tr>
            \(rows)</table>
            <div class="charts">\(charts.joined(separator: "\n"))</div></section>

            """
    }

    /// Groups the provider's bins into chart steps.
    static func resample(
        _ bins: [ProviderRecorder.Bin], step: Double, _ value: ([ProviderRecorder.Bin]) -> Double
    ) -> [Double?] {
        let width = Int((step / ProviderRecorder.binSeconds).rounded())
        return stride(from: 0, to: bins.count, by: width).map { value(Array(bins[$0..<min(bins.count, $0 + width)])) }
    }

    static func latencySeries(_ run: RunResult, duration: Double, step: Double) -> [Double?] {
        let count = Int((duration / step).rounded(.up))
        var buckets = Array(repeating: RunMetrics.Latencies(), count: count)
        for call in run.calls where call.role == "light" {
            let index = min(count - 1, max(0, Int(call.end / step)))
            buckets[index].record(call.latencyMs)
        }
        return buckets.map { $0.percentile(0.99) }
    }

    static func label(_ incident: Incident) -> String {
        var parts: [String] = []
        if let capacity = incident.capacity { parts.append("capacity ×\(SVGChart.short(capacity))") }
        if let rate = incident.errorRate { parts.append("\(Int(rate * 100))% \(incident.error ?? "503")") }
        if let factor = incident.latencyFactor { parts.append("latency ×\(SVGChart.short(factor))") }
        return parts.joined(separator: ", ")
    }

    static func timestamp() -> String {
        let formatter = ISO8601DateFormatter()
        return formatter.string(from: Date())
    }
}
