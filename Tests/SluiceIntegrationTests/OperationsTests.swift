import Foundation
import Sluice
import SluiceRedis
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The operator's views of the fleet: `sluice serve` (Prometheus) and `sluice top` (a live terminal view),
/// each run as a real process against real `Backpressure.call` traffic.
@Suite("Operations: sluice serve and sluice top show the fleet", .serialized)
struct OperationsTests {
    @Test("FleetReader reads the queues, leases, breakers, ceiling, shadow counts, trees and events of live traffic")
    func readerSeesTraffic() async throws {
        let traffic = try await FleetTraffic.start()
        let snapshot = try await FleetReader(redis: traffic.client).snapshot(traffic.partition)
        await traffic.finish()

        let held = try #require(snapshot.scopes.first { $0.name == FleetTraffic.heldScope })
        #expect(held.inFlight == FleetTraffic.heldCalls && held.leasesHeld == FleetTraffic.heldCalls)
        #expect(held.leasesGranted >= Int64(FleetTraffic.heldCalls + 1))
        #expect(snapshot.scopes.first { $0.name == FleetTraffic.slowScope }?.waiting == 1)
        let breaker = try #require(snapshot.breakers.first { $0.name == FleetTraffic.failing })
        #expect(breaker.state == .open && breaker.timesOpened == 1 && (breaker.openUntil ?? 0) > snapshot.now)
        let tokens = try #require(snapshot.reconciler.first?.resources.first { $0.name == "tokens" })
        #expect(tokens.statedLimit == 60_000 && tokens.share == 1)
        #expect(snapshot.shadow.contains { $0.scopeKind == "tenant" && $0.resource == "tokens" && $0.count >= 1 })
        #expect(snapshot.treesOpen == 1 && snapshot.topTrees.first?.id == traffic.treeID)
        #expect((snapshot.topTrees.first?.spent["tokens"] ?? 0) >= 100)
        #expect(snapshot.recentEvents.contains { $0.type == "breaker-open" && $0["breaker"] == FleetTraffic.failing })
        #expect(!snapshot.truncated)

        // Once the calls are done: nothing in flight, no lease held (the snapshot is not a cached value).
        let after = try await FleetReader(redis: traffic.client).snapshot(traffic.partition)
        #expect(after.scopes.first { $0.name == FleetTraffic.heldScope }?.inFlight == 0)
        #expect(after.scopes.first { $0.name == FleetTraffic.heldScope }?.leasesHeld == 0)
        await traffic.cleanUp()
    }

    @Test("sluice serve answers /metrics in the Prometheus text format with the partition's fleet state")
    func serveExportsMetrics() async throws {
        let traffic = try await FleetTraffic.start()
        let port = try RedisServer.freePort()
        let serve = try SluiceBinary.start(["serve", "--metrics-port", String(port), "--redis", TestRedis.url])
        defer {
            if serve.process.isRunning { serve.process.terminate() }
            _ = serve.wait()
        }
        let response = try await HTTP.get(port: port, path: "/metrics", waiting: .seconds(60))
        #expect(response.status == 200)
        #expect(response.headers["content-type"]?.hasPrefix("text/plain; version=0.0.4") == true)
        let exposition = try Exposition(parsing: response.body)
        let partition = traffic.partition
        let families = exposition.families(labelled: partition)
        #expect(families.count >= 5, "\(families)")
        for family in [
            "sluice_queue_waiting", "sluice_queue_in_flight", "sluice_leases_held", "sluice_breaker_state",
            "sluice_ceiling", "sluice_stated_limit", "sluice_shadow_would_deny_total", "sluice_events_total",
            "sluice_trees_open",
        ] {
            #expect(families.contains(family), "\(family) is missing")
        }
        let held = ["partition": partition, "scope": FleetTraffic.heldScope]
        #expect(exposition.value("sluice_queue_in_flight", held) == Double(FleetTraffic.heldCalls))
        #expect(exposition.value("sluice_leases_held", held) == Double(FleetTraffic.heldCalls))
        #expect(
            exposition.value("sluice_queue_waiting", ["partition": partition, "scope": FleetTraffic.slowScope]) == 1)
        let breaker = ["partition": partition, "breaker": FleetTraffic.failing]
        #expect(exposition.value("sluice_breaker_state", breaker.merging(["state": "open"]) { $1 }) == 1)
        #expect(exposition.value("sluice_breaker_state", breaker.merging(["state": "closed"]) { $1 }) == 0)
        let tokens = ["partition": partition, "scope_kind": "global", "resource": "tokens"]
        #expect(exposition.value("sluice_stated_limit", tokens) == 60_000)
        #expect((exposition.value("sluice_ceiling", tokens) ?? 0) > 0)
        #expect(exposition.value("sluice_events_total", ["partition": partition, "type": "breaker-open"]) == 1)
        #expect(exposition.value("sluice_trees_open", ["partition": partition]) == 1)
        // Bounded labels only: no tenant and no tree id anywhere.
        let values = exposition.samples.flatMap { $0.labels.values }
        #expect(!values.contains("acme") && !values.contains(traffic.treeID))

