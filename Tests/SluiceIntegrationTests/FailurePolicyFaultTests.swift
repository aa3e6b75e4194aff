import Foundation
import Sluice
import SluiceRedis
import Testing

/// Each failure policy against a real redis-server that is stopped (SIGSTOP) and killed and
/// restarted: calls never hang past their deadline, and decisions resume without manual action.
@Suite("Failure policy: Redis stopped, killed and restarted", .serialized)
struct FailurePolicyFaultTests {
    /// A Backpressure on its own server, with short Redis steps.
    private static func setUp(_ policy: FailurePolicy) throws -> (RedisServer, RedisClient, Backpressure) {
        let server = try RedisServer()
        var configuration = try RedisConfiguration(url: server.url)
        configuration.commandTimeout = .seconds(2)
        configuration.connectTimeout = .milliseconds(500)
        configuration.reconnectBackoff = .init(initial: .milliseconds(20), maximum: .milliseconds(200))
        let client = try RedisClient(configuration: configuration)
        let backpressure = Backpressure(
            redis: client,
            configuration: .init(
                partition: "faults", failurePolicy: policy,
                health: .init(
                    stepTimeout: .milliseconds(300), initialCoolDown: .milliseconds(100), maximumCoolDown: .seconds(1)),
                heartbeat: .milliseconds(200)))
        return (server, client, backpressure)
    }

    private static let call = ProviderCall(scope: "openai/gpt-4o", concurrency: 8, timeout: .seconds(1), maxAttempts: 1)

    /// Runs `count` calls at once; each result is the call's outcome and how long it took.
    private static func burst(_ backpressure: Backpressure, _ count: Int) async -> [(Result<Bool, any Error>, Duration)]
    {
        await withTaskGroup(of: (Result<Bool, any Error>, Duration).self) { group in
            for _ in 0..<count {
                group.addTask {
                    let start = ContinuousClock.now
                    do {
                        let result = try await backpressure.call(call) { _ in CallOutcome(()) }
                        return (.success(result.degraded), ContinuousClock.now - start)
                    } catch {
                        return (.failure(error), ContinuousClock.now - start)
                    }
                }
            }
            var all: [(Result<Bool, any Error>, Duration)] = []
            for await outcome in group { all.append(outcome) }
            return all
        }
    }

    /// Calls until one succeeds without degradation (at most `within`); returns how long it took. The bound is
    /// generous: with 300 ms step timeouts a loaded machine reads as an outage for a while.
    private static func recovery(_ backpressure: Backpressure, within: Duration = .seconds(60)) async -> Duration? {
        let start = ContinuousClock.now
        while ContinuousClock.now - start < within {
            if let result = try? await backpressure.call(call, { _ in CallOutcome(()) }), !result.degraded {
                return ContinuousClock.now - start
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return nil
    }

    @Test("Fail closed: refused within the deadline while Redis is stopped; decisions resume after a restart")
    func failClosed() async throws {
        let (server, client, backpressure) = try Self.setUp(.failClosed)
        defer { server.stop(); client.close() }
        #expect(await Self.recovery(backpressure) != nil, "the first decisions (scripts loading) never succeeded")

        server.pause()
        let outcomes = await Self.burst(backpressure, 20)
        for (result, took) in outcomes {
            guard case .failure(let error) = result else {
                Issue.record("a call went through while Redis was stopped and the policy is fail closed")
                continue
            }
            #expect((error as? BackpressureError)?.code == .redisUnavailable, "\(error)")
            // A hung call would wait for Redis to come back (never, while it is stopped); the margin over
            // the 1 s deadline is for a loaded machine.
            #expect(took < .seconds(5), "the call hung \(took), past its 1 s deadline")
        }
        #expect(backpressure.health.statistics.degraded)

        server.kill9()
        try server.restart()
        let recovered = await Self.recovery(backpressure)
        #expect(recovered != nil, "decisions never resumed after the restart")
        let statistics = backpressure.health.statistics
        #expect(!statistics.degraded && statistics.outages >= 1)
        #expect(statistics.degradedTime > .milliseconds(100), "the degraded time is counted: \(statistics)")
        #expect(backpressure.degradedDecisions.refused >= 20)
        await backpressure.shutdown()
    }

    @Test("Fail open: calls go through unchecked while Redis is stopped, and are checked again after a restart")
    func failOpen() async throws {
        let (server, client, backpressure) = try Self.setUp(.failOpen)
        defer { server.stop(); client.close() }
        #expect(await Self.recovery(backpressure) != nil, "the first decisions (scripts loading) never succeeded")

        server.pause()
        let outcomes = await Self.burst(backpressure, 20)
        for (result, took) in outcomes {
            guard case .success(let degraded) = result else {
                Issue.record("a call was refused although the policy is fail open: \(result)")
                continue
            }
            #expect(degraded, "the result says it was not checked")
            #expect(took < .seconds(5), "the call took \(took), past its 1 s deadline (margin for a loaded machine)")
        }

        server.kill9()
        try server.restart()
        #expect(await Self.recovery(backpressure) != nil, "decisions never resumed after the restart")
        // Checked again: the call took a lease on the new server (its key holds the fencing counter).
        let leases = try await client.send("EXISTS", "sluice:{faults}:lease:openai%2Fgpt-4o")
        #expect(leases.integer == 1)
        #expect(backpressure.degradedDecisions.admitted >= 20)
        await backpressure.shutdown()
    }

    @Test("Local fallback: this worker admits its share of the last known ceiling while Redis is stopped")
    func localFallback() async throws {
        let (server, client, backpressure) = try Self.setUp(.localFallback(fleetCeiling: 40, burst: .seconds(1)))
        defer { server.stop(); client.close() }
        // Three other live workers: this one's share of 40/s is 10/s.
        for index in 0..<3 {
            let other = FleetMembership(
                redis: client, partition: "faults", workerID: "other-\(index)", interval: .seconds(20))
            try await other.beat()
        }
        let membership = try #require(backpressure.membership)
        #expect(try await membership.beat() == 4)
        #expect(await Self.recovery(backpressure) != nil, "the first decisions (scripts loading) never succeeded")

        server.pause()
        let outcomes = await Self.burst(backpressure, 40)
        let admitted = outcomes.filter { if case .success = $0.0 { return true } else { return false } }.count
        let refused = outcomes.compactMap { outcome -> BackpressureError? in
            if case .failure(let error) = outcome.0 { return error as? BackpressureError } else { return nil }
        }
        #expect(backpressure.fallbackShare == 10)
        // A bucket of 10 plus at most ~1 s of refill at 10/s.
        #expect(admitted >= 10 && admitted <= 22, "admitted \(admitted) of 40 on a share of 10/s")
        // Refused by the empty bucket, or (on a loaded machine) admitted too close to the deadline to finish.
        #expect(refused.count == 40 - admitted)
        #expect(refused.allSatisfy { $0.code == .redisUnavailable || $0.code == .deadlineExceeded }, "\(refused)")
        #expect(refused.contains { $0.code == .redisUnavailable })
        #expect(outcomes.allSatisfy { $0.1 < .seconds(5) }, "no call hangs past its 1 s deadline (margin for load)")

        server.kill9()
        try server.restart()
        #expect(await Self.recovery(backpressure) != nil, "decisions never resumed after the restart")
        await backpressure.shutdown()
    }
}
