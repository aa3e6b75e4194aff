import Foundation
import SluiceRedis
import Testing

@testable import Sluice

/// A call inside a request tree with a quota path is one decision (decide.lua's "tree" group):
/// the tree and the quota admit it together or not at all, and one settle closes both.
@Suite("Trees decided with the quota path in one script", .serialized, .onEveryServer)
struct TreeAtomicTests {
    /// The raw state of everything a decision may touch, to compare before and after one.
    struct Snapshot: Equatable {
        var quota: [[UInt8]?]
        var tree: [String: String]
        var calls: [String]
        var reservation: Bool
    }

    static func snapshot(
        _ fixture: QuotaFixture, _ limiter: Limiter, _ path: ScopePath, _ tree: TreeContext, id: String
    )
        async throws -> Snapshot
    {
        let keys = limiter.keys(for: path)
        var quota: [[UInt8]?] = []
        for key in keys.states(path) {
            quota.append(try await fixture.client.send(RedisCommand("GET", RedisArgument(key))).bytes)
        }
        let flat = (try await fixture.client.send(RedisCommand("HGETALL", treeKey(fixture, tree))).array ?? []).map {
            $0.string ?? ""
        }
        var hash: [String: String] = [:]
        for index in stride(from: 0, to: flat.count - 1, by: 2) { hash[flat[index]] = flat[index + 1] }
        let calls =
            (try await fixture.client.send(RedisCommand("ZRANGE", treeKey(fixture, tree, "calls"), "0", "-1")).array
            ?? [])
            .compactMap(\.string)
        let reservation = try await fixture.client.send(RedisCommand("EXISTS", RedisArgument(keys.reservation(id))))
        return Snapshot(quota: quota, tree: hash, calls: calls, reservation: reservation.integer == 1)
    }

    static func treeKey(_ fixture: QuotaFixture, _ tree: TreeContext, _ suffix: String? = nil) -> RedisArgument {
        RedisArgument("sluice:{\(fixture.root)}:tree:\(tree.treeID)" + (suffix.map { ":" + $0 } ?? ""))
    }