        // The calls finish: the next scrape reads Redis again and sees them gone.
        await traffic.finish()
        let later = try Exposition(parsing: try await HTTP.get(port: port, path: "/metrics").body)
        #expect(later.value("sluice_queue_in_flight", held) == 0)
        #expect(later.value("sluice_leases_held", held) == 0)
        await traffic.cleanUp()
    }

    @Test("sluice top shows the partition live in a real terminal (tmux), drills in and out, and quits on q")
    func topInTmux() async throws {
        let traffic = try await FleetTraffic.start()
        let tmux = try Tmux()
        defer { Task { await tmux.kill() } }
        let empty = "ops-empty-\(UUID().uuidString.prefix(8))"
        try await tmux.start("\(SluiceBinary.path) top \(traffic.partition) \(empty) --redis \(TestRedis.url)")

        // The overview: one row per partition, the first selected.
        let overview = try await tmux.waitFor { $0.contains(traffic.partition) && $0.contains("IN FLIGHT") }
        let row = try #require(overview.split(separator: "\n").first { $0.contains(traffic.partition) })
        let cells = row.split(separator: " ").map(String.init)
        #expect(cells.first == ">", "the first partition is selected: \(row)")
        // PARTITION WAITING IN-FLIGHT LEASES BREAKERS(open/half/closed) ...
        // (A call scheduled ahead counts as waiting, and call-admit counts it in flight already.)
        #expect(cells[2] == "1" && Int(cells[3]) ?? 0 >= FleetTraffic.heldCalls, "\(row)")
        #expect(cells[4] == String(FleetTraffic.heldCalls), "\(row)")
        #expect(cells[5].hasPrefix("1/0/"), "one breaker open: \(row)")
        #expect(row.contains("tokens") && row.contains("/60000"), "ceiling against the stated limit: \(row)")
        #expect(overview.contains("breaker-open"), "recent events")

        // j selects the second partition, Enter drills into it, Esc goes back, k selects the first again.
        try await tmux.send("j")
        _ = try await tmux.waitFor { screen in
            screen.split(separator: "\n").contains { $0.hasPrefix(" > \(empty)") }
        }
        try await tmux.send("Enter")
        _ = try await tmux.waitFor {
            $0.contains("SCOPES") && $0.contains(empty) && $0.contains("no queue or lease pool")
        }
        try await tmux.send("Escape")
        try await tmux.send("k")
        _ = try await tmux.waitFor { screen in
            screen.contains("PARTITION")
                && screen.split(separator: "\n").contains { $0.hasPrefix(" > \(traffic.partition)") }
        }
        try await tmux.send("Enter")
        let detail = try await tmux.waitFor {
            $0.contains("SCOPES") && $0.contains(FleetTraffic.heldScope) && $0.contains(traffic.treeID)
        }
        let scope = try #require(detail.split(separator: "\n").first { $0.contains(FleetTraffic.heldScope) })
        let counts = scope.split(separator: " ").map(String.init)
        // SCOPE WAITING IN-FLIGHT LEASES-HELD LEASES-GRANTED
        #expect(counts.count == 5 && counts[1] == "0" && counts[2] == "3" && counts[3] == "3", "\(scope)")
        #expect(detail.contains(FleetTraffic.failing) && detail.contains("open for"), "\(detail)")
        #expect(detail.contains("global=\(traffic.partition)") && detail.contains("60000"), "the reconciler's row")

        // q quits with status 0 and leaves the alternate screen.
        try await tmux.send("q")
        let status = try await tmux.waitForExit()
        #expect(status == 0)
        #expect(!(try await tmux.capture()).contains("SCOPES"), "the alternate screen is gone")
        await tmux.kill()
        await traffic.cleanUp()
    }
}

/// Real `Backpressure.call` traffic on a partition of its own, part of it held in flight:
/// - `heldCalls` calls on `heldScope` (with leases), in a request tree, waiting for ``finish()``;
/// - one call on `slowScope` scheduled a minute ahead by its quota (waiting);
/// - two failed calls on `failing`, which opened its breaker (an event);
/// - provider responses stating a 60000-token limit (the reconciler's ceiling), and a tenant shadow limit
///   that would have denied.
final class FleetTraffic: Sendable {
    static let heldScope = "openai/gpt-4o"
    static let slowScope = "openai/slow"
    static let failing = "tool:search"
    static let heldCalls = 3

    let client: RedisClient
    let partition: String
    let treeID: String
    private let calls: SluiceMutex<[Task<Void, Never>]> = SluiceMutex([])
    private let backpressure: Backpressure
    private let slow: Backpressure
    private let gate = SluiceMutex<Gate?>(nil)

    private init(client: RedisClient, partition: String, treeID: String, backpressure: Backpressure, slow: Backpressure)
    {
        self.client = client
        self.partition = partition
        self.treeID = treeID
        self.backpressure = backpressure
        self.slow = slow
    }

