import Foundation
import SluiceRedis
import Testing

@testable import Sluice

/// A sharded global ceiling (`quota set global=NAME ... --shards 4`) against real servers: worker processes
/// admit no more than the global burst in total and nearly all of it, whether one tenant's shard must borrow
/// the others' share or the load spreads over tenants; a transfer cut short returns by itself.
@Suite("Sharded global ceiling", .serialized, .onEveryServer)
struct ShardedCeilingTests {
    /// The global limit of every test: a bucket of 1000 that refills 1 a day.
    static let burst: Int64 = 1000

    func shardedFixture(_ test: String = #function) async throws -> QuotaFixture {
        let fixture = try QuotaFixture(test)
        try setRoot(fixture, shards: 4)
        return fixture
    }

    /// `sluice quota set` of the root's bucket (burst 1000, 1/d), split across `shards` when given: another
    /// process, as an operator's would be.
    func setRoot(_ fixture: QuotaFixture, shards: Int? = nil) throws {
        let result = try SluiceBinary.run(
            [
                "quota", "set", "global=\(fixture.root)", "--resource", "tokens", "--rate", "1/d", "--burst",
                "\(Self.burst)",
            ] + (shards.map { ["--shards", "\($0)"] } ?? []))
        #expect(result.status == 0, "\(result.output)")
    }

    /// The fixture's keys and its shards' keys (on every primary).
    func allKeys(_ fixture: QuotaFixture) async throws -> [String] {
        try await fixture.keys() + fixture.client.scanKeys(matching: "sluice:{\(fixture.root)~s*}:*")
    }

    func cleanUp(_ fixture: QuotaFixture) async {
        for key in (try? await allKeys(fixture)) ?? [] {
            _ = try? await fixture.client.send(RedisCommand("DEL", RedisArgument(key)))
        }
        await fixture.cleanUp()
    }

    func shares(_ fixture: QuotaFixture) async throws -> [ShardShare] {
        try await QuotaStore(client: fixture.client).shards(of: Scope("global", fixture.root))
    }

    /// Four `sluice bench decide` processes; returns the admissions in total.
    func runWorkers(_ fixture: QuotaFixture, _ tenantArguments: [String]) throws -> Int {
        let arguments =
            ["bench", "decide", "global=\(fixture.root)"] + tenantArguments + [
                "--cost", "tokens=1", "--concurrency", "8", "--count", "400", "--json",
            ]
        let running = try (0..<4).map { _ in try SluiceBinary.start(arguments) }
        var allowed = 0
        for process in running {
            let (status, output) = process.wait()
            #expect(status == 0, "\(output)")
            let json = try #require(jsonObject(output), "\(output)")
            #expect(json["failed"] as? Int == 0, "\(output)")
            allowed += json["allowed"] as? Int ?? 0
        }
        return allowed
    }

    /// What the shards hold, with what was admitted, never exceeds the global burst.
    func expectBound(_ fixture: QuotaFixture, allowed: Int) async throws {
        let shares = try await shares(fixture)
        #expect(shares.count == 4)
        let shareSum = shares.reduce(0) { $0 + ($1.shares["tokens"]?.share ?? 0) }
        let levelSum = shares.reduce(0) { $0 + ($1.shares["tokens"]?.level ?? 0) }
        #expect(shareSum <= Self.burst)
        #expect(levelSum + Int64(allowed) <= Self.burst, "levels \(levelSum), allowed \(allowed)")
    }

    @Test("Four processes on one tenant: its shard borrows, at most 1000 and at least 950 admitted")
    func oneTenantBorrows() async throws {
        let fixture = try await shardedFixture()
        defer { Task { await cleanUp(fixture) } }
        let allowed = try runWorkers(fixture, ["tenant=hot"])
        #expect(allowed <= 1000)
        #expect(allowed >= 950)
        try await expectBound(fixture, allowed: allowed)
        let hot = ShardHash.shard(of: "hot", shards: 4)
        let share = try await shares(fixture).first { $0.index == hot }?.shares["tokens"]?.share ?? 0
        #expect(share > 250, "the hot tenant's shard borrowed: \(share)")
    }

