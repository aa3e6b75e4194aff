import Foundation
import Sluice
import SluiceRedis
import Testing

/// One circuit breaker shared by worker processes.
@Suite("Breakers: one fleet-wide breaker, opened once, probed by a few", .serialized, .onEveryServer)
struct BreakersProcessTests {
    @Test("A breaker opens once for the whole fleet and, half-open, lets only the configured number of probes through")
    func opensOnceAndCapsProbes() async throws {
        let fixture = try BackpressureFixture()
        defer { Task { await fixture.cleanUp() } }
        let coolDown = 4_000
        let common = [
            "breaker", "--partition", fixture.partition, "--dependency", "tool:search", "--concurrency", "3",
            "--min-calls", "20", "--ratio", "0.15", "--cool-down-ms", String(coolDown), "--probes", "2",
        ]
        // Phase 1: every call fails. The breaker must open once, and then refuse every worker.
        let failing = try await WorkerProcess.runAll(
            Array(repeating: common + ["--outcome", "fail", "--duration-ms", "1500"], count: 4))
        let opened = try await fixture.events("breaker-open")
        #expect(opened.count == 1, "one transition for the fleet, not one per worker: \(opened.map(\.fields))")
        let outcomes = totalOutcomes(failing)
        let ran = outcomes["ran", default: 0]
        #expect(ran >= 20, "it waited for the minimum number of calls: \(outcomes)")
        #expect(ran <= 20 + 4 * 3, "only calls already in flight ran after it opened: \(outcomes)")
        for result in failing {
            #expect(result.outcomes()["breaker-open", default: 0] > 0, "every worker saw it open: \(result)")
        }

        // Phase 2: after the cool-down, slow successful calls. Only 2 probes may run fleet-wide.
        try await Task.sleep(for: .milliseconds(coolDown + 500))
        let probing = try await WorkerProcess.runAll(
            Array(repeating: common + ["--outcome", "succeed", "--hold-ms", "5000", "--duration-ms", "1500"], count: 4))
        let probeOutcomes = totalOutcomes(probing)
        #expect(probeOutcomes["probes"] == 2, "\(probeOutcomes)")
        #expect(probeOutcomes["ran", default: 0] == 0, "no ordinary call ran while half-open: \(probeOutcomes)")
        #expect(probeOutcomes["breaker-open", default: 0] > 0)
        #expect(try await fixture.events("breaker-half-open").count == 1)
        #expect(try await fixture.events("breaker-closed").count == 1, "both probes succeeded: it closed")
        #expect(try await fixture.events("breaker-open").count == 1)

        // Closed again: calls go through.
        let breaker = CircuitBreaker(
            redis: fixture.client, partition: fixture.partition, name: "tool:search",
            configuration: .init(minimumCalls: 20, coolDown: .milliseconds(coolDown), probes: 2))
        let permit = try await breaker.permit()
        #expect(permit.state == .closed && !permit.isProbe)
    }

    @Test("A failed probe opens the breaker again for another cool-down")
    func failedProbeReopens() async throws {
        let fixture = try BackpressureFixture()
        defer { Task { await fixture.cleanUp() } }
        let logs = CapturedLogs()
        let breaker = CircuitBreaker(
            redis: fixture.client, partition: fixture.partition, name: "model:small",
            // A cool-down no pause of a loaded machine between two steps below outlasts.
            configuration: .init(minimumCalls: 4, failureRatio: 0.5, coolDown: .seconds(2), probes: 1),
            logger: logs.logger(label: "breaker"))
        for _ in 0..<4 { try await breaker.record(try await breaker.permit(), success: false) }
        let refused = await #expect(throws: BackpressureError.self) { try await breaker.permit() }
        #expect(refused?.code == .breakerOpen && refused?.retryAfter != nil)
        try await Task.sleep(for: .milliseconds(2_100))
        let probe = try await breaker.permit()
        #expect(probe.isProbe && probe.state == .halfOpen)
        await #expect(throws: BackpressureError.self, "only one probe at a time") { try await breaker.permit() }
        #expect(try await breaker.record(probe, success: false) == .open)
        await #expect(throws: BackpressureError.self) { try await breaker.permit() }
        #expect(try await fixture.events("breaker-open").count == 2)
        // This worker caused both openings (closed → open, then half-open → open): each is logged once.
        let opened = logs.lines(containing: "circuit breaker opened")
        #expect(opened.count == 2 && opened.allSatisfy { $0.level == .warning }, "\(logs.all)")
        #expect(opened.first?.metadata["sluice.breaker"] == "model:small")
    }

    @Test("Fewer calls than the minimum never open the breaker, whatever their failure rate")
    func minimumCalls() async throws {
        let fixture = try BackpressureFixture()
        defer { Task { await fixture.cleanUp() } }
        let breaker = CircuitBreaker(redis: fixture.client, partition: fixture.partition, name: "dep")
        for _ in 0..<19 { try await breaker.record(try await breaker.permit(), success: false) }
        #expect(try await breaker.permit().state == .closed)
        try await breaker.record(try await breaker.permit(), success: false)
        await #expect(throws: BackpressureError.self) { try await breaker.permit() }
    }
}
