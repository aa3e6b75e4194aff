import Foundation
import SluiceRedis
import Testing

@testable import Sluice

/// Faults of a Redis Cluster while decisions run, each on a cluster of the test's own: a primary killed (its
/// replica takes over) and a slot moved to another primary.
@Suite("Sluice on a Redis Cluster under faults", .serialized)
struct ClusterFaultTests {
    /// What the decision loops saw.
    private struct Tally: Sendable {
        var allowed = 0
        var errors: [String: Int] = [:]
        var longest: Duration = .zero
        /// For each partition, when its decisions last failed and first succeeded after that.
        var lastFailure: [String: ContinuousClock.Instant] = [:]
        var firstSuccessAfterKill: [String: ContinuousClock.Instant] = [:]
    }

    /// What the test and its decision loops share: when the primary was killed, and whether to stop.
    private final class Control: Sendable {
        let killedAt = SluiceMutex<ContinuousClock.Instant?>(nil)
        let done = SluiceMutex(false)
        let tally = SluiceMutex(Tally())
        var stop: Bool { done.withLock { $0 } }
    }

    /// Runs `callers` loops of decisions over `partitions` until told to stop.
    private static func decide(
        _ limiter: Limiter, partitions: [String], callers: Int, control: Control
    ) async -> Tally {
        await withTaskGroup(of: Void.self) { group in
            for caller in 0..<callers {
                group.addTask {
                    var round = 0
                    while !control.stop {
                        let partition = partitions[(caller + round * callers) % partitions.count]
                        round += 1
                        let started = ContinuousClock.now
                        var failure: String?
                        var allowed = false
                        do {
                            let path = try ScopePath("global=\(partition)", "tenant=t\(caller % 4)")
                            allowed = try await limiter.decide(path, cost: ["requests": 1]).allowed
                        } catch let error as QuotaError {
                            failure = error.redisError.map { "redis:\($0.code)" } ?? "\(error.code)"
                        } catch {
                            failure = "\(error)"
                        }
                        let ended = ContinuousClock.now
                        let kill = control.killedAt.withLock { $0 }
                        control.tally.withLock { tally in
                            tally.longest = max(tally.longest, ended - started)
                            if let failure {
                                tally.errors[failure, default: 0] += 1
                                tally.lastFailure[partition] = ended
                            } else {
                                if allowed { tally.allowed += 1 }
                                if let kill, started > kill, tally.firstSuccessAfterKill[partition] == nil,
                                    tally.lastFailure[partition].map({ $0 > kill }) == true
                                {
                                    tally.firstSuccessAfterKill[partition] = ended
                                }
                            }
                        }
                        if failure != nil { try? await Task.sleep(for: .milliseconds(20)) }
                    }
                }
            }
        }
        return control.tally.withLock { $0 }
    }