    @Test("Four processes over 64 tenants: at most 1000 and at least 950 admitted")
    func spreadOverTenants() async throws {
        let fixture = try await shardedFixture()
        defer { Task { await cleanUp(fixture) } }
        let spread = Set((0..<64).map { ShardHash.shard(of: "t-\($0)", shards: 4) })
        #expect(spread.count == 4, "64 tenants reach every shard")
        let allowed = try runWorkers(fixture, ["tenant=t", "--tenants", "64"])
        #expect(allowed <= 1000)
        #expect(allowed >= 950)
        try await expectBound(fixture, allowed: allowed)
    }

    @Test("A transfer interrupted between give and take returns to its donor; every key expires")
    func interruptedTransferReturns() async throws {
        let fixture = try await shardedFixture()
        defer { Task { await cleanUp(fixture) } }
        let client = fixture.client
        let root = try Scope("global", fixture.root)
        let store = QuotaStore(client: client)
        let before = try await shares(fixture)
        let epoch = try #require(before.first?.epoch)
        let layout = ShardLayout(partition: fixture.root, count: 4, epoch: epoch)
        let tenant = "donor-tenant"
        let donor = ShardHash.shard(of: tenant, shards: 4)
        let receiver = (donor + 1) % 4
        let from = ShardTransfers.shareKeys(layout, donor, root: root, namespace: "sluice")
        let to = ShardTransfers.shareKeys(layout, receiver, root: root, namespace: "sluice")

        // The give alone, as if the process died before its take: at least 100 (half the donor's spare,
        // 125) in transit for 500 ms.
        let given = try await ShardTransfers.run(
            client, keys: from.base,
            ["give", RedisArgument(epoch), "tokens", "100", "lost-1", RedisArgument(receiver), "500"])
        let pair = try #require(given.array)
        let amount = try #require(pair.first?.integer)
        #expect(amount >= 100 && amount <= 249)
        let deadline = try #require(pair.last?.integer)
        var now = try await shares(fixture)
        #expect(now.reduce(0) { $0 + ($1.shares["tokens"]?.share ?? 0) } == 1000 - amount, "in transit: held by nobody")
        #expect(now.first { $0.index == donor }?.shares["tokens"]?.share == 250 - amount)

        // Past the deadline (and the margin) no take succeeds, and the donor's next decision takes it back.
        try await Task.sleep(for: .milliseconds(500 + Int(ShardTransfers.margin) + 1000))
        let late = try await ShardTransfers.run(
            client, keys: to.base + [RedisArgument(to.claim("lost-1"))],
            [
                "take", RedisArgument(epoch), "tokens", RedisArgument(amount), "lost-1", RedisArgument(deadline),
                RedisArgument(donor),
            ])
        #expect(late.integer == 0)
        let limiter = try fixture.limiter()
        let decision = try await limiter.decide(try fixture.path("tenant=\(tenant)"), cost: ["tokens": 1])
        #expect(decision.allowed)
        now = try await shares(fixture)
        #expect(now.reduce(0) { $0 + ($1.shares["tokens"]?.share ?? 0) } == 1000)
        let back = now.first { $0.index == donor }?.shares["tokens"]
        #expect(back?.share == 250)
        #expect(back?.level == 249)
        #expect(try await store.sweepShards(of: root) == 0, "nothing left in transit")

        // A transfer that completes: share and tokens move, the sum stays.
        let moved = try await ShardTransfers.transfer(
            client, layout: layout, root: root, namespace: "sluice", resource: "tokens", need: 10, from: receiver,
            to: donor)
        #expect(moved >= 10)
        now = try await shares(fixture)
        #expect(now.reduce(0) { $0 + ($1.shares["tokens"]?.share ?? 0) } == 1000)
        #expect(now.reduce(0) { $0 + ($1.shares["tokens"]?.level ?? 0) } == 999)

        // Every key but the config hashes (operator data) expires.
        for key in try await allKeys(fixture) where !key.hasSuffix(":quotas") {
            let ttl = try await client.send(RedisCommand("PTTL", RedisArgument(key))).integer ?? -3
            #expect(ttl > 0, "\(key) has no expiry")
        }
    }

