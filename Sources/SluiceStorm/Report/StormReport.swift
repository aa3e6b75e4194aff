import Foundation

/// The runs of one storm and their figures; writes `summary.json` and `report.html`, and the terminal table.
public struct StormReport: Sendable {
    public var runs: [RunResult]
    /// One entry per scenario × mode (baseline runs are folded into their scenario's figures).
    public var metrics: [RunMetrics]

    public init(runs: [RunResult]) {
        self.runs = runs
        metrics = runs.filter { !$0.isBaseline }.map { run in
            let baseline = runs.first { $0.isBaseline && $0.scenario.name == run.scenario.name && $0.mode == run.mode }
            return RunMetrics(run, baseline: baseline)
        }
    }

    /// `summary.json`: `{"runs": [{"scenario", "mode", "provider_429s", …, "redis_us_per_provider_call"}]}`.
    public var summaryJSON: String {
        func number(_ value: Double?, digits: Double = 1000) -> String {
            guard let value, value.isFinite else { return "null" }
            return String((value * digits).rounded() / digits)
        }
        func integer(_ value: Int?) -> String { value.map(String.init) ?? "null" }
        let entries = metrics.map { m in
            let reasons = m.shedByReason.sorted { $0.key < $1.key }.map { "\"\($0.key)\": \($0.value)" }
            return """
                    {"scenario": "\(m.scenario)", "mode": "\(m.mode)", "provider_429s": \(m.provider429s), \
                "provider_429s_after_warmup": \(m.provider429sAfterWarmup), \
                "goodput_tokens_per_sec": \(number(m.goodputTokensPerSecond, digits: 10)), \
                "utilization": \(number(m.utilization)), "light_p50_ms": \(number(m.lightP50Ms, digits: 10)), \
                "light_p99_ms": \(number(m.lightP99Ms, digits: 10)), \
                "light_p99_baseline_ms": \(number(m.lightP99BaselineMs, digits: 10)), \
                "light_refusals": \(integer(m.lightRefusals)), \
                "jain_index": \(number(m.jainIndex)), "runaway_tokens": \(integer(m.runawayTokens)), \
                "runaway_budget": \(integer(m.runawayBudget)), "peak_queue_depth": \(m.peakQueueDepth), \
                "shed": \(m.shed), "shed_by_reason": {\(reasons.joined(separator: ", "))}, \
                "shed_p99_ms": \(number(m.shedP99Ms, digits: 10)), \
                "follow_seconds": \(number(m.followSeconds, digits: 100)), \
                "redis_calls_per_provider_call": \(number(m.redisCallsPerProviderCall, digits: 100)), \
                "redis_us_per_provider_call": \(number(m.redisMicrosecondsPerProviderCall, digits: 100))}
                """
        }
        return "{\"runs\": [\n" + entries.joined(separator: ",\n") + "\n]}\n"
    }

    /// The terminal table: one block per scenario, one row per mode.
    public var table: String {
        let header = [
            "scenario", "mode", "429s", "429s>wu", "goodput/s", "util", "light p50", "light p99", "p99 base",
            "light refused", "jain", "runaway/budget", "peak queue", "shed", "follow s", "redis/call", "redis us/call",
        ]
        func ms(_ value: Double?) -> String { value.map { String(Int($0.rounded())) + "ms" } ?? "-" }
        func fraction(_ value: Double?) -> String { value.map { String(format: "%.2f", $0) } ?? "-" }
        var rows: [[String]] = []
        for m in metrics {
            let runaway = m.runawayTokens.map { "\($0)/\(m.runawayBudget.map(String.init) ?? "-")" } ?? "-"
            rows.append([
                m.scenario, m.mode, String(m.provider429s), String(m.provider429sAfterWarmup),
                String(Int(m.goodputTokensPerSecond.rounded())), String(format: "%.0f%%", m.utilization * 100),
                ms(m.lightP50Ms), ms(m.lightP99Ms), ms(m.lightP99BaselineMs), m.lightRefusals.map(String.init) ?? "-",
                fraction(m.jainIndex), runaway, String(m.peakQueueDepth), String(m.shed),
                m.followSeconds.map { String(format: "%.1f", $0) } ?? "-",
                m.redisCallsPerProviderCall.map { String(format: "%.1f", $0) } ?? "-",
                m.redisMicrosecondsPerProviderCall.map { String(format: "%.1f", $0) } ?? "-",
            ])
        }
        let widths = header.indices.map { column in
            ([header[column]] + rows.map { $0[column] }).map(\.count).max() ?? 0
        }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { index, cell in
                let pad = String(repeating: " ", count: widths[index] - cell.count)
                return index < 2 ? cell + pad : pad + cell
            }.joined(separator: "  ")
        }
        var text = line(header) + "\n" + line(widths.map { String(repeating: "-", count: $0) }) + "\n"
        var previous: String?
        for row in rows {
            if let previous, previous != row[0] { text += "\n" }
            text += line(row) + "\n"
            previous = row[0]
        }
        return text
    }

    /// Writes `summary.json` and `report.html` into `directory` (created if needed).
    public func write(to directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try summaryJSON.write(toFile: directory + "/summary.json", atomically: true, encoding: .utf8)
        try HTMLReport(report: self).html.write(toFile: directory + "/report.html", atomically: true, encoding: .utf8)
    }
}
