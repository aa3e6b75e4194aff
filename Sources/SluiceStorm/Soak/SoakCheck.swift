import Foundation

/// The end of a chaos soak: reads every worker's ledger and the chaos driver's fault log and checks, exactly,
/// that nothing Redis admitted went over a limit:
/// - each token bucket (``SoakPlan``): for every interval `[a, b]` between two admissions, the admitted amount is
///   at most `burst + rate × (b − a + 1 ms)` (Redis decides at fractional ms and reports whole ms, hence 1 ms);
///   while the driver has the flipped tenant on its strict quota, the strict rate applies to intervals that lie
///   inside that period;
/// - each request tree: its admitted tokens are at most its budget.
/// Admissions decided without Redis (fail-open: no `admittedAt`) are left out and counted. It also counts late
/// calls, hostile inputs by outcome, and decisions per second outside faults and through each kind of fault.
public struct SoakCheck {
    /// One fault (or quota flip) of the driver's log: its kind and when it lasted, wall-clock ms.
    public struct Fault: Codable, Sendable {
        public var kind: String
        public var start: Double
        public var end: Double
        /// For `quota-flip`: `strict` or `loose`.
        public var detail: String?
    }

    public struct Violation: Codable, Sendable {
        public var limit: String
        public var from: Int64
        public var to: Int64
        public var admitted: Double
        public var allowed: Double
    }

    public struct Report: Codable, Sendable {
        public var over_admitted: Int
        public var over_admitted_examples: [Violation]
        public var admissions_checked: Int
        public var fail_open_admissions: Int
        public var refusals: Int
        public var errors: [String: Int]
        /// Calls past their deadline by more than ``SoakPlan/lateMargin``, less the time their process stood still.
        public var late_calls: Int
        /// Calls past their deadline by more than the margin, stalls included.
        public var late_calls_raw: Int
        public var late_call_worst_ms: Double
        public var late_call_worst_raw_ms: Double
        public var hostile_inputs: [String: Int]
        public var decisions_per_second: [String: Double]
        public var ledger_torn_lines: Int
    }

    let entries: [SoakEntry]
    let faults: [Fault]
    let tornLines: Int
    let startMs: Double
    let endMs: Double

    /// Reads every `*.jsonl` ledger in `ledgerDirectory` and the fault log (one JSON ``Fault`` a line).
    public init(ledgerDirectory: String, faultLog: String, startMs: Double, endMs: Double) throws {
        var entries: [SoakEntry] = []
        var torn = 0
        let decoder = JSONDecoder()
        for file in try FileManager.default.contentsOfDirectory(atPath: ledgerDirectory) where file.hasSuffix(".jsonl")
        {
            let text = try String(contentsOfFile: ledgerDirectory + "/" + file, encoding: .utf8)
            for line in text.split(separator: "\n") {
                if let entry = try? decoder.decode(SoakEntry.self, from: Data(line.utf8)) {
                    entries.append(entry)
                } else {
                    torn += 1
                }
            }
        }
        var faults: [Fault] = []
        if let text = try? String(contentsOfFile: faultLog, encoding: .utf8) {
            for line in text.split(separator: "\n") {
                if let fault = try? decoder.decode(Fault.self, from: Data(line.utf8)) { faults.append(fault) }
            }
        }
        self.entries = entries
        self.faults = faults
        self.tornLines = torn
        self.startMs = startMs
        self.endMs = endMs
    }