    @Test("A tree refusal charges nothing on the quota path, and a quota refusal reserves nothing on the tree")
    func nothingPartial() async throws {
        let fixture = try QuotaFixture()
        defer { Task { await fixture.cleanUp() } }
        let limiter = try fixture.limiter([
            "global": "tokens: bucket rate=1/d burst=1000", "tenant": "requests: window 100/min",
        ])
        let trees = RequestTrees(redis: fixture.client)
        let root = try await trees.open(
            partition: fixture.root,
            limits: TreeLimits(budgets: ["tokens": 800], maxDepth: 2, maxInFlight: 3, loopGuard: 2))
        let path = try fixture.path("tenant=acme", "tree=\(root.treeID)")
        let search = TreeCall(root, tool: "search", arguments: "q=1")

        let first = try await limiter.reserve(path, estimate: ["tokens": 400, "requests": 1], tree: search)
        #expect(first.decision.allowed)
        var usage = try await trees.usage(root)
        #expect(usage.used["tokens"] == 400 && usage.used["requests"] == 1 && usage.inFlight == 1)

        // The tree's budget refuses (400 left) while the quota would admit (600 left): nothing charged.
        var id = "budget"
        var before = try await Self.snapshot(fixture, limiter, path, root, id: id)
        let overBudget = try await limiter.reserve(
            path, estimate: ["tokens": 500, "requests": 1], id: id, tree: search)
        #expect(!overBudget.decision.allowed)
        #expect(overBudget.decision.deniedBy?.kind == .treeBudget && overBudget.decision.deniedBy?.resource == "tokens")
        #expect(overBudget.decision.deniedBy?.scopeIndex == 2, "reported on the path's tree scope")
        #expect(overBudget.decision.deniedBy?.remaining == 400 && overBudget.decision.deniedBy?.limit == 800)
        #expect(!overBudget.decision.retryable)
        #expect(overBudget.decision.limits.contains { $0.kind == .bucket && $0.verdict == .allows })
        let refusal = try #require(overBudget.decision.treeRefusal(search))
        #expect(refusal.code == .treeBudget && refusal.message.contains("tokens budget of 800"))
        var after = try await Self.snapshot(fixture, limiter, path, root, id: id)
        #expect(after.quota == before.quota, "the quota's state is byte for byte as before")
        #expect(!after.reservation && after.calls == before.calls)
        before.tree["x:tokens"] = "1"  // the refusal's own bookkeeping: the once-per-tree event was sent
        #expect(after.tree == before.tree)
        #expect(try await fixture.eventsCount("budget-exhausted") == 1)

        // The quota refuses (a plain decision took 500 of the 600 left) while the tree would admit:
        // nothing reserved on the tree, no call in flight, the loop guard's count untouched.
        #expect(try await limiter.decide(path, cost: ["tokens": 500]).allowed)
        id = "quota"
        before = try await Self.snapshot(fixture, limiter, path, root, id: id)
        let overQuota = try await limiter.reserve(path, estimate: ["tokens": 300, "requests": 1], id: id, tree: search)
        #expect(!overQuota.decision.allowed && overQuota.decision.deniedBy?.kind == .bucket)
        #expect(overQuota.decision.treeRefusal(search) == nil)
        after = try await Self.snapshot(fixture, limiter, path, root, id: id)
        #expect(after == before)
        #expect(after.tree["l:" + RequestTrees.loopKey(tool: "search", arguments: "q=1")] == "1")

        // Both refuse: the tree's refusal is the one reported (as when the tree was entered first).
        let both = try await limiter.reserve(path, estimate: ["tokens": 450, "requests": 1], tree: search)
        #expect(both.decision.deniedBy?.kind == .treeBudget)
        #expect(both.decision.limits.contains { $0.kind == .bucket && $0.verdict == .denies })

        // Depth, loop guard and in flight refuse alike, charging nothing.
        let deep = TreeCall(root.child().child().child())
        let tooDeep = try await limiter.reserve(path, estimate: ["tokens": 1], tree: deep)
        #expect(tooDeep.decision.treeRefusal(deep)?.code == .treeDepth)
        let second = try await limiter.reserve(path, estimate: ["tokens": 10], tree: search)
        #expect(second.decision.allowed)
        let looping = try await limiter.reserve(path, estimate: ["tokens": 10], tree: search)
        #expect(looping.decision.treeRefusal(search)?.code == .loopGuard)
        #expect(try await fixture.eventsCount("loop-guard") == 1)
        let third = try await limiter.reserve(path, estimate: ["tokens": 10], tree: TreeCall(root))
        #expect(third.decision.allowed)
        before = try await Self.snapshot(fixture, limiter, path, root, id: "in-flight")
        let crowded = try await limiter.reserve(path, estimate: ["tokens": 10], id: "in-flight", tree: TreeCall(root))
        #expect(crowded.decision.treeRefusal(TreeCall(root))?.code == .treeInFlight)
        #expect(crowded.decision.treeRefusal(TreeCall(root))?.retryAfter == .milliseconds(50))
        #expect(try await Self.snapshot(fixture, limiter, path, root, id: "in-flight") == before)
        usage = try await trees.usage(root)
        #expect(usage.used["tokens"] == 420 && usage.inFlight == 3)

        // A deadline the context carries (already passed): refused before anything else.
        var late = root
        late.deadlineMilliseconds = 1_000
        let expired = try await limiter.reserve(path, estimate: ["tokens": 1], tree: TreeCall(late))
        #expect(expired.decision.treeRefusal(TreeCall(late))?.code == .deadlineExceeded)
        #expect(expired.decision.deniedBy?.limit == 1_000 && (expired.decision.deniedBy?.remaining ?? 0) < 0)

        for reservation in [first, second, third] { #expect(try await reservation.cancel() == .cancelled) }
        usage = try await trees.usage(root)
        #expect(usage.used["tokens"] == 0 && usage.used["requests"] == 0 && usage.inFlight == 0)
        let loop = try await fixture.client.send(
            RedisCommand(
                "HGET", Self.treeKey(fixture, root),
                RedisArgument("l:" + RequestTrees.loopKey(tool: "search", arguments: "q=1"))))
        #expect(loop.integer == 1, "cancels gave back the two admitted calls; the refused one still counts")
    }

    @Test("Settle closes the tree side: actual usage on the budgets, nothing in flight; idempotent")
    func settleClosesTree() async throws {
        let fixture = try QuotaFixture()
        defer { Task { await fixture.cleanUp() } }
        let limiter = try fixture.limiter(["global": "tokens: bucket rate=1/d burst=10000"])
        let trees = RequestTrees(redis: fixture.client)
        let root = try await trees.open(partition: fixture.root, limits: TreeLimits(budgets: ["tokens": 5_000]))
        let path = try fixture.path()
        let call = TreeCall(root.child(), tool: "write", arguments: "x", ttl: .seconds(120))

        let admission = try await limiter.schedule(path, cost: ["tokens": 1_200], maxWait: .zero, tree: call)
        #expect(admission.allowed)
        var usage = try await trees.usage(root)
        #expect(usage.used["tokens"] == 1_200 && usage.inFlight == 1)
        // The record lives at least as long as the call counts in flight (the call's 120 s, not 60 s).
        let ttl = try await fixture.client.send(
            RedisCommand("PTTL", RedisArgument(limiter.keys(for: path).reservation(admission.reservation.id))))
        #expect((ttl.integer ?? 0) > 119_000)
        #expect(try await admission.reservation.settle(actual: ["tokens": 321]) == .settled)
        usage = try await trees.usage(root)
        #expect(usage.used["tokens"] == 321 && usage.inFlight == 0)
        let quota = try await limiter.decide(path, cost: ["tokens": 1], reportLimits: true)
        let remaining = try #require(quota.limits.first?.remaining)
        #expect(remaining == 10_000 - 321 - 1, "the quota was settled to 321 as well")
        #expect(try await admission.reservation.settle(actual: ["tokens": 5]) == .alreadySettled)
        #expect(try await admission.reservation.cancel() == .alreadySettled)
        usage = try await trees.usage(root)
        #expect(usage.used["tokens"] == 321 && usage.inFlight == 0)
        let fields = try await fixture.client.send(RedisCommand("HKEYS", Self.treeKey(fixture, root))).array ?? []
        #expect(!fields.contains { $0.string?.hasPrefix("r:") == true }, "the call's record is gone")

        // An overrun is charged on the tree (a budget may be passed by the actual usage, as before).
        let big = try await limiter.reserve(path, estimate: ["tokens": 100], tree: TreeCall(root))
        #expect(try await big.settle(actual: ["tokens": 4_900]) == .settled)
        #expect(try await trees.usage(root).used["tokens"] == 5_221)
        let refused = try await limiter.reserve(path, estimate: ["tokens": 0], tree: TreeCall(root))
        #expect(refused.decision.treeRefusal(TreeCall(root))?.code == .treeBudget)

        // Every key the calls wrote expires.
        for key in try await fixture.keys() where !key.hasSuffix(":quotas") {
            let pttl = try await fixture.client.send(RedisCommand("PTTL", RedisArgument(key)))
            #expect((pttl.integer ?? -1) > 0, "\(key) has no expiry")
        }
    }

    @Test("A tree nobody opened has no limits but its deadline; a tree in another partition is refused up front")
    func untrackedAndPartition() async throws {
        let fixture = try QuotaFixture()
        defer { Task { await fixture.cleanUp() } }
        let limiter = try fixture.limiter(["global": "tokens: bucket rate=1/d burst=100"])
        let path = try fixture.path()
        let ghost = TreeCall(TreeContext(treeID: "never-opened", partition: fixture.root))
        let reservation = try await limiter.reserve(path, estimate: ["tokens": 60], tree: ghost)
        #expect(reservation.decision.allowed)
        #expect(try await reservation.settle(actual: ["tokens": 10]) == .settled)
        #expect(try await fixture.keys().allSatisfy { !$0.contains(":tree:") }, "nothing written for the tree")
        #expect(try await limiter.decide(path, cost: ["tokens": 90]).allowed, "the quota settled to 10")

        let elsewhere = TreeCall(TreeContext(treeID: "t", partition: fixture.root + "-other"))
        let error = await #expect(throws: QuotaError.self) {
            try await limiter.reserve(path, estimate: ["tokens": 1], tree: elsewhere)
        }
        #expect(error?.code == .invalidScope)
        // decide.lua refuses bad input by itself too: keys of another hash tag.
        var request = try DecideRequest(limiter: limiter, path: path, cost: ["tokens": 1], priority: .interactive)
        request.reservation = ("bad", .seconds(5))
        request.tree = elsewhere
        let reply = await #expect(throws: QuotaError.self) { try await request.run(limiter) }
        #expect(reply?.message.contains("hash tag") == true)
        #expect(try await limiter.decide(path, cost: ["tokens": 90], reportLimits: true).limits.first?.remaining == 0)
    }

