import Foundation
import Testing

@testable import SluiceStorm

/// The chaos soak's checker against ledgers made by hand: it must find every admission over a bucket's
/// `burst + rate × elapsed` and over a tree's budget, and nothing else.
@Suite("Soak: the ledger check")
struct SoakCheckTests {
    let bucket = SoakPlan.Bucket(rate: 10, burst: 20)

    @Test("A bucket used to its bound exactly is within it; one unit more, anywhere, is one violation")
    func bucketBound() {
        // The full burst at t = 0, then the rate: 10/s, one every 100 ms, for 5 s.
        var admissions: [(Int64, Double)] = (0..<20).map { _ in (1_000, 1) }
        admissions += (1...50).map { (1_000 + Int64($0) * 100, 1) }
        #expect(SoakCheck.bucketViolations(admissions, bucket, limit: "b").isEmpty)
        // Two units more at 3 s: the interval from 1 s to 4 s holds 20 + 30 + 2 > 20 + 10 × 3.001.
        let over = SoakCheck.bucketViolations(admissions + [(4_000, 2)], bucket, limit: "b")
        #expect(!over.isEmpty)
        #expect(over.first?.from == 1_000)
        #expect(over.first?.to == 4_000)
        // Order does not matter; an idle bucket refills to its burst and no further.
        let idle = [(Int64(0), 20.0), (60_000, 20), (60_000, 1)]
        #expect(SoakCheck.bucketViolations(idle.reversed(), bucket, limit: "b").count == 1)
    }

    @Test("Fail-open admissions are counted, not checked; tree budgets and strict periods are")
    func ledger() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("soak-check-\(UUID())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let ledger = try SoakLedger(path: directory + "/worker-0-1.jsonl")
        func admit(_ at: Int64?, tenant: String, tokens: Int, tree: String? = nil) {
            var entry = SoakEntry(kind: "admit", worker: 0)
            entry.admittedAt = at
            entry.path = ["global=soak", "tenant=\(tenant)"]
            entry.cost = ["requests": 0, "tokens": tokens]
            entry.tree = tree
            ledger.append(entry)
        }
        // Tree x: two calls within its budget; tree y: over it.
        admit(1_000, tenant: "t1", tokens: SoakPlan.treeBudget - 10, tree: "x")
        admit(90_000, tenant: "t1", tokens: 10, tree: "x")
        admit(200_000, tenant: "t1", tokens: SoakPlan.treeBudget, tree: "y")
        admit(300_000, tenant: "t1", tokens: 1, tree: "y")
        // Without Redis: far over every limit, and not a violation.
        for _ in 0..<5 { admit(nil, tenant: "t2", tokens: 100_000) }
        // t0 on its strict quota from 500 s: its burst, then 1 s later twice the strict rate.
        admit(600_000, tenant: "t0", tokens: Int(SoakPlan.strictTenantTokens.burst))
        admit(601_000, tenant: "t0", tokens: Int(SoakPlan.strictTenantTokens.rate) * 2)
        let faults = directory + "/faults.jsonl"
        try #"{"kind":"quota-flip","start":499000,"end":500000,"detail":"strict"}"#.write(
            toFile: faults, atomically: true, encoding: .utf8)
        let report = try SoakCheck(ledgerDirectory: directory, faultLog: faults, startMs: 0, endMs: 700_000).run()
        #expect(report.fail_open_admissions == 5)
        #expect(report.admissions_checked == 6)
        #expect(report.over_admitted == 2)
        #expect(
            Set(report.over_admitted_examples.map(\.limit)) == ["tenant=t0 tokens (strict)", "tree=y tokens budget"])
    }
}