    public func run() -> Report {
        let admissions = entries.filter { $0.kind == "admit" }
        let checked = admissions.filter { $0.admittedAt != nil }
        var violations: [Violation] = []

        // Buckets: the global requests, each tenant's tokens.
        func amounts(_ scope: String, _ resource: String) -> [(Int64, Double)] {
            checked.compactMap { entry in
                guard entry.path?.contains(scope) == true, let amount = entry.cost?[resource] else { return nil }
                return (entry.admittedAt!, Double(amount))
            }
        }
        let global = "global=\(SoakPlan.partition)"
        violations += Self.bucketViolations(
            amounts(global, "requests"), SoakPlan.globalRequests, limit: "\(global) requests")
        for tenant in SoakPlan.treeTenants + SoakPlan.reservingTenants {
            let scope = "tenant=\(tenant)"
            let all = amounts(scope, "tokens")
            violations += Self.bucketViolations(all, SoakPlan.tenantTokens, limit: "\(scope) tokens")
            guard tenant == SoakPlan.flippedTenant else { continue }
            // Strict periods: from the end of the flip to strict until the start of the next flip.
            let flips = faults.filter { $0.kind == "quota-flip" }.sorted { $0.start < $1.start }
            for (index, flip) in flips.enumerated() where flip.detail == "strict" {
                let from = Int64(flip.end.rounded(.up))
                let to = index + 1 < flips.count ? Int64(flips[index + 1].start) : Int64.max
                let inside = all.filter { $0.0 >= from && $0.0 <= to }
                violations += Self.bucketViolations(
                    inside, SoakPlan.strictTenantTokens, limit: "\(scope) tokens (strict)")
            }
        }
        // Trees: admitted tokens within the budget.
        var treeTokens: [String: Int] = [:]
        for entry in checked {
            if let tree = entry.tree { treeTokens[tree, default: 0] += entry.cost?["tokens"] ?? 0 }
        }
        for (tree, tokens) in treeTokens.sorted(by: { $0.key < $1.key }) where tokens > SoakPlan.treeBudget {
            violations.append(
                Violation(
                    limit: "tree=\(tree) tokens budget", from: 0, to: 0, admitted: Double(tokens),
                    allowed: Double(SoakPlan.treeBudget)))
        }

        var errors: [String: Int] = [:]
        for entry in entries where entry.kind == "error" { errors[entry.detail ?? "?", default: 0] += 1 }
        var hostile: [String: Int] = [:]
        for entry in entries where entry.kind == "hostile" {
            hostile[(entry.via ?? "?") + ":" + (entry.detail ?? "?"), default: 0] += 1
        }
        // Late: past the deadline by more than the margin, not counting the time the process itself stood still.
        let margin = Double(SoakPlan.lateMargin / .microseconds(1)) / 1000
        let overruns = entries.filter { $0.kind == "late" }.map { ($0.elapsedMs ?? 0) - ($0.limitMs ?? 0) }
        let stalls = entries.filter { $0.kind == "late" }.map { $0.stalledMs ?? 0 }
        let lateness = zip(overruns, stalls).map { $0 - $1 }
        return Report(
            over_admitted: violations.count, over_admitted_examples: Array(violations.prefix(5)),
            admissions_checked: checked.count, fail_open_admissions: admissions.count - checked.count,
            refusals: entries.filter { $0.kind == "refuse" }.count, errors: errors,
            late_calls: lateness.filter { $0 > margin }.count, late_calls_raw: overruns.count,
            late_call_worst_ms: lateness.max() ?? 0, late_call_worst_raw_ms: overruns.max() ?? 0,
            hostile_inputs: hostile, decisions_per_second: decisionRates(), ledger_torn_lines: tornLines)
    }

    /// Violations of `burst + rate × (b − a + 1 ms)` over the admissions `(ms, amount)`: one per admission that
    /// ends an interval over the bound (the worst interval ending there is reported).
    static func bucketViolations(_ admissions: [(Int64, Double)], _ bucket: SoakPlan.Bucket, limit: String)
        -> [Violation]
    {
        let sorted = admissions.sorted { $0.0 < $1.0 }
        let perMs = bucket.rate / 1000
        var violations: [Violation] = []
        var prefix = 0.0  // admitted before the interval's first admission
        // The smallest (prefix before i) − rate × t_i over i ≤ j, and where it was.
        var best = Double.infinity
        var bestTime: Int64 = 0
        var bestPrefix = 0.0
        var index = 0
        while index < sorted.count {
            // Admissions at the same ms go together: an interval holds all of them or none.
            let time = sorted[index].0
            var amount = 0.0
            while index < sorted.count, sorted[index].0 == time {
                amount += sorted[index].1
                index += 1
            }
            let candidate = prefix - perMs * Double(time)
            if candidate < best {
                best = candidate
                bestTime = time
                bestPrefix = prefix
            }
            prefix += amount
            let admitted = prefix - bestPrefix
            let allowed = bucket.burst + perMs * Double(time - bestTime + 1)
            if admitted > allowed + 1e-6 {
                violations.append(
                    Violation(limit: limit, from: bestTime, to: time, admitted: admitted, allowed: allowed))
            }
        }
        return violations
    }

    /// Decisions (admissions, refusals and errors alike) per second: `baseline` outside every fault, and through
    /// each kind of fault (the sum of its periods).
    func decisionRates() -> [String: Double] {
        let decisions = entries.filter { ["admit", "refuse", "error"].contains($0.kind) }.map(\.wall)
        let kinds = Set(faults.filter { $0.kind != "quota-flip" && $0.kind != "hostile-cli" }.map(\.kind))
        var rates: [String: Double] = [:]
        let disruptive = faults.filter { kinds.contains($0.kind) }
        for kind in kinds.sorted() {
            let periods = faults.filter { $0.kind == kind }
            let seconds = periods.reduce(0) { $0 + max(0.001, $1.end - $1.start) } / 1000
            let count = decisions.filter { time in periods.contains { time >= $0.start && time <= $0.end } }.count
            rates[kind] = (Double(count) / seconds * 10).rounded() / 10
        }
        let inFault = decisions.filter { time in disruptive.contains { time >= $0.start && time <= $0.end } }.count
        let faultSeconds = disruptive.reduce(0) { $0 + max(0, $1.end - $1.start) } / 1000
        let baselineSeconds = max(1, (endMs - startMs) / 1000 - faultSeconds)
        rates["baseline"] = (Double(decisions.count - inFault) / baselineSeconds * 10).rounded() / 10
        return rates
    }
}
