import Foundation
import Sluice
import SluiceRedis
import Testing

/// The retry budget shared by worker processes.
@Suite("Retry budget across processes", .serialized, .onEveryServer)
struct RetryBudgetProcessTests {
    @Test("Retries beyond the fleet's budget are refused: retries <= ratio x requests + floor")
    func retriesBeyondTheBudgetAreRefused() async throws {
        let fixture = try BackpressureFixture()
        defer { Task { await fixture.cleanUp() } }
        let arguments = [
            "retry", "--partition", fixture.partition, "--scope", "openai/gpt-4o", "--calls", "20", "--attempts", "4",
            "--ratio", "0.1", "--floor", "5",
        ]
        let results = try await WorkerProcess.runAll(Array(repeating: arguments, count: 4))
        let outcomes = totalOutcomes(results)
        let calls = 80
        let retries = results.reduce(0) { $0 + $1.int("attempts") } - calls
        #expect(outcomes.values.reduce(0, +) == calls, "\(results)")
        #expect(retries <= 13, "0.1 x 80 requests + 5 = 13 retries at most, made \(retries)")
        #expect(retries >= 5, "the floor's retries were allowed: \(retries)")
        #expect(outcomes["retry-budget-exhausted", default: 0] > 0, "\(outcomes)")
        #expect(try await fixture.events("retry-budget-exhausted").count >= 1)
    }

    @Test("A retry is allowed again once new requests have refilled the budget")
    func budgetRefills() async throws {
        let fixture = try BackpressureFixture()
        defer { Task { await fixture.cleanUp() } }
        let budget = RetryBudget(
            redis: fixture.client, partition: fixture.partition, scope: "s",
            configuration: .init(ratio: 0.5, floor: 0, window: .seconds(3600)))
        #expect(try await budget.allowRetry().allowed == false, "no requests, no floor: no retries")
        for _ in 0..<4 { try await budget.recordRequest() }
        #expect(try await budget.allowRetry().allowed)
        #expect(try await budget.allowRetry().allowed)
        #expect(try await budget.allowRetry().allowed == false, "0.5 x 4 = 2")
        try await budget.recordRequest()
        try await budget.recordRequest()
        let verdict = try await budget.allowRetry()
        #expect(verdict.allowed && verdict.retries >= 2.99 && verdict.requests >= 5.99)
    }
}
