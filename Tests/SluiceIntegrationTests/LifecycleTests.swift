import Foundation
import Logging
import ServiceLifecycle
import Sluice
import SluiceRedis
import Testing

/// The background work as `Service`s: nothing happens in `init`; in a `ServiceGroup` the layer registers and beats
/// until the graceful shutdown, then leaves the registry, and the client closes after it.
@Suite("Lifecycle: Backpressure and RedisClient as services")
struct LifecycleTests {
    private static func registered(_ client: RedisClient, partition: String, worker: String) async throws -> Bool {
        try await client.send("ZSCORE", RedisArgument("sluice:{\(partition)}:workers"), RedisArgument(worker)).string
            != nil
    }

    @Test("init does no I/O; run() registers and beats until the graceful shutdown, then leaves; the client closes")
    func serviceGroup() async throws {
        let partition = "lifecycle-\(UUID().uuidString.prefix(8))"
        let observer = try patientRedisClient()
        defer { observer.close() }
        let client = try patientRedisClient()
        let backpressure = Backpressure(
            redis: client,
            configuration: .init(partition: partition, health: patientHealth, heartbeat: .milliseconds(50)))
        let worker = try #require(backpressure.membership?.workerID)

        // Several heartbeat intervals after init: still not registered (no background task started by init).
        try await Task.sleep(for: .milliseconds(300))
        #expect(try await !Self.registered(observer, partition: partition, worker: worker))

        let logs = CapturedLogs()
        let group = ServiceGroup(services: [client, backpressure], logger: logs.logger(label: "group", level: .info))
        let running = Task { try await group.run() }
        var joined = false
        for _ in 0..<200 where !joined {  // up to 10 s on a loaded machine
            joined = try await Self.registered(observer, partition: partition, worker: worker)
            if !joined { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(joined, "the service never registered the worker")
        // Calls work while the group runs.
        let result = try await backpressure.call(ProviderCall(scope: "m", timeout: .seconds(30))) { _ in
            CallOutcome(42)
        }
        #expect(result.value == 42)

        await group.triggerGracefulShutdown()
        try await running.value
        #expect(try await !Self.registered(observer, partition: partition, worker: worker), "it did not leave")
        let closed = await #expect(throws: RedisError.self) { try await client.send("PING") }
        #expect(closed?.code == .closed)
    }

    @Test("Without a ServiceGroup: start() registers, shutdown() leaves")
    func startAndShutdown() async throws {
        let partition = "lifecycle-\(UUID().uuidString.prefix(8))"
        let client = try patientRedisClient()
        defer { client.close() }
        let backpressure = Backpressure(
            redis: client,
            configuration: .init(partition: partition, health: patientHealth, heartbeat: .milliseconds(50)))
        let worker = try #require(backpressure.membership?.workerID)
        backpressure.start()
        var joined = false
        for _ in 0..<200 where !joined {
            joined = try await Self.registered(client, partition: partition, worker: worker)
            if !joined { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(joined)
        await backpressure.shutdown()
        #expect(try await !Self.registered(client, partition: partition, worker: worker))
    }
}

/// A client of the shared test server that waits long for its replies: these tests are about spans and lifecycles,
/// not outages, and the shared server stalls for seconds when the whole suite loads a busy machine.
func patientRedisClient() throws -> RedisClient {
    var configuration = try RedisConfiguration(url: TestRedis.url)
    configuration.commandTimeout = .seconds(15)
    configuration.connectTimeout = .seconds(5)
    return try RedisClient(configuration: configuration)
}

/// The breaker around Redis with steps as patient as ``patientRedisClient()``.
let patientHealth = RedisHealth.Configuration(stepTimeout: .seconds(15))