    @Test("quota set --shards refuses what it cannot split, with a typed error and nothing written")
    func badShards() async throws {
        let fixture = try QuotaFixture()
        defer { Task { await cleanUp(fixture) } }
        let store = QuotaStore(client: fixture.client)
        let pattern = try ScopePattern(parsing: ["global=\(fixture.root)"])
        try await store.set(
            pattern, resource: "tokens", limit: QuotaLimit(kind: .window, rate: try Rate(parsing: "10/min")))
        await #expect(throws: QuotaError.self) { try await store.setShards(pattern, count: 4) }
        try await store.remove(pattern)
        try await store.set(
            pattern, resource: "tokens", limit: QuotaLimit(kind: .bucket, rate: try Rate(parsing: "3/min")))
        await #expect(throws: QuotaError.self) { try await store.setShards(pattern, count: 4) }  // burst 3 < 4
        #expect(try await shares(fixture).isEmpty)
        #expect(try await fixture.client.scanKeys(matching: "sluice:{\(fixture.root)~s*}:*").isEmpty)
    }

    @Test("The reconciler reaches every shard: a reported remaining is divided among them, a 429 pauses them all")
    func reconcilerOnEveryShard() async throws {
        let fixture = try await shardedFixture()
        defer { Task { await cleanUp(fixture) } }
        let limiter = try fixture.limiter()
        let reconciler = try Reconciler(limiter: limiter)
        let tenants = try (0..<64).map { try fixture.path("tenant=r-\($0)") }
        // The provider says 100 tokens remain of 1000: the shards together admit no more than 100.
        let remaining = ProviderObservation(
            status: 200, responseClass: ResponseClass(status: 200),
            resources: [.tokens: ResourceObservation(limit: 1000, remaining: 100, resetAfter: .seconds(86_400))])
        try await reconciler.record(remaining, path: tenants[0])
        var allowed = 0
        for round in 0..<4 {
            _ = round
            for path in tenants where try await limiter.decide(path, cost: ["tokens": 1]).allowed { allowed += 1 }
        }
        #expect(allowed <= 100)
        #expect(allowed >= 90, "\(allowed) of the 100 the provider stated")

        // A 429 pauses every shard, whichever tenant's path reported it.
        let throttled = ProviderObservation(status: 429, responseClass: .quota, retryAfter: .seconds(60))
        let outcome = try await reconciler.record(throttled, path: tenants[1])
        #expect(outcome.pausedUntil != nil)
        let shardsSeen = Set((0..<64).map { ShardHash.shard(of: "r-\($0)", shards: 4) })
        #expect(shardsSeen.count == 4)
        for path in tenants {
            let decision = try await limiter.decide(path, cost: ["tokens": 1])
            #expect(!decision.allowed)
            // The buckets are spent too: the pause is among the limits that deny (after the bucket).
            #expect(decision.limits.contains { $0.kind == .pause && $0.verdict == .denies }, "\(path)")
        }
    }

    @Test("A split reaches a process that read the layout before it at its next decision, no re-read in between")
    func splitReachesRunningProcess() async throws {
        let fixture = try QuotaFixture()
        defer { Task { await cleanUp(fixture) } }
        try setRoot(fixture)
        let acme = try fixture.path("tenant=acme")
        // Two views read before the split: a limiter's own decisions, and a Backpressure's calls (call-admit).
        let limiter = try fixture.limiter()
        let callLimiter = try fixture.limiter()
        let backpressure = Backpressure(
            redis: fixture.client, configuration: .init(partition: fixture.root, heartbeat: nil), limiter: callLimiter)
        let call = ProviderCall(
            scope: "\(fixture.root)/chat", estimate: ["tokens": 10], quotaPath: acme, maxAttempts: 1)
        #expect(try await limiter.decide(acme, cost: ["tokens": 1]).allowed)
        _ = try await backpressure.call(call) { _ in CallOutcome((), usage: ["tokens": 10]) }
        #expect(limiter.shardDirectory.cached(fixture.root) == nil)
        #expect(callLimiter.shardDirectory.cached(fixture.root) == nil)

        // Another process splits the root. Each view learns it from its next decision, not from a timer: the
        // partition refuses the decision as split, and it is decided again on acme's shard.
        try setRoot(fixture, shards: 4)
        let shard = ShardHash.shard(of: "acme", shards: 4)
        func level() async throws -> Int64? {
            try await shares(fixture).first { $0.index == shard }?.shares["tokens"]?.level
        }
        #expect(try await level() == 250)
        let decision = try await limiter.decide(acme, cost: ["tokens": 1])
        #expect(decision.allowed && decision.deniedBy == nil, "\(decision)")
        #expect(try await level() == 249)
        #expect(limiter.shardDirectory.cached(fixture.root)?.count == 4)

        let result = try await backpressure.call(call) { _ in CallOutcome(7, usage: ["tokens": 10]) }
        #expect(result.value == 7)
        #expect(try await level() == 239)
        #expect(callLimiter.shardDirectory.cached(fixture.root)?.count == 4)
    }