    static func start(_ test: String = #function) async throws -> FleetTraffic {
        let client = try TestRedis.client(commandTimeout: .seconds(10))
        let partition = "ops-\(test.prefix { $0 != "(" })-\(UUID().uuidString.prefix(8))"
        let limiter = try Limiter(
            client: client,
            configuration: .init(defaults: [
                "global": "tokens: bucket rate=1000000/s burst=1000000",
                "tenant": "requests: window 100000/min; tokens: bucket rate=1/min burst=1 shadow",
            ]))
        let slowLimiter = try Limiter(
            client: client, configuration: .init(defaults: ["tenant": "requests: bucket rate=1/min burst=1"]))
        let configuration = Backpressure.Configuration(
            partition: partition, breaker: .init(minimumCalls: 2, failureRatio: 0.5), heartbeat: nil)
        let backpressure = Backpressure(
            redis: client, configuration: configuration, limiter: limiter, reconciler: try Reconciler(limiter: limiter))
        let slow = Backpressure(redis: client, configuration: configuration, limiter: slowLimiter)
        let path = try ScopePath("global=\(partition)", "tenant=acme")
        let stated = ProviderObservation(
            status: 200,
            headers: [
                (name: "x-ratelimit-limit-tokens", value: "60000"),
                (name: "x-ratelimit-remaining-tokens", value: "59000"),
                (name: "x-ratelimit-reset-tokens", value: "1s"),
            ])

        // A request tree whose calls are held in flight.
        let tree = try await RequestTrees(redis: client).open(
            partition: partition, limits: TreeLimits(budgets: ["tokens": 100_000]))
        let traffic = FleetTraffic(
            client: client, partition: partition, treeID: tree.treeID, backpressure: backpressure, slow: slow)

        // A finished call that reports the provider's stated limit.
        let held = ProviderCall(
            scope: heldScope, estimate: ["tokens": 100, "requests": 1], quotaPath: path, concurrency: 8, maxAttempts: 1)
        _ = try await backpressure.call(held) { _ in CallOutcome(0, usage: ["tokens": 50], observation: stated) }

        // Two failures open the breaker of `failing`.
        let failingCall = ProviderCall(
            scope: "tools", dependency: failing, estimate: ["requests": 1], quotaPath: path, maxAttempts: 1)
        for _ in 0..<2 {
            await #expect(throws: ProviderFailure.self) {
                _ = try await backpressure.call(failingCall) { _ -> CallOutcome<Int> in
                    throw ProviderFailure("HTTP 503", retryable: false)
                }
            }
        }

        // Calls held in flight until finish().
        let gate = Gate()
        let started = Counter()
        for _ in 0..<heldCalls {
            let task = Task {
                _ = try? await tree.run {
                    try await backpressure.call(held) { _ in
                        started.add()
                        await gate.wait()
                        return CallOutcome(0, usage: ["tokens": 100], observation: stated)
                    }
                }
            }
            traffic.calls.withLock { $0.append(task) }
        }
        traffic.gate.withLock { $0 = gate }

        // One call scheduled a minute ahead: waiting.
        let slowPath = try ScopePath("global=\(partition)", "tenant=slow")
        let slowCall = ProviderCall(
            scope: slowScope, estimate: ["requests": 1], quotaPath: slowPath, timeout: .seconds(300), maxAttempts: 1)
        _ = try await slow.call(slowCall) { _ in CallOutcome(0) }  // takes the burst
        let waiting = Task { _ = try? await slow.call(slowCall) { _ in CallOutcome(0) } }
        traffic.calls.withLock { $0.append(waiting) }

        let end = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < end {
            let snapshot = try await FleetReader(redis: client).snapshot(partition)
            if started.value == heldCalls, snapshot.scopes.first(where: { $0.name == slowScope })?.waiting == 1 {
                return traffic
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        await traffic.finish()
        throw RedisError(.timeout, "the traffic did not settle: \(started.value) calls started")
    }

    /// Lets the held calls finish and cancels the waiting one; waits for all of them.
    func finish() async {
        gate.withLock { $0 }?.open()
        let tasks = calls.withLock { tasks in
            defer { tasks.removeAll() }
            return tasks
        }
        tasks.last?.cancel()  // the scheduled call: cancelled, refunded, out of the queue
        for task in tasks { await task.value }
    }

    /// Deletes the partition's keys.
    func cleanUp() async {
        await finish()
        await backpressure.shutdown()
        var cursor = "0"
        repeat {
            guard
                let reply = try? await client.send(
                    "SCAN", RedisArgument(cursor), "MATCH", RedisArgument("sluice:{\(partition)}:*"), "COUNT", 1000)
            else { break }
            cursor = reply.array?[0].string ?? "0"
            for key in reply.array?[1].array ?? [] {
                if let key = key.string { _ = try? await client.send("DEL", RedisArgument(key)) }
            }
        } while cursor != "0"
        client.close()
    }
}

/// Calls that reached the provider.
final class Counter: Sendable {
    private let count = SluiceMutex(0)
    func add() { count.withLock { $0 += 1 } }
    var value: Int { count.withLock { $0 } }
}
