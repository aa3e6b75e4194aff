import Sluice
import SluiceRedis
import Testing

/// A custom key namespace reaches every key Sluice writes: quotas, trees, reconciler state and its
/// events, the worker registry, queues, breakers, retry budgets and leases.
@Suite("Namespace: every key Sluice writes starts with it", .serialized)
struct NamespaceTests {
    static let namespace = "acme-limits"

    /// Every key on the server (it is the test's own).
    static func allKeys(_ client: RedisClient) async throws -> [String] {
        var cursor = "0"
        var keys: [String] = []
        repeat {
            let reply = try await client.send("SCAN", RedisArgument(cursor), "COUNT", 1000)
            cursor = reply.array?[0].string ?? "0"
            keys += (reply.array?[1].array ?? []).compactMap(\.string)
        } while cursor != "0"
        return keys.sorted()
    }

    @Test("A Backpressure call in a tree, a reconciler record and every stage on their own write only namespaced keys")
    func everyKeyIsNamespaced() async throws {
        let server = try RedisServer()
        defer { server.stop() }
        let client = try RedisClient(url: server.url)
        defer { client.close() }
        let namespace = Self.namespace
        let limiter = try Limiter(
            client: client,
            configuration: .init(
                defaults: ["global": "tokens: bucket rate=60000/min burst=60000", "tree": "tokens: budget 100000"],
                namespace: namespace))
        let reconciler = try Reconciler(limiter: limiter)
        let backpressure = Backpressure(
            redis: client, configuration: .init(partition: "openai", heartbeat: .seconds(30)), limiter: limiter,
            reconciler: reconciler)
        #expect(backpressure.namespace == namespace, "the layer takes the limiter's namespace")
        _ = try await backpressure.membership?.beat()

        // A call in a tree, decided with its quota path, with a lease, the queue, the breaker, the retry budget.
        let trees = RequestTrees(redis: client, namespace: namespace)
        let root = try await trees.open(
            partition: "openai", limits: TreeLimits(budgets: ["tokens": 50_000], maxDepth: 3, loopGuard: 5))
        let child = try await trees.spawn(from: root)
        let path = try ScopePath("global=openai", "tree=\(root.treeID)")
        let call = ProviderCall(
            scope: "openai/gpt-4o", estimate: ["tokens": 100], quotaPath: path, concurrency: 4, tool: "search",
            arguments: "q")
        // An operator's spec that does not parse: the decision ignores it and reports it in the namespace's stream.
        _ = try await client.send(
            "HSET", RedisArgument("\(namespace):{openai}:quotas"), "global=openai", "tokens: bucket rate=fast")
        let result = try await child.run {
            try await backpressure.call(call) { _ in CallOutcome("ok", usage: ["tokens": 60]) }
        }
        #expect(result.value == "ok" && !result.degraded)

        // A throttled response: the reconciler pauses and cuts, and says so in the namespace's event stream.
        let throttled = ProviderObservation(
            status: 429, responseClass: ResponseClass(status: 429), retryAfter: .milliseconds(500),
            resources: [.tokens: ResourceObservation(limit: 60_000, remaining: 0, resetAfter: .seconds(1))])
        try await reconciler.record(throttled, path: path)

        // The stages on their own, in the same namespace.
        let stages = "openai"
        let pool = LeasePool(redis: client, partition: stages, scope: "s", slots: 2, namespace: namespace)
        guard case .acquired(let lease) = try await pool.tryAcquire() else {
            Issue.record("no lease from an empty pool")
            return
        }
        let queue = AdmissionQueue(redis: client, partition: stages, scope: "s", namespace: namespace)
        _ = try await queue.enter(callerID: "c1", patience: .seconds(5))
        let breaker = CircuitBreaker(redis: client, partition: stages, name: "dep", namespace: namespace)
        _ = try await breaker.record(try await breaker.permit(), success: false)
        let budget = RetryBudget(redis: client, partition: stages, scope: "s", namespace: namespace)
        try await budget.recordRequest()
        try await EventLog(redis: client, namespace: namespace).record(
            partition: stages, type: "test", fields: [("detail", "written by the test")])

        let keys = try await Self.allKeys(client)
        let inside = keys.filter { $0.hasPrefix(namespace + ":{openai}:") }
        for feature in [":s:", ":tree:", ":events", ":workers", ":lease:", ":queue:", ":breaker:", ":retry:"] {
            #expect(inside.contains { $0.contains(feature) }, "no \(feature) key in the namespace: \(keys)")
        }
        let outside = keys.filter { !$0.hasPrefix(namespace + ":") }
        #expect(outside.isEmpty, "keys outside the namespace: \(outside)")

        // The reconciler's pause and cut are visible to `sluice events --namespace`, and only with it.
        let log = EventLog(redis: client, namespace: namespace)
        #expect(try await log.partitions() == ["openai"])
        let types = try await log.recent(partition: "openai").map(\.type)
        #expect(types.contains("pause") && types.contains("ceiling-cut"), "\(types)")
        #expect(types.contains("invalid-config"), "the ignored spec is reported in the namespace: \(types)")
        let (status, output) = try SluiceBinary.run([
            "events", "--redis", server.url, "--namespace", namespace, "--json",
        ])
        #expect(status == 0 && output.contains("\"pause\"") && output.contains("ceiling-cut"), "\(output)")
        #expect(try await EventLog(redis: client).partitions().isEmpty, "the default namespace has no events")

        _ = try await pool.release(lease)
        await backpressure.shutdown()
    }