    @Test("A call inside a tree opened before a split still runs after it, on the tenant's shard, nothing left behind")
    func treeCallAcrossSplit() async throws {
        let fixture = try QuotaFixture()
        defer { Task { await cleanUp(fixture) } }
        try setRoot(fixture)
        let acme = try fixture.path("tenant=acme")
        let call = ProviderCall(
            scope: "\(fixture.root)/chat", estimate: ["tokens": 10], quotaPath: acme, maxAttempts: 1)
        // Two views from before the split: one whose partition is the path's (call-admit decides the tree with the
        // quota), one whose queue and breaker are elsewhere (the tree and the quota in one decide call).
        var views: [(Backpressure, TreeContext)] = []
        for partition in [fixture.root, fixture.root + "-workers"] {
            let backpressure = Backpressure(
                redis: fixture.client, configuration: .init(partition: partition, heartbeat: nil),
                limiter: try fixture.limiter())
            let tree = try await backpressure.trees.open(
                partition: fixture.root, tenant: "acme", limits: TreeLimits(budgets: ["tokens": 1000]))
            #expect(tree.shard == nil)
            _ = try await tree.run {
                try await backpressure.call(call) { _ in CallOutcome((), usage: ["tokens": 10]) }
            }
            views.append((backpressure, tree))
        }
        try setRoot(fixture, shards: 4)
        let shard = ShardHash.shard(of: "acme", shards: 4)
        for (n, (backpressure, tree)) in views.enumerated() {
            let result = try await tree.run {
                try await backpressure.call(call) { _ in CallOutcome(n, usage: ["tokens": 10]) }
            }
            #expect(result.value == n)
            // The tree (in the partition's slot) and the shard were each charged once.
            #expect(try await backpressure.trees.usage(tree).used["tokens"] == 20)
            #expect(try await backpressure.trees.usage(tree).inFlight == 0)
        }
        let level = try await shares(fixture).first { $0.index == shard }?.shares["tokens"]?.level
        #expect(level == 230)
        for partition in [fixture.root, fixture.root + "-workers"] {
            let status = try await AdmissionQueue(
                redis: fixture.client, partition: partition, scope: "\(fixture.root)/chat"
            )
            .status()
            #expect(status.waiting == 0 && status.inFlight == 0, "\(status)")
        }
    }

    @Test("A tree opened for a tenant lives on its shard: each call is decided with the quota in one script")
    func treeOnTenantsShard() async throws {
        let fixture = try await shardedFixture()
        defer { Task { await cleanUp(fixture) } }
        let limiter = try fixture.limiter()
        let acme = try fixture.path("tenant=acme")
        let shard = ShardHash.shard(of: "acme", shards: 4)
        func level() async throws -> Int64? {
            try await shares(fixture).first { $0.index == shard }?.shares["tokens"]?.level
        }
        let trees = RequestTrees(redis: fixture.client, limiter: limiter)
        let tree = try await trees.open(
            partition: fixture.root, tenant: "acme", limits: TreeLimits(budgets: ["tokens": 300]))
        #expect(tree.shard == shard)
        #expect(
            try await fixture.client.scanKeys(matching: "sluice:{\(fixture.root)~s\(shard)}:tree:*").count == 1)

        // The tree and the shard's bucket charged at once; a tree refusal charges neither.
        let first = try await limiter.reserve(acme, estimate: ["tokens": 100], tree: TreeCall(tree))
        #expect(first.decision.allowed)
        #expect(try await level() == 150)
        #expect(try await trees.usage(tree).used["tokens"] == 100)
        let over = try await limiter.reserve(acme, estimate: ["tokens": 250], tree: TreeCall(tree))
        #expect(!over.decision.allowed && over.decision.deniedBy?.kind == .treeBudget, "\(over.decision)")
        #expect(try await level() == 150)
        // Settling closes both sides: the bucket and the tree's budget keep the actual usage.
        try await first.settle(actual: ["tokens": 30])
        #expect(try await level() == 220)
        #expect(try await trees.usage(tree).used["tokens"] == 30)

