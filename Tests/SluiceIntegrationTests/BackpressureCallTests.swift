import Foundation
import Sluice
import SluiceRedis
import Testing

/// The high-level call: queue, tree, quota, lease, breaker, retry budget and the degradation hook.
@Suite("Backpressure: one call wrapping a provider call end to end", .serialized, .onEveryServer)
struct BackpressureCallTests {
    private func backpressure(
        _ fixture: BackpressureFixture, queue: AdmissionQueue.Configuration = .init(),
        breaker: CircuitBreaker.Configuration = .init(), limiter: Limiter? = nil
    ) -> Backpressure {
        Backpressure(
            redis: fixture.client,
            configuration: .init(partition: fixture.partition, queue: queue, breaker: breaker, heartbeat: nil),
            limiter: limiter)
    }

    @Test("Beyond the queue depth new callers are shed at once with overloaded; the counts are visible fleet-wide")
    func shedding() async throws {
        let fixture = try BackpressureFixture()
        defer { Task { await fixture.cleanUp() } }
        let backpressure = backpressure(fixture, queue: .init(maxWaiting: 3, growthAlert: 3, window: .seconds(60)))
        let call = ProviderCall(scope: "openai/gpt-4o", concurrency: 1, timeout: .seconds(10), maxAttempts: 1)
        let queue = AdmissionQueue(
            redis: fixture.client, partition: fixture.partition, scope: "openai/gpt-4o",
            configuration: .init(maxWaiting: 3, window: .seconds(60)))
        let gate = Gate()
        let holder = Task {
            try await backpressure.call(call) { _ in
                await gate.wait(); return CallOutcome(0)
            }
        }
        #expect(await queue.eventually { $0.inFlight == 1 }, "the first call never got its slot")
        let waiters = (0..<3).map { _ in
            Task { try await backpressure.call(call) { _ in CallOutcome(1) } }
        }
        #expect(await queue.eventually { $0.waiting == 3 }, "three callers wait for the one slot")
        let status = try await queue.status()
        #expect(status.waiting == 3 && status.inFlight == 1, "\(status)")

        let start = ContinuousClock.now
        let shed = await #expect(throws: BackpressureError.self) {
            try await backpressure.call(call) { _ in CallOutcome(2) }
        }
        #expect(shed?.code == .overloaded)
        #expect(ContinuousClock.now - start < .seconds(2), "shed at once, while the slot is still held")