    @Test("The quota commands take --namespace: an operator's limits and weights reach workers in that namespace")
    func quotaCommandsInNamespace() async throws {
        let server = try RedisServer()
        defer { server.stop() }
        let client = try RedisClient(url: server.url)
        defer { client.close() }
        let namespace = Self.namespace
        func sluice(_ arguments: [String]) throws -> (status: Int32, output: String) {
            try SluiceBinary.run(arguments + ["--redis", server.url, "--namespace", namespace])
        }
        let set = try sluice([
            "quota", "set", "global=openai", "--resource", "tokens", "--rate", "10/s", "--burst", "10",
        ])
        #expect(set.status == 0, "\(set.output)")
        #expect(try sluice(["quota", "weight", "global=openai", "tenant=gold", "3"]).status == 0)
        #expect(try await Self.allKeys(client) == ["\(namespace):{openai}:quotas", "\(namespace):{openai}:weights"])

        // A worker in the namespace decides by them; the commands read them back there, and not in another.
        let limiter = try Limiter(client: client, configuration: .init(namespace: namespace))
        let path = try ScopePath("global=openai", "tenant=acme")
        #expect(try await limiter.decide(path, cost: ["tokens": 10]).allowed)
        #expect(try await !limiter.decide(path, cost: ["tokens": 10]).allowed)
        #expect(try sluice(["quota", "get", "global=openai"]).output.contains("burst=10"))
        #expect(try sluice(["quota", "list"]).output.contains("global=openai"))
        #expect(try sluice(["quota", "weight", "global=openai", "tenant=gold"]).output.contains("3"))
        let elsewhere = try SluiceBinary.run(["quota", "list", "--redis", server.url])
        #expect(elsewhere.output.contains("no quotas set"), "\(elsewhere.output)")
        let removed = try sluice(["quota", "rm", "global=openai"])
        #expect(removed.status == 0, "\(removed.output)")
        #expect(try await client.send("EXISTS", RedisArgument("\(namespace):{openai}:quotas")).integer == 0)

        // A namespace no key could carry is refused before anything is sent.
        let bad = try SluiceBinary.run(["quota", "list", "--redis", server.url, "--namespace", "a{b}"])
        #expect(bad.status == 64, "\(bad.output)")
    }
}