        // A tree that is not on the tenant's shard cannot be decided with it: a typed error, nothing charged.
        let elsewhere = try await trees.open(partition: fixture.root, limits: TreeLimits(budgets: ["tokens": 300]))
        #expect(elsewhere.shard == nil)
        await #expect(throws: QuotaError.self) {
            try await limiter.reserve(acme, estimate: ["tokens": 10], tree: TreeCall(elsewhere))
        }
        #expect(try await level() == 220)

        // Through Backpressure (its trees know its limiter): the call's tree and quota in one decision.
        let backpressure = Backpressure(
            redis: fixture.client, configuration: .init(partition: fixture.root, heartbeat: nil), limiter: limiter)
        let agentTree = try await backpressure.trees.open(
            partition: fixture.root, tenant: "acme", limits: TreeLimits(budgets: ["tokens": 1000]))
        let call = ProviderCall(
            scope: "\(fixture.root)/chat", estimate: ["tokens": 10], quotaPath: acme, maxAttempts: 1)
        #expect(Backpressure.decideTogether(limiter, acme, agentTree, call, ttl: .seconds(60)) != nil)
        #expect(Backpressure.decideTogether(limiter, acme, elsewhere, call, ttl: .seconds(60)) == nil)
        let result = try await agentTree.run {
            try await backpressure.call(call) { _ in CallOutcome(1, usage: ["tokens": 8]) }
        }
        #expect(result.value == 1)
        #expect(try await level() == 212)
        #expect(try await backpressure.trees.usage(agentTree).used["tokens"] == 8)
        // The header carries the shard to another process's context.
        #expect(TreeContext(headerValue: agentTree.headerValue)?.shard == shard)
    }

    @Test("A tenant's lease pool lives on its shard and follows the concurrency share of the tenant's path there")
    func leasePoolOnTenantsShard() async throws {
        let fixture = try await shardedFixture()
        defer { Task { await cleanUp(fixture) } }
        let limiter = try fixture.limiter()
        let shard = ShardHash.shard(of: "acme", shards: 4)
        let acme = try fixture.path("tenant=acme")
        // A recovery slow enough that the cut share has not climbed a slot back while the test counts.
        let reconciler = try Reconciler(
            limiter: limiter, configuration: .init(window: .seconds(1), cutFactor: 0.7, recovery: .seconds(120)))
        let pool = try await LeasePool.tenant("acme", of: fixture.root, scope: "chat", slots: 10, limiter: limiter)
            .following(reconciler, path: acme)
        #expect(pool.shard == shard)
        var leases: [Lease] = []
        for _ in 0..<3 {
            guard case .acquired(let lease) = try await pool.tryAcquire() else { break }
            leases.append(lease)
        }
        #expect(leases.count == 3)
        #expect(
            try await fixture.client.scanKeys(matching: "sluice:{\(fixture.root)~s\(shard)}:lease:*").count == 1)
        #expect(try await fixture.client.scanKeys(matching: "sluice:{\(fixture.root)}:lease:*").isEmpty)
        // Another process's pool for the tenant (its own limiter, its own read of the layout) counts the same slots.
        let elsewhere = try await LeasePool.tenant(
            "acme", of: fixture.root, scope: "chat", slots: 10, limiter: try fixture.limiter())
        #expect(try await elsewhere.held() == 3)

        // An overload reported on any tenant's path cuts every shard's concurrency share: the pool follows its own.
        let sent = try await limiter.decide(acme, cost: ["tokens": 1]).sendsAt
        let overload = try await reconciler.record(
            ProviderObservation(status: 529, responseClass: .overload), path: try fixture.path("tenant=other"),
            sentAt: sent)
        #expect(overload.cut)
        while case .acquired(let lease) = try await pool.tryAcquire() { leases.append(lease) }
        #expect(leases.count == 7, "10 slots cut by 30%")
        for lease in leases { #expect(try await pool.release(lease)) }
        #expect(try await pool.held() == 0)

        // A partition that is not split: the partition's own pool.
        let unsplit = try await LeasePool.tenant(
            "acme", of: "\(fixture.root)-unsplit", scope: "chat", slots: 10, limiter: limiter)
        #expect(unsplit.shard == nil)
    }

    @Test("sluice events reads the shards' streams with the partition's, and follows them")
    func eventsOfShards() async throws {
        let fixture = try await shardedFixture()
        defer { Task { await cleanUp(fixture) } }
        let reconciler = try Reconciler(limiter: try fixture.limiter())
        // A 429 pauses every shard: each shard's stream gets its pause event.
        let throttled = ProviderObservation(status: 429, responseClass: .quota, retryAfter: .seconds(60))
        _ = try await reconciler.record(throttled, path: try fixture.path("tenant=acme"))
        func shardsOfPauses(_ output: String) -> Set<Int> {
            Set(
                output.split(separator: "\n").compactMap { line -> Int? in
                    guard let object = jsonObject(String(line)), object["partition"] as? String == fixture.root,
                        object["type"] as? String == "pause"
                    else { return nil }
                    return object["shard"] as? Int
                })
        }
        let named = try SluiceBinary.run(["events", "--partition", fixture.root, "--json"])
        #expect(named.status == 0, "\(named.output)")
        #expect(shardsOfPauses(named.output) == [0, 1, 2, 3], "\(named.output)")
        let all = try SluiceBinary.run(["events", "--json", "--count", "1000"])
        #expect(shardsOfPauses(all.output) == [0, 1, 2, 3], "\(all.output)")
        let text = try SluiceBinary.run(["events", "--partition", fixture.root])
        #expect(text.output.contains("shard=2") && text.output.contains("pause"), "\(text.output)")

        // Followed: an overload's cut reaches every shard's stream, and the follower prints it. It follows once it
        // waits in XREAD (on a cluster, one connection per stream on the primary serving it), however long a loaded
        // machine takes to start it: counted against the XREADs waiting before it started.
        func xreads() async throws -> Int {
            try await fixture.client.sendToEveryPrimary(RedisCommand("CLIENT", ["LIST"])).map {
                ($0.string ?? "").components(separatedBy: "cmd=xread").count - 1
            }.reduce(0, +)
        }
        let before = try await xreads()
        let primaries = try await fixture.client.primaries().count
        let following = try SluiceBinary.start(["events", "--partition", fixture.root, "--follow", "--count", "0"])
        var reading = false
        for _ in 0..<300 where !reading {
            reading = try await xreads() >= before + (primaries > 1 ? 5 : 1)
            if !reading { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(reading, "the follower never started reading")
        _ = try await reconciler.record(
            ProviderObservation(status: 529, responseClass: .overload), path: try fixture.path("tenant=acme"))
        let printed = await following.output(containing: "shard=3", within: .seconds(30))
        following.process.terminate()
        let (_, output) = following.wait()
        #expect(printed, "\(output)")
        #expect(!output.contains("pause"), "--count 0 prints no backlog: \(output)")
    }

    @Test("A reservation on a sharded root is charged and settled on its tenant's shard")
    func reservationOnItsShard() async throws {
        let fixture = try await shardedFixture()
        defer { Task { await cleanUp(fixture) } }
        let limiter = try fixture.limiter()
        let shard = ShardHash.shard(of: "acme", shards: 4)
        let reservation = try await limiter.reserve(try fixture.path("tenant=acme"), estimate: ["tokens": 100])
        #expect(reservation.decision.allowed)
        var held = try await shares(fixture).first { $0.index == shard }?.shares["tokens"]
        #expect(held?.level == 150)
        try await reservation.settle(actual: ["tokens": 30])
        held = try await shares(fixture).first { $0.index == shard }?.shares["tokens"]
        #expect(held?.level == 220)
        // More than its share: the shard borrows from the others for the reservation too.
        let big = try await limiter.reserve(try fixture.path("tenant=acme"), estimate: ["tokens": 400])
        #expect(big.decision.allowed)
        let all = try await shares(fixture)
        #expect(all.reduce(0) { $0 + ($1.shares["tokens"]?.share ?? 0) } == 1000)
        #expect(all.reduce(0) { $0 + ($1.shares["tokens"]?.level ?? 0) } == 1000 - 30 - 400)
    }
}
