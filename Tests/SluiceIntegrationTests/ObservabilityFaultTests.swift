import Foundation
import Logging
import MetricsTestKit
import Sluice
import SluiceRedis
import Testing

/// Logs and metrics through a real Redis outage: `Backpressure.call`s against a private, password-protected
/// redis-server that is stopped (SIGSTOP) and resumed. Each layer gets a `TestMetrics` factory of its own (no
/// process-wide bootstrap: parallel tests stay independent) and a logger that captures every line.
@Suite("Observability: logs and metrics through a Redis outage", .serialized)
struct ObservabilityFaultTests {
    static let password = "obs-test-password-7f3a"
    static let tenant = "tenant-acme-4411"
    /// A second tenant, with its budget untouched, for the calls during and after the outage.
    static let otherTenant = "tenant-zeta-9902"

    @Test("Down, degraded with the policy, back: counters, gauges, timers and each transition's log line")
    func outage() async throws {
        let server = try RedisServer(arguments: ["--requirepass", Self.password])
        defer { server.stop() }
        var configuration = try RedisConfiguration(url: "redis://:\(Self.password)@127.0.0.1:\(server.port)")
        // Generous for a loaded machine (seen: seconds-long stalls with the whole suite running on 2 busy cores; a
        // healthy step slower than the step timeout would count as an outage), and the command timeout well inside
        // the outage, so that the stopped server's connection is dropped and made again.
        configuration.commandTimeout = .seconds(4)
        configuration.connectTimeout = .milliseconds(500)
        configuration.reconnectBackoff = .init(initial: .milliseconds(20), maximum: .milliseconds(200))
        let logs = CapturedLogs()
        let clientMetrics = TestMetrics()
        let metrics = TestMetrics()
        let client = try RedisClient(
            configuration: configuration, backgroundLogger: logs.logger(label: "redis"),
            metricsFactory: clientMetrics)
        defer { client.close() }
        let limiter = try Limiter(
            client: client, configuration: .init(defaults: ["tenant": "tokens: budget 3000"]),
            logger: logs.logger(label: "limiter"))
        let backpressure = Backpressure(
            redis: client,
            configuration: .init(
                partition: "obs", failurePolicy: .failOpen,
                health: .init(
                    stepTimeout: .seconds(5), initialCoolDown: .milliseconds(100), maximumCoolDown: .seconds(1)),
                heartbeat: nil),
            limiter: limiter, logger: logs.logger(label: "backpressure"), metricsFactory: metrics)
        let path = try ScopePath(parsing: ["global=obs", "tenant=\(Self.tenant)"])
        let call = ProviderCall(
            scope: "openai/gpt-4o", estimate: ["tokens": 1_000], quotaPath: path, concurrency: 4,
            timeout: .seconds(15), maxAttempts: 1)
        let other = ProviderCall(
            scope: "openai/gpt-4o", estimate: ["tokens": 1],
            quotaPath: try ScopePath(parsing: ["global=obs", "tenant=\(Self.otherTenant)"]), concurrency: 4,
            timeout: .seconds(15), maxAttempts: 1)
        let p = ("partition", "obs")
        let policy = ("policy", "fail_open")

        // Healthy: three calls fit the tenant's budget of 3000 tokens, the fourth is denied by it.
        for _ in 0..<3 {
            let result = try await backpressure.call(call) { _ in
                // While the operation runs, this worker counts it in flight and holds its lease.
                let inFlight = try metrics.expectGauge("sluice_worker_calls_in_flight", [p]).lastValue
                let leases = try metrics.expectGauge("sluice_worker_leases_held", [p]).lastValue
                #expect(
                    inFlight == 1 && leases == 1,
                    "in flight \(String(describing: inFlight)), leases \(String(describing: leases))")
                return CallOutcome((), usage: ["tokens": 1_000])
            }
            #expect(!result.degraded)
        }
        await #expect(throws: BackpressureError.self) {
            _ = try await backpressure.call(call) { _ in CallOutcome(()) }
        }
        #expect(metrics.counterTotal(label: "sluice_decisions_total", dimensions: [p, ("result", "admitted")]) == 3)
        let denied = metrics.counters(label: "sluice_decisions_total").filter {
            $0.dimensions.contains { $0 == ("result", "denied") }
        }
        #expect(denied.count == 1 && denied.first?.totalValue == 1)
        let deniedDimensions = Dictionary(uniqueKeysWithValues: denied.first?.dimensions ?? [])
        #expect(deniedDimensions["limit_kind"] == "budget", "\(deniedDimensions)")
        #expect(deniedDimensions["scope_kind"] == "tenant" && deniedDimensions["resource"] == "tokens")
        #expect(try metrics.expectTimer("sluice_admission_wait_seconds", [p]).values.count == 3)
        #expect(try metrics.expectGauge("sluice_worker_calls_in_flight", [p]).lastValue == 0)
        #expect(try metrics.expectGauge("sluice_worker_calls_waiting", [p]).lastValue == 0)
        #expect(try metrics.expectGauge("sluice_worker_leases_held", [p]).lastValue == 0)
        #expect(metrics.counterTotal(label: "sluice_provider_responses_total", dimensions: [p, ("class", "ok")]) == 3)
        #expect(try metrics.expectGauge("sluice_worker_breakers", [p, ("state", "closed")]).lastValue == 1)
        #expect(try metrics.expectGauge("sluice_redis_degraded", [p, policy]).lastValue == 0)
        let latencies = clientMetrics.timers(label: "sluice_redis_command_duration_seconds").flatMap(\.values)
        #expect(latencies.count >= 4 && latencies.allSatisfy { $0 > 0 }, "\(latencies)")

        // Down: the server stops answering. Fail open lets every call through, unchecked, within its deadline.
        let policyAdmissionsBefore = metrics.counterTotal(
            label: "sluice_failure_policy_decisions_total", dimensions: [p, policy, ("result", "admitted")])
        server.pause()
        let downSince = ContinuousClock.now
        var degradedCalls = 0
        while ContinuousClock.now - downSince < .seconds(6) {
            let result = try await backpressure.call(other) { _ in CallOutcome(()) }
            if result.degraded { degradedCalls += 1 }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(degradedCalls >= 3)
        #expect(try metrics.expectGauge("sluice_redis_degraded", [p, policy]).lastValue == 1)
        #expect(metrics.counterTotal(label: "sluice_redis_outages_total", dimensions: [p, policy]) == 1)
        let admittedByPolicy = metrics.counterTotal(
            label: "sluice_failure_policy_decisions_total", dimensions: [p, policy, ("result", "admitted")])
        #expect(admittedByPolicy - policyAdmissionsBefore == Int64(degradedCalls))
        let down = logs.lines(containing: "Redis is unavailable")
        #expect(down.count == 1 && down.first?.level == .warning)
        #expect(down.first?.metadata["sluice.failure_policy"]?.description == "fail open")
        #expect(down.first?.metadata["sluice.partition"]?.description == "obs")

        // The degraded time grows while the outage lasts, not only once it is over (the outage began when the
        // first step timed out, seconds after the server stopped).
        var degradedWhileDown: Int64 = 0
        let countingSince = ContinuousClock.now
        while degradedWhileDown < 1, ContinuousClock.now - countingSince < .seconds(15) {
            _ = try await backpressure.call(other) { _ in CallOutcome(()) }
            try await Task.sleep(for: .milliseconds(100))
            degradedWhileDown = metrics.counterTotal(label: "sluice_degraded_seconds_total", dimensions: [p, policy])
        }
        #expect(degradedWhileDown >= 1, "no degraded time counted while Redis was down")

        // Back: decisions are checked in Redis again; the stretch is counted and the connection came back.
        server.resume()
        var recovered = false
        let backSince = ContinuousClock.now
        while !recovered, ContinuousClock.now - backSince < .seconds(15) {
            recovered = (try? await backpressure.call(other) { _ in CallOutcome(()) })?.degraded == false
            if !recovered { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(recovered, "decisions never resumed after the server was resumed: \(logs.all)")
        #expect(try metrics.expectGauge("sluice_redis_degraded", [p, policy]).lastValue == 0)
        let degradedSeconds = metrics.counterTotal(label: "sluice_degraded_seconds_total", dimensions: [p, policy])
        #expect(degradedSeconds >= 1, "the 6 s outage counted \(degradedSeconds) s")
        let back = logs.lines(containing: "Redis is available again")
        #expect(back.count == 1 && back.first?.level == .notice)
        #expect(back.first?.metadata["sluice.failure_policy"]?.description == "fail open")
        #expect(clientMetrics.counterTotal(label: "sluice_redis_connection_losses_total") >= 1)
        #expect(clientMetrics.counterTotal(label: "sluice_redis_reconnects_total") >= 1)
        #expect(logs.lines(containing: "Redis connection lost").allSatisfy { $0.level == .warning })
        #expect(!logs.lines(containing: "Redis connection lost").isEmpty)
        #expect(logs.lines(containing: "Redis connection re-established").first?.level == .info)
        #expect(
            logs.lines(containing: "Redis connection re-established").first?.metadata["redis.endpoint"]?.description
                == "127.0.0.1:\(server.port)")

        // No line carries the password; none at info or above names the tenant.
        let all = logs.all
        #expect(all.count >= 4)
        for record in all {
            #expect(!record.description.contains(Self.password), "a log line shows the password: \(record)")
            if record.level >= .info {
                #expect(!record.description.contains(Self.tenant), "a log line names the tenant: \(record)")
                #expect(!record.description.contains(Self.otherTenant), "a log line names the tenant: \(record)")
            }
        }
    }
}