    @Test(
        "A primary SIGKILLed under load: its replica takes over and decisions resume within 15 s, no call waits past its deadline",
        .timeLimit(.minutes(3)))
    func primaryKilledUnderLoad() async throws {
        let cluster = try await RedisCluster.start(primaries: 3, replicasPerPrimary: 1, nodeTimeout: .seconds(2))
        defer { cluster.stop() }
        var configuration = try RedisConfiguration(url: cluster.url)
        configuration.commandTimeout = .seconds(1)
        configuration.connectTimeout = .milliseconds(500)
        configuration.reconnectBackoff = .init(initial: .milliseconds(20), maximum: .milliseconds(200))
        let client = try RedisClient(configuration: configuration)
        defer { client.close() }
        let limiter = try Limiter(
            client: client, configuration: .init(defaults: ["global": "requests: bucket rate=1000000/s burst=1000000"]))
        let partitions = (0..<24).map { "fo-\($0)-\(UUID().uuidString.prefix(6))" }
        // The partitions the victim serves.
        let victim = try await cluster.primaryPort(forSlot: HashSlot.of(partitions[0]))
        var victims: [String] = []
        for partition in partitions where try await cluster.primaryPort(forSlot: HashSlot.of(partition)) == victim {
            victims.append(partition)
        }

        let control = Control()
        async let tally = Self.decide(limiter, partitions: partitions, callers: 8, control: control)
        try await Task.sleep(for: .seconds(1))
        cluster.kill9(port: victim)
        let kill = ContinuousClock.now
        control.killedAt.withLock { $0 = kill }
        // Run until every victim partition has decided again (or 25 s, to see how far past 15 s it went).
        var recovered = false
        while ContinuousClock.now - kill < .seconds(25) {
            try await Task.sleep(for: .milliseconds(200))
            let probe = try? await limiter.decide(try ScopePath("global=\(victims[0])"), cost: ["requests": 0])
            if probe != nil {
                recovered = true
                break
            }
        }
        try await Task.sleep(for: .seconds(1))
        control.done.withLock { $0 = true }
        let result = await tally

        #expect(recovered, "decisions on the killed primary's slots did not resume within 25 s")
        #expect(cluster.nodes.count == 6)
        let newPrimary = try await cluster.primaryPort(forSlot: HashSlot.of(victims[0]))
        #expect(newPrimary != victim, "the replica was promoted")
        // Every partition of the victim decided again, within 15 s of the kill.
        for partition in victims {
            let resumed = try #require(
                result.firstSuccessAfterKill[partition] ?? (result.lastFailure[partition] == nil ? kill : nil),
                "\(partition) never decided again after the kill")
            #expect(resumed - kill < .seconds(15), "\(partition) resumed \(resumed - kill) after the kill")
            print("cluster fail-over: \(partition) decided again \(resumed - kill) after the kill")
        }
        print("cluster fail-over: longest call \(result.longest), errors \(result.errors), allowed \(result.allowed)")
        // Only outages were seen (no protocol or server errors), and no call waited far past its 1 s deadline:
        // a reconnect attempt (0.5 s) and a slot map read fit in the slack.
        let outageCodes: Set<String> = [
            "redis:unavailable", "redis:connect", "redis:endOfFile", "redis:io", "redis:timeout",
        ]
        #expect(result.errors.keys.allSatisfy { outageCodes.contains($0) }, "\(result.errors)")
        #expect(result.longest < .seconds(3), "the longest call took \(result.longest)")
        #expect(result.allowed > 100, "decisions ran: \(result.allowed)")
    }

    @Test(
        "A slot moved to another primary (IMPORTING/MIGRATING, MIGRATE, SETSLOT NODE) while decisions run: no error, no charge lost",
        .timeLimit(.minutes(3)))
    func slotMigratedUnderLoad() async throws {
        let cluster = try await RedisCluster.start(primaries: 3, replicasPerPrimary: 0)
        defer { cluster.stop() }
        var configuration = try RedisConfiguration(url: cluster.url)
        configuration.commandTimeout = .seconds(5)
        let client = try RedisClient(configuration: configuration)
        defer { client.close() }
        let limiter = try Limiter(
            client: client,
            configuration: .init(defaults: [
                "global": "requests: bucket rate=1/d burst=1000000", "tenant": "requests: window 1000000/h",
            ]))
        let moving = "mig-\(UUID().uuidString.prefix(8))"
        let partitions = [moving, moving, moving, "still-\(UUID().uuidString.prefix(8))"]
        let slot = HashSlot.of(moving)
        let source = try await cluster.primaryPort(forSlot: slot)
        let target = try #require(try await cluster.primaryPorts().first { $0 != source })

        let control = Control()
        async let tally = Self.decide(limiter, partitions: partitions, callers: 8, control: control)
        try await Task.sleep(for: .milliseconds(500))
        try await cluster.migrate(slot: slot, to: target, pause: .milliseconds(100))
        try await Task.sleep(for: .milliseconds(500))
        // And back again, with a client whose slot map is now stale in the other direction.
        try await cluster.migrate(slot: slot, to: source, pause: .milliseconds(100))
        try await Task.sleep(for: .milliseconds(500))
        control.done.withLock { $0 = true }
        let result = await tally

        #expect(result.errors.isEmpty, "callers saw errors: \(result.errors)")
        #expect(try await cluster.primaryPort(forSlot: slot) == source)
        // The bucket moved with its keys: what is left is the burst less every admitted decision (and this one).
        func charged(_ partition: String) async throws -> Int {
            let check = try await limiter.decide(
                try ScopePath("global=\(partition)", "tenant=t0"), cost: ["requests": 1], reportLimits: true)
            let remaining = try #require(check.limits.first { $0.scopeIndex == 0 }?.remaining)
            return 1_000_000 - Int(remaining) - 1
        }
        let movedCharge = try await charged(moving)
        let stillCharge = try await charged(partitions[3])
        #expect(
            movedCharge + stillCharge == result.allowed,
            "charged \(movedCharge) + \(stillCharge), admitted \(result.allowed)")
        #expect(result.allowed > 100)
    }

    @Test("ASK during a migration and MOVED after it are followed, one command at a time and in pipelines")
    func asksAndMoves() async throws {
        let cluster = try await RedisCluster.start(primaries: 3, replicasPerPrimary: 0)
        defer { cluster.stop() }
        let client = try RedisClient(url: cluster.url)
        defer { client.close() }
        let tag = "ask-\(UUID().uuidString.prefix(8))"
        let slot = HashSlot.of(tag)
        let moved = RedisArgument("{\(tag)}:moved")
        let fresh = RedisArgument("{\(tag)}:fresh")
        let stays = RedisArgument("{\(tag)}:stays")
        _ = try await client.send("SET", moved, "1", "PX", 60_000)
        _ = try await client.send("SET", stays, "2", "PX", 60_000)
        let source = try await cluster.primaryPort(forSlot: slot)
        let target = try #require(try await cluster.primaryPorts().first { $0 != source })
        let sourceID = try await cluster.nodeID(source)
        let targetID = try await cluster.nodeID(target)
        try await cluster.send(target, "CLUSTER", "SETSLOT", RedisArgument(slot), "IMPORTING", RedisArgument(sourceID))
        try await cluster.send(source, "CLUSTER", "SETSLOT", RedisArgument(slot), "MIGRATING", RedisArgument(targetID))
        try await cluster.send(source, "MIGRATE", "127.0.0.1", RedisArgument(target), "", 0, 5000, "KEYS", moved)

        // The source answers ASK for the key it gave away and for a new key; it still serves the other one.
        #expect(try await client.send("GET", moved).string == "1")
        _ = try await client.send("SET", fresh, "3", "PX", 60_000)
        #expect(try await client.send("GET", stays).string == "2")
        let replies = try await client.pipeline([
            RedisCommand("GET", moved), RedisCommand("GET", stays), RedisCommand("GET", fresh),
        ])
        #expect(replies.map(\.string) == ["1", "2", "3"])
        // The new key was written on the target.
        let onTarget = try cluster.connection(target)
        defer { onTarget.close() }
        let asked = try await onTarget.pipeline([RedisCommand("ASKING"), RedisCommand("GET", fresh)])
        #expect(asked.last?.string == "3")

        // Finish the move: the client's map is stale and the source answers MOVED, which it follows.
        try await cluster.send(source, "MIGRATE", "127.0.0.1", RedisArgument(target), "", 0, 5000, "KEYS", stays)
        for port in [target, source] {
            try await cluster.send(port, "CLUSTER", "SETSLOT", RedisArgument(slot), "NODE", RedisArgument(targetID))
        }
        #expect(try await client.send("GET", stays).string == "2")
        #expect(
            try await client.pipeline([RedisCommand("GET", moved), RedisCommand("GET", fresh)]).map(\.string) == [
                "1", "3",
            ])
        #expect(try await client.primaries().count == 3)
    }

    @Test(
        "A cluster that cannot serve a slot is an outage: .unavailable within the deadline, and the failure policy decides",
        .timeLimit(.minutes(2)))
    func clusterDownIsAnOutage() async throws {
        // No replicas: a killed primary's slots stay unserved, and the whole cluster answers CLUSTERDOWN.
        let cluster = try await RedisCluster.start(primaries: 3, replicasPerPrimary: 0, nodeTimeout: .seconds(1))
        defer { cluster.stop() }
        let ports = try await cluster.primaryPorts()
        let victim = ports[0]
        let survivor = ports[1]
        // A partition that a surviving primary serves.
        let partition = try #require(
            await (0..<200).map { "down-\($0)" }.asyncFirst { name in
                (try? await cluster.primaryPort(forSlot: HashSlot.of(name))) == survivor
            })
        var configuration = try RedisConfiguration(url: "redis://127.0.0.1:\(survivor)")
        configuration.commandTimeout = .milliseconds(500)
        configuration.reconnectBackoff = .init(initial: .milliseconds(20), maximum: .milliseconds(200))
        let client = try RedisClient(configuration: configuration)
        defer { client.close() }
        func backpressure(_ policy: FailurePolicy) -> Backpressure {
            Backpressure(
                redis: client,
                configuration: .init(
                    partition: partition, failurePolicy: policy,
                    health: .init(
                        stepTimeout: .seconds(2), initialCoolDown: .milliseconds(50),
                        maximumCoolDown: .milliseconds(100)),
                    heartbeat: nil))
        }
        let call = ProviderCall(scope: "openai/gpt-4o", concurrency: 8, timeout: .seconds(3), maxAttempts: 1)
        _ = try await backpressure(.failClosed).call(call) { _ in CallOutcome(()) }

        cluster.kill9(port: victim)
        // Wait until the survivor itself says the cluster is down.
        let end = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < end {
            let info = try await cluster.send(survivor, "CLUSTER", "INFO").string ?? ""
            if info.contains("cluster_state:fail") { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        let key = RedisArgument("sluice:{\(partition)}:probe")
        let started = ContinuousClock.now
        let error = await #expect(throws: RedisError.self) { try await client.send("GET", key) }
        let waited = ContinuousClock.now - started
        #expect(error?.code == .unavailable, "\(String(describing: error))")
        #expect(error?.message.contains("CLUSTERDOWN") == true, "\(String(describing: error))")
        #expect(waited < .milliseconds(1500), "retried within the 500 ms deadline, took \(waited)")

        let refused = await #expect(throws: BackpressureError.self) {
            try await backpressure(.failClosed).call(call) { _ in CallOutcome(()) }
        }
        #expect(refused?.code == .redisUnavailable, "\(String(describing: refused))")
        let open = try await backpressure(.failOpen).call(call) { _ in CallOutcome(()) }
        #expect(open.degraded, "fail open lets the call through, marked degraded")
    }
}

extension Sequence where Element: Sendable {
    /// The first element for which `predicate` holds, asked one after another.
    func asyncFirst(_ predicate: (Element) async -> Bool) async -> Element? {
        for element in self where await predicate(element) { return element }
        return nil
    }
}
