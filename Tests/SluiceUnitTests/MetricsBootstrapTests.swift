import CoreMetrics
import MetricsTestKit
import Sluice
import SluiceRedis
import Testing

/// The default path of every layer's metrics: no factory given, so they go to the backend the application bootstrapped
/// (`MetricsSystem.bootstrap`, once per process: this is the only test that bootstraps it).
@Suite("Metrics: the bootstrapped backend")
struct MetricsBootstrapTests {
    @Test("With no factory given, Backpressure's and the client's metrics go to the bootstrapped MetricsSystem backend")
    func bootstrappedBackend() async throws {
        let metrics = TestMetrics()
        MetricsSystem.bootstrap(metrics)
        // Nothing listens on port 1: every Redis step is an outage, and the policy lets the call on.
        var configuration = try RedisConfiguration(url: "redis://127.0.0.1:1")
        configuration.connectTimeout = .milliseconds(500)
        let client = try RedisClient(configuration: configuration)
        defer { client.close() }
        let backpressure = Backpressure(
            redis: client, configuration: .init(partition: "bootstrapped", failurePolicy: .failOpen, heartbeat: nil))
        let result = try await backpressure.call(ProviderCall(scope: "s", timeout: .seconds(10))) { _ in
            CallOutcome("ran")
        }
        #expect(result.value == "ran" && result.degraded)
        let admitted = metrics.counterTotal(
            label: "sluice_failure_policy_decisions_total",
            dimensions: [("partition", "bootstrapped"), ("policy", "fail_open"), ("result", "admitted")])
        #expect(admitted == 1, "the failure policy's admission reached the bootstrapped backend")
        #expect(
            metrics.counterTotal(
                label: "sluice_provider_responses_total", dimensions: [("partition", "bootstrapped"), ("class", "ok")])
                == 1)
    }
}