        gate.open()
        _ = try await holder.value
        for waiter in waiters { _ = try await waiter.value }
        let after = try await queue.status()
        #expect(after.waiting == 0 && after.inFlight == 0 && after.shed >= 1, "\(after)")
        #expect(try await fixture.events("shed").count == 1)
        #expect(try await fixture.events("queue-growth").count == 1, "the queue grew by 3 with nobody leaving")
    }

    @Test("A refused primary path falls back to the degradation hook's call (a smaller model)")
    func degradation() async throws {
        let fixture = try BackpressureFixture()
        defer { Task { await fixture.cleanUp() } }
        let backpressure = backpressure(
            fixture, breaker: .init(minimumCalls: 2, failureRatio: 0.5, coolDown: .seconds(60)))
        let big = ProviderCall(scope: "openai/gpt-4o", timeout: .seconds(5), maxAttempts: 1, label: "gpt-4o")
        for _ in 0..<2 {
            await #expect(throws: ProviderFailure.self) {
                try await backpressure.call(big) { _ -> CallOutcome<String> in
                    throw ProviderFailure("503", retryable: false)
                }
            }
        }
        let result = try await backpressure.call(
            big,
            degrade: { refusal, call in
                refusal.code == .breakerOpen && call.label == "gpt-4o"
                    ? ProviderCall(scope: "openai/gpt-4o-mini", timeout: .seconds(5), label: "gpt-4o-mini") : nil
            }
        ) { attempt in CallOutcome("answered by \(attempt.call.label)") }
        #expect(result.fellBack && result.value == "answered by gpt-4o-mini")
        let refused = await #expect(throws: BackpressureError.self) {
            try await backpressure.call(big) { _ in CallOutcome("never") }
        }
        #expect(refused?.code == .breakerOpen, "without a hook the refusal reaches the caller")
    }

    @Test("Inside a tree, usage is settled on the tree; a quota refusal gives the tree reservation back")
    func treeAndQuota() async throws {
        let fixture = try BackpressureFixture()
        defer { Task { await fixture.cleanUp() } }
        let limiter = try Limiter(
            client: fixture.client, configuration: .init(defaults: ["global": "tokens: budget 1000"]))
        let backpressure = backpressure(fixture, limiter: limiter)
        let trees = RequestTrees(redis: fixture.client)
        let root = try await trees.open(partition: fixture.partition, limits: TreeLimits(budgets: ["tokens": 5_000]))
        let path = try ScopePath(parsing: ["global=\(fixture.partition)"])
        let call = ProviderCall(scope: "openai", estimate: ["tokens": 800], quotaPath: path, timeout: .seconds(5))

        let first = try await root.run {
            try await backpressure.call(call) { attempt in
                #expect(attempt.tree?.treeID == root.treeID)
                return CallOutcome("ok", usage: ["tokens": 300])
            }
        }
        #expect(first.usage["tokens"] == 300)
        #expect(try await trees.usage(root).used["tokens"] == 300, "the tree was charged the actual usage")

        // The quota budget has 700 left: an estimate of 800 is refused, and the tree gets it back.
        let refused = await #expect(throws: BackpressureError.self) {
            try await root.run { try await backpressure.call(call) { _ in CallOutcome("never") } }
        }
        #expect(refused?.code == .quotaDenied)
        #expect(try await trees.usage(root).used["tokens"] == 300, "no tree budget is lost to a quota refusal")
    }

    @Test("An error reply from a reachable Redis comes out as a BackpressureError with the client's error underneath")
    func redisErrorsAreBackpressureErrors() async throws {
        let fixture = try BackpressureFixture()
        defer { Task { await fixture.cleanUp() } }
        let limiter = try Limiter(
            client: fixture.client, configuration: .init(defaults: ["global": "tokens: budget 1000"]))
        let backpressure = backpressure(fixture, limiter: limiter)
        // The operators' config hash of the partition is a string: every decision's HMGET on it fails (WRONGTYPE).
        let config = RedisArgument("sluice:{\(fixture.partition)}:quotas")
        _ = try await fixture.client.send("SET", config, "not a hash", "PX", 60_000)
        let path = try ScopePath(parsing: ["global=\(fixture.partition)"])
        let call = ProviderCall(scope: "openai", estimate: ["tokens": 10], quotaPath: path, timeout: .seconds(5))
        let error = await #expect(throws: BackpressureError.self) {
            try await backpressure.call(call) { _ in CallOutcome("never") }
        }
        #expect(error?.code == .redisError && error?.isRefusal == false, "\(String(describing: error))")
        #expect(error?.underlying is RedisError || error?.underlying is QuotaError, "\(String(describing: error))")
        #expect(!backpressure.health.statistics.degraded, "an error reply is not an outage")
        _ = try await fixture.client.send("DEL", config)
    }

    @Test(
        "What a failed call is charged: a refusal nothing, a provider failure what it reports, an unknown error the estimate"
    )
    func failedCallsAreChargedHonestly() async throws {
        let fixture = try BackpressureFixture()
        defer { Task { await fixture.cleanUp() } }
        let backpressure = backpressure(
            fixture, breaker: .init(minimumCalls: 3, failureRatio: 1, coolDown: .seconds(60)))
        let trees = RequestTrees(redis: fixture.client)
        let root = try await trees.open(partition: fixture.partition, limits: TreeLimits(budgets: ["tokens": 10_000]))
        let call = ProviderCall(scope: "model", estimate: ["tokens": 1_000], timeout: .seconds(5), maxAttempts: 1)
        struct Unexplained: Error {}
        func run(_ operation: @escaping @Sendable (CallAttempt) async throws -> CallOutcome<Int>) async throws {
            _ = try await root.run { try await backpressure.call(call, operation) }
        }
        func used() async throws -> Int64 {
            let usage = try await trees.usage(root)
            return usage.used["tokens"]
        }

        await #expect(throws: ProviderFailure.self) {
            try await run { _ in throw ProviderFailure("429", retryable: false, usage: ["tokens": 7]) }
        }
        #expect(try await used() == 7, "the failure's reported usage")
        await #expect(throws: ProviderFailure.self) {
            try await run { _ in throw ProviderFailure("503", retryable: false) }
        }
        #expect(try await used() == 7, "a provider failure that names nothing used nothing")
        await #expect(throws: Unexplained.self) { try await run { _ in throw Unexplained() } }
        #expect(try await used() == 1_007, "an unknown error keeps the estimate")
        // Three failures opened the breaker: the next call never runs and is charged nothing.
        let refused = await #expect(throws: BackpressureError.self) { try await run { _ in CallOutcome(0) } }
        #expect(refused?.code == .breakerOpen)
        #expect(try await used() == 1_007, "a refused call gives its reservation back")
    }

    @Test("After calls through every feature, every key Sluice wrote has an expiry")
    func everyKeyExpires() async throws {
        let fixture = try BackpressureFixture()
        defer { Task { await fixture.cleanUp() } }
        let limiter = try Limiter(
            client: fixture.client, configuration: .init(defaults: ["global": "tokens: budget 10000"]))
        let backpressure = Backpressure(
            redis: fixture.client,
            configuration: .init(
                partition: fixture.partition, breaker: .init(minimumCalls: 2, failureRatio: 0.5),
                heartbeat: .milliseconds(100)),
            limiter: limiter)
        let trees = RequestTrees(redis: fixture.client)
        let root = try await trees.open(
            partition: fixture.partition, limits: TreeLimits(budgets: ["tokens": 5_000], maxChildren: 3, loopGuard: 1))
        let child = try await trees.spawn(from: root)
        let call = ProviderCall(
            scope: "openai", estimate: ["tokens": 100],
            quotaPath: try ScopePath(parsing: ["global=\(fixture.partition)"]),
            concurrency: 2, timeout: .seconds(5), tool: "search", arguments: "q", maxAttempts: 2)
        try await child.run {
            _ = try await backpressure.call(call) { _ in CallOutcome(0, usage: ["tokens": 50]) }
            _ = try? await backpressure.call(call) { _ in CallOutcome(0) }  // the loop guard refuses it: an event
            for _ in 0..<2 {
                _ = try? await backpressure.call(ProviderCall(scope: "tool", timeout: .seconds(5))) {
                    _ -> CallOutcome<Int> in
                    throw ProviderFailure("down", retryAfter: .milliseconds(1))
                }
            }
        }
        try await Task.sleep(for: .milliseconds(300))  // a heartbeat or two
        await backpressure.shutdown()
        _ = try await backpressure.membership?.beat()
        let keys = try await fixture.keys()  // emptied sets (waiting, in flight) are gone already
        for feature in ["tree:", "lease:", "queue:", "breaker:", "retry:", "events", "workers", ":s:", ":r:"] {
            #expect(keys.contains { $0.contains(feature) }, "no \(feature) key was written: \(keys)")
        }
        for key in keys {
            let ttl = try await fixture.client.send("PTTL", RedisArgument(key)).integer ?? -3
            #expect(ttl > 0, "\(key) has no expiry (PTTL \(ttl))")
        }
    }

    @Test("Retries honour the provider's retry-after and stop at the deadline")
    func retriesStopAtTheDeadline() async throws {
        let fixture = try BackpressureFixture()
        defer { Task { await fixture.cleanUp() } }
        let backpressure = backpressure(fixture, breaker: .init(minimumCalls: 1_000))
        let call = ProviderCall(scope: "anthropic", timeout: .seconds(3), maxAttempts: 10)
        let start = ContinuousClock.now
        let attempts = AttemptLog()
        let error = await #expect(throws: BackpressureError.self) {
            try await backpressure.call(call) { attempt -> CallOutcome<Int> in
                attempts.append(ContinuousClock.now)
                throw ProviderFailure("429", retryable: true, retryAfter: .milliseconds(1_200))
            }
        }
        let elapsed = ContinuousClock.now - start
        #expect(error?.code == .deadlineExceeded, "\(String(describing: error))")
        let times = attempts.all
        #expect(times.count == 2 || times.count == 3, "retry-after 1.2 s within 3 s: \(times.count) attempts")
        for (earlier, later) in zip(times, times.dropFirst()) {
            #expect(later - earlier >= .milliseconds(1_190), "retry-after honoured")
        }
        // Lower bounds hold on any machine; the upper one leaves a loaded machine a second past the deadline.
        #expect(elapsed < .seconds(4), "ran \(elapsed) past its 3 s deadline")

        // A retry-after beyond the deadline: no sleeping toward the deadline, the call gives up after the first
        // attempt at once (sleeping would end it at the deadline, 3 s after the attempt).
        let hopeless = AttemptLog()
        let refused = await #expect(throws: BackpressureError.self) {
            try await backpressure.call(call) { attempt -> CallOutcome<Int> in
                hopeless.append(ContinuousClock.now)
                throw ProviderFailure("429", retryable: true, retryAfter: .seconds(10))
            }
        }
        let gaveUp = ContinuousClock.now - (hopeless.all.first ?? .now)
        #expect(refused?.code == .deadlineExceeded, "\(String(describing: refused))")
        #expect(hopeless.all.count == 1)
        #expect(gaveUp < .milliseconds(1_500), "gave up \(gaveUp) after the attempt instead of at once")
    }
}

/// Holds operations until the test opens it.
final class Gate: Sendable {
    private let isOpen = SluiceMutex(false)
    func open() { isOpen.withLock { $0 = true } }
    func wait() async {
        while !isOpen.withLock({ $0 }) { try? await Task.sleep(for: .milliseconds(10)) }
    }
}

extension AdmissionQueue {
    /// Polls the status until `condition` holds (at most 10 s).
    func eventually(_ condition: (QueueStatus) -> Bool) async -> Bool {
        for _ in 0..<500 {
            if let status = try? await status(), condition(status) { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return false
    }
}

/// Instants appended from the operation closure.
final class AttemptLog: Sendable {
    private let times = SluiceMutex<[ContinuousClock.Instant]>([])
    func append(_ time: ContinuousClock.Instant) { times.withLock { $0.append(time) } }
    var all: [ContinuousClock.Instant] { times.withLock { $0 } }
}
