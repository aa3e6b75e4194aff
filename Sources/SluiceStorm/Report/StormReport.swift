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

    /// `summary.json`: `{"runs": [{"scenario", "mode", "provider_429s", …, "redis_us_per_provider_call"}]}`, written by
    /// `JSONEncoder` (keys sorted, one per line).
    public var summaryJSON: String {
        get throws {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            return String(decoding: try encoder.encode(Summary(runs: metrics.map(Summary.Run.init))), as: UTF8.self)
                + "\n"
        }
    }

    /// The shape of `summary.json`; the key names are the (the README's table lists them).
    struct Summary: Encodable {
        struct Run: Encodable {
            var scenario: String
            var mode: String
            var provider429s: Int
            var provider429sAfterWarmup: Int
            var goodputTokensPerSec: Rounded
            var utilization: Rounded
            var lightP50Ms: Rounded
            var lightP99Ms: Rounded
            var lightP99BaselineMs: Rounded
            var lightRefusals: Int?
            var jainIndex: Rounded
            var runawayTokens: Int?
            var runawayBudget: Int?
            var peakQueueDepth: Int
            var shed: Int
            var shedByReason: [String: Int]
            var shedP99Ms: Rounded
            var followSeconds: Rounded
            var redisCallsPerProviderCall: Rounded
            var redisUsPerProviderCall: Rounded

            init(_ m: RunMetrics) {
                scenario = m.scenario
                mode = m.mode
                provider429s = m.provider429s
                provider429sAfterWarmup = m.provider429sAfterWarmup
                goodputTokensPerSec = Rounded(m.goodputTokensPerSecond, decimals: 1)
                utilization = Rounded(m.utilization, decimals: 3)
                lightP50Ms = Rounded(m.lightP50Ms, decimals: 1)
                lightP99Ms = Rounded(m.lightP99Ms, decimals: 1)
                lightP99BaselineMs = Rounded(m.lightP99BaselineMs, decimals: 1)
                lightRefusals = m.lightRefusals
                jainIndex = Rounded(m.jainIndex, decimals: 3)
                runawayTokens = m.runawayTokens
                runawayBudget = m.runawayBudget
                peakQueueDepth = m.peakQueueDepth
                shed = m.shed
                shedByReason = m.shedByReason
                shedP99Ms = Rounded(m.shedP99Ms, decimals: 1)
                followSeconds = Rounded(m.followSeconds, decimals: 2)
                redisCallsPerProviderCall = Rounded(m.redisCallsPerProviderCall, decimals: 2)
                redisUsPerProviderCall = Rounded(m.redisMicrosecondsPerProviderCall, decimals: 2)
            }

            enum CodingKeys: String, CodingKey {
                case scenario, mode, utilization, shed
                case provider429s = "provider_429s"
                case provider429sAfterWarmup = "provider_429s_after_warmup"
                case goodputTokensPerSec = "goodput_tokens_per_sec"
                case lightP50Ms = "light_p50_ms"
                case lightP99Ms = "light_p99_ms"
                case lightP99BaselineMs = "light_p99_baseline_ms"
                case lightRefusals = "light_refusals"
                case jainIndex = "jain_index"
                case runawayTokens = "runaway_tokens"
                case runawayBudget = "runaway_budget"
                case peakQueueDepth = "peak_queue_depth"
                case shedByReason = "shed_by_reason"
                case shedP99Ms = "shed_p99_ms"
                case followSeconds = "follow_seconds"
                case redisCallsPerProviderCall = "redis_calls_per_provider_call"
                case redisUsPerProviderCall = "redis_us_per_provider_call"
            }

            /// Every key is written, null where a figure does not apply (synthesized coding would leave nil ones
            /// out).
            func encode(to encoder: any Encoder) throws {
                var container = encoder.container(keyedBy: CodingKeys.self)
                try container.encode(scenario, forKey: .scenario)
                try container.encode(mode, forKey: .mode)
                try container.encode(provider429s, forKey: .provider429s)
                try container.encode(provider429sAfterWarmup, forKey: .provider429sAfterWarmup)
                try container.encode(goodputTokensPerSec, forKey: .goodputTokensPerSec)
                try container.encode(utilization, forKey: .utilization)
                try container.encode(lightP50Ms, forKey: .lightP50Ms)
                try container.encode(lightP99Ms, forKey: .lightP99Ms)
                try container.encode(lightP99BaselineMs, forKey: .lightP99BaselineMs)
                try container.encode(lightRefusals, forKey: .lightRefusals)
                try container.encode(jainIndex, forKey: .jainIndex)
                try container.encode(runawayTokens, forKey: .runawayTokens)
                try container.encode(runawayBudget, forKey: .runawayBudget)
                try container.encode(peakQueueDepth, forKey: .peakQueueDepth)
                try container.encode(shed, forKey: .shed)
                try container.encode(shedByReason, forKey: .shedByReason)
                try container.encode(shedP99Ms, forKey: .shedP99Ms)
                try container.encode(followSeconds, forKey: .followSeconds)
                try container.encode(redisCallsPerProviderCall, forKey: .redisCallsPerProviderCall)
                try container.encode(redisUsPerProviderCall, forKey: .redisUsPerProviderCall)
            }
        }

        var runs: [Run]
    }

    /// A figure rounded to a number of decimals; null when absent or not finite (`JSONEncoder` refuses non-finite
    /// numbers).
    struct Rounded: Encodable {
        var value: Double?
        var decimals: Int

        init(_ value: Double?, decimals: Int) {
            self.value = value
            self.decimals = decimals
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            guard let value, value.isFinite else { return try container.encodeNil() }
            var scale = 1.0
            for _ in 0..<decimals { scale *= 10 }
            let rounded = (value * scale).rounded() / scale
            try container.encode(rounded.isFinite ? rounded : value)
        }
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
        try (try summaryJSON).write(toFile: directory + "/summary.json", atomically: true, encoding: .utf8)
        try HTMLReport(report: self).html.write(toFile: directory + "/report.html", atomically: true, encoding: .utf8)
    }
}
