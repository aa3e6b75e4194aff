import Sluice
import SluiceRedis
import Synchronization
import Testing

/// A cancelled `Backpressure.call`: its operation is cancelled and awaited before the call returns,
/// and what the call took (its lease, its queue slot) is given back.
@Suite("Backpressure: a cancelled call", .serialized)
struct BackpressureCancellationTests {
    @Test("A call cancelled while its operation runs returns once the operation stopped and gives back what it took")
    func cancelledWhileRunning() async throws {
        let fixture = try BackpressureFixture()
        defer { Task { await fixture.cleanUp() } }
        let backpressure = Backpressure(
            redis: fixture.client,
            configuration: .init(
                partition: fixture.partition, health: .init(stepTimeout: .seconds(30)),  // a busy machine is no outage
                heartbeat: nil))
        let scope = "openai/gpt-4o"
        let call = ProviderCall(scope: scope, concurrency: 2, timeout: .seconds(30), maxAttempts: 1)
        let queue = AdmissionQueue(redis: fixture.client, partition: fixture.partition, scope: scope)
        let pool = LeasePool(redis: fixture.client, partition: fixture.partition, scope: scope, slots: 2)
        let started = Atomic(false)
        let stopped = Atomic(false)
        let task = Task {
            try await backpressure.call(call) { _ in
                started.store(true, ordering: .sequentiallyConsistent)
                do {
                    try await Task.sleep(for: .seconds(30))
                } catch {
                    // Stopping takes a moment (a cancelled task's sleep would return at once).
                    await withCancellationShieldForTests { try? await Task.sleep(for: .milliseconds(50)) }
                    stopped.store(true, ordering: .sequentiallyConsistent)
                    throw error
                }
                return CallOutcome(0)
            }
        }
        for _ in 0..<1_000 where !started.load(ordering: .sequentiallyConsistent) {
            try await Task.sleep(for: .milliseconds(10))
        }
        let operationStarted = started.load(ordering: .sequentiallyConsistent)
        try #require(operationStarted, "the operation never started")
        #expect(try await queue.status().inFlight == 1)
        #expect(try await pool.held() == 1)
        task.cancel()
        await #expect(throws: CancellationError.self) { try await task.value }
        let operationStopped = stopped.load(ordering: .sequentiallyConsistent)
        #expect(operationStopped, "the call returned while its operation still ran")

        // Its cleanup runs although the caller is cancelled (Steps.cleanup is shielded from cancellation).
        #expect(try await pool.held() == 0, "the lease was not given back")
        #expect(try await queue.status().inFlight == 0, "the queue slot was not given back")
    }
}

/// Runs `body` in a task of its own, which the caller's cancellation does not reach.
private func withCancellationShieldForTests(_ body: @escaping @Sendable () async -> Void) async {
    await Task { await body() }.value
}