    @Test(
        "No spurious tree refusals: with a tree budget that fits exactly N calls and a quota refusing many, the tree refuses only once it is full"
    )
    func noSpuriousRefusal() async throws {
        let fixture = try QuotaFixture()
        defer { Task { await fixture.cleanUp() } }
        let clients = try (0..<4).map { _ in try TestRedis.client() }
        defer { for client in clients { client.close() } }
        let limiters = try clients.map {
            try Limiter(
                client: $0, configuration: .init(defaults: ["global": "requests: bucket rate=400/s burst=4"]))
        }
        let trees = RequestTrees(redis: fixture.client)
        let n = 25
        let estimate = 100
        let root = try await trees.open(
            partition: fixture.root, limits: TreeLimits(budgets: ["tokens": Int64(n * estimate)]))
        let path = try fixture.path()

        struct Event: Sendable {
            var at: Int64
            var admitted = false
            var byTree = false
            var reservation: Reservation?
        }
        let events = await withTaskGroup(of: [Event].self) { group in
            for task in 0..<48 {
                let limiter = limiters[task % limiters.count]
                group.addTask {
                    var seen: [Event] = []
                    let call = TreeCall(root.child())
                    for _ in 0..<2_000 {
                        guard
                            let reservation = try? await limiter.reserve(
                                path, estimate: ["tokens": Int64(estimate), "requests": 1], tree: call)
                        else { continue }
                        let decision = reservation.decision
                        if decision.allowed {
                            seen.append(Event(at: decision.decidedAt, admitted: true, reservation: reservation))
                        } else if decision.treeRefusal(call) != nil {
                            seen.append(Event(at: decision.decidedAt, byTree: true))
                            return seen
                        } else {
                            seen.append(Event(at: decision.decidedAt))
                            try? await Task.sleep(for: .milliseconds(Int.random(in: 0...2)))
                        }
                    }
                    return seen
                }
            }
            return await group.reduce(into: []) { $0 += $1 }
        }
        let admitted = events.filter(\.admitted).sorted { $0.at < $1.at }
        let refused = events.filter(\.byTree)
        let quotaRefusals = events.count - admitted.count - refused.count
        #expect(admitted.count == n, "the tree's budget fits exactly \(n) calls: \(admitted.count) admitted")
        #expect(quotaRefusals > 0, "the quota refused some calls")
        #expect(refused.count == 48, "every task ended on the tree's refusal")
        let full = admitted.last?.at ?? 0
        let early = refused.filter { $0.at < full }
        #expect(early.isEmpty, "\(early.count) tree refusals came before the tree was full")
        var usage = try await trees.usage(root)
        #expect(usage.used["tokens"] == Int64(n * estimate) && usage.inFlight == n)

        for event in admitted { _ = try await event.reservation?.settle(actual: ["tokens": 40]) }
        usage = try await trees.usage(root)
        #expect(usage.used["tokens"] == Int64(n * 40) && usage.inFlight == 0)
    }
}

extension QuotaFixture {
    /// The number of events of `type` in the partition's stream.
    func eventsCount(_ type: String) async throws -> Int {
        try await EventLog(redis: client).recent(partition: root, count: 1_000).filter { $0.type == type }.count
    }
}
