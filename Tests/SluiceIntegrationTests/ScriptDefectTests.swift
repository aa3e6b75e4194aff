import Foundation
import SluiceRedis
import Testing

@testable import Sluice

/// The defects issue 10 found by running the scripts directly against Redis, one test each: every
/// test failed on the scripts before their fix. The rules behind them: refunds never lift a bucket
/// above what it would hold had the call never been charged; every length and every duration is
/// range-checked before any write (a decision stays all or nothing); every stored index is clamped
/// to now; operators' bad config never fails a decision; fencing tokens only ever grow; an expiry
/// is only ever extended.
@Suite("Script defects of issue 10", .serialized)
struct ScriptDefectTests {
    @Test("1. Cancelled and zero-settled reservations leave no entries in an exact window's log")
    func exactLogForgetsClosedReservations() async throws {
        let fixture = try QuotaFixture()
        defer { Task { await fixture.cleanUp() } }
        let limiter = try fixture.limiter(["global": "requests: window 100/min"])  // exact: at most 100
        let path = try fixture.path()
        // 4,100 closed reservations within one window: past the 4,096 entries a 16-bit length holds.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for task in 0..<10 {
                group.addTask {
                    for index in 0..<410 {
                        let reservation = try await limiter.reserve(path, estimate: ["requests": 1])
                        #expect(reservation.decision.allowed)
                        if (task + index) % 2 == 0 {
                            #expect(try await reservation.cancel() == .cancelled)
                        } else {
                            #expect(try await reservation.settle(actual: ["requests": 0]) == .settled)
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        let decision = try await limiter.decide(path, cost: ["requests": 1], reportLimits: true)
        #expect(decision.allowed && decision.limits.first?.remaining == 99)
        let state = limiter.keys(for: path).states(path)[0]
        let length = try await fixture.client.send(RedisCommand("STRLEN", RedisArgument(state))).integer ?? -1
        #expect(length < 200, "the log holds only entries that still count (\(length) bytes)")
    }

    @Test("1. (and 2.) Overruns settled on reservations of 0 keep an exact window's log bounded")
    func exactLogBoundedByOverruns() async throws {
        let fixture = try QuotaFixture()
        defer { Task { await fixture.cleanUp() } }
        let limiter = try fixture.limiter(["global": "requests: window 100/min"])
        let path = try fixture.path()
        // An estimate of 0 is always admitted; each settle charges 1 that has no entry of its own.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<10 {
                group.addTask {
                    for _ in 0..<420 {
                        let reservation = try await limiter.reserve(path, estimate: ["requests": 0])
                        #expect(try await reservation.settle(actual: ["requests": 1]) == .settled)
                    }
                }
            }
            try await group.waitForAll()
        }
        let decision = try await limiter.decide(path, cost: ["requests": 1], reportLimits: true)
        #expect(!decision.allowed && (decision.limits.first?.remaining ?? 1) < 0, "4,200 overruns fill the window")
        let state = limiter.keys(for: path).states(path)[0]
        let length = try await fixture.client.send(RedisCommand("STRLEN", RedisArgument(state))).integer ?? -1
        #expect(length > 0 && length < 1_024 * 16 + 100, "\(length) bytes")
    }

    @Test("2. A reservation whose estimate is 0 still settles its actual usage, on the quota and on the tree")
    func zeroEstimateSettlesActual() async throws {
        let fixture = try QuotaFixture()
        defer { Task { await fixture.cleanUp() } }
        let limiter = try fixture.limiter([
            "global": "tokens: bucket rate=1/d burst=100; requests: window 1000/min; cost: budget 100 period=d"
        ])
        let path = try fixture.path()
        let reservation = try await limiter.reserve(path, estimate: ["tokens": 0, "requests": 1, "cost": 0])
        #expect(reservation.decision.allowed)
        #expect(try await reservation.settle(actual: ["tokens": 60, "requests": 3, "cost": 70]) == .settled)
        let after = try await limiter.decide(path, cost: ["tokens": 1, "requests": 1, "cost": 1], reportLimits: true)
        #expect(after.allowed)
        #expect(after.limits.first { $0.resource == "tokens" }?.remaining == 39)
        #expect(after.limits.first { $0.resource == "requests" }?.remaining == 996)
        #expect(after.limits.first { $0.resource == "cost" }?.remaining == 29)

        // The exact window (at most 100) and the tree budget too.
        let trees = RequestTrees(redis: fixture.client)
        let root = try await trees.open(partition: fixture.root, limits: TreeLimits(budgets: ["tokens": 100]))
        let small = try fixture.limiter(["global": "tokens: window 100/min"])
        let call = TreeCall(root)
        let inTree = try await small.reserve(path, estimate: ["tokens": 0], tree: call)
        #expect(inTree.decision.allowed)
        #expect(try await inTree.settle(actual: ["tokens": 70]) == .settled)
        #expect(try await trees.usage(root).used["tokens"] == 70)
        let window = try await small.decide(path, cost: ["tokens": 1], reportLimits: true)
        #expect(window.limits.first?.remaining == 29)
    }

    @Test("3. A refund after the bucket refilled to its burst and was charged again creates no tokens")
    func lateRefundCreatesNoTokens() async throws {
        let fixture = try QuotaFixture()
        defer { Task { await fixture.cleanUp() } }
        let limiter = try fixture.limiter(["global": "tokens: bucket rate=100/s burst=100"])
        let path = try fixture.path()
        let reservation = try await limiter.reserve(path, estimate: ["tokens": 100])
        #expect(reservation.decision.allowed)
        try await Task.sleep(for: .milliseconds(1_200))  // refilled to its burst: the charge is forgotten
        #expect(try await limiter.decide(path, cost: ["tokens": 100]).allowed)
        #expect(try await reservation.cancel() == .cancelled)
        // Had the reservation never been charged, the bucket would be (nearly) empty now.
        let after = try await limiter.decide(path, cost: ["tokens": 50], reportLimits: true)
        #expect(!after.allowed, "the refund lifted the bucket to \(after.limits.first?.remaining ?? -1)")

        // A refund before the refill still gives everything back.
        let fresh = try fixture.path("tenant=early")
        let early = try fixture.limiter(["tenant": "tokens: bucket rate=1/d burst=100"])
        let held = try await early.reserve(fresh, estimate: ["tokens": 80])
        #expect(try await early.decide(fresh, cost: ["tokens": 10]).allowed)
        #expect(try await held.settle(actual: ["tokens": 30]) == .settled)
        let left = try await early.decide(fresh, cost: ["tokens": 1], reportLimits: true)
        #expect(left.limits.first { $0.scopeIndex == 1 }?.remaining == Int64(100 - 10 - 30 - 1))
    }

    @Test("3b. Under sustained load every reservation gets back what it did not use, as the bucket refills")
    func refundsSurviveRefill() async throws {
        // Ten open reservations hold the whole burst while the bucket refills. Had none been charged, the
        // bucket would have been full all along, so the refunds may add up to what it lacks of its burst. The
        // pool used to charge every reservation with all it absorbed since (each lost the whole refill), so
        // under a fleet's steady load no refund came back at all and calls were paced by their estimates.
        let fixture = try QuotaFixture()
        defer { Task { await fixture.cleanUp() } }
        let limiter = try fixture.limiter(["global": "tokens: bucket rate=200/s burst=1000"])
        let path = try fixture.path()
        var reservations: [Reservation] = []
        for _ in 0..<10 {
            let reservation = try await limiter.reserve(path, estimate: ["tokens": 100])
            #expect(reservation.decision.allowed)
            reservations.append(reservation)
        }
        try await Task.sleep(for: .milliseconds(400))  // refilled by at least 80: more than a refund of 50 leaves
        func remaining() async throws -> Int64 {  // after a charge of 1
            try await limiter.decide(path, cost: ["tokens": 1], reportLimits: true).limits.first?.remaining ?? -1
        }
        let before = try await remaining()
        for reservation in reservations { #expect(try await reservation.settle(actual: ["tokens": 50]) == .settled) }
        let after = try await remaining()
        // 10 x 50 back (less only where the refill since left less room under the burst), and never above it.
        #expect(after - before >= min(490, 1_000 - before - 10), "refunds gave back \(after - before) from \(before)")
        #expect(after <= 1_000)
    }

    @Test("4. Editing a window between exact and approximate keeps its count")
    func windowEditKeepsCount() async throws {
        let fixture = try QuotaFixture()
        defer { Task { await fixture.cleanUp() } }
        let limiter = try fixture.limiter()
        let path = try fixture.path()
        try await fixture.configure("", "requests: window 100/min")  // exact
        var admitted = 0
        for _ in 0..<110 where try await limiter.decide(path, cost: ["requests": 1]).allowed { admitted += 1 }
        #expect(admitted == 100)
        try await fixture.configure("", "requests: window 101/min")  // approximate
        for _ in 0..<110 where try await limiter.decide(path, cost: ["requests": 1]).allowed { admitted += 1 }
        #expect(admitted == 101, "101 per minute admitted \(admitted)")

        // And back: an approximate count carries into the exact log.
        try await fixture.configure("", "requests: window 100/min")
        for _ in 0..<20 where try await limiter.decide(path, cost: ["requests": 1]).allowed { admitted += 1 }
        #expect(admitted == 101, "100 per minute after 101 admitted \(admitted)")
    }

    @Test("5. A resource named err is a resource like any other")
    func resourceNamedErr() async throws {
        let fixture = try QuotaFixture()
        defer { Task { await fixture.cleanUp() } }
        try await fixture.configure("", "err: bucket rate=1/d burst=2")
        let limiter = try fixture.limiter(["global": "tokens: bucket rate=1/d burst=100"])
        let path = try fixture.path()
        let plain = try await limiter.decide(path, cost: ["tokens": 1])
        #expect(plain.allowed && plain.warnings.isEmpty)
        var admitted = 0
        for _ in 0..<3 where try await limiter.decide(path, cost: ["err": 1]).allowed { admitted += 1 }
        #expect(admitted == 2)
        // The caller's default may name it too.
        let byDefault = try fixture.limiter(["tenant": "err: window 1/min"])
        let tenant = try fixture.path("tenant=a")
        #expect(try await byDefault.decide(tenant, cost: ["requests": 1]).warnings.isEmpty)
    }

    @Test("6. Scheduled batch admissions leave the headroom that interactive calls keep")
    func batchKeepsHeadroom() async throws {
        let fixture = try QuotaFixture()
        defer { Task { await fixture.cleanUp() } }
        let limiter = try fixture.limiter(["global": "tokens: bucket rate=10/s burst=100 headroom=30 debt=200"])
        let path = try fixture.path()
        let batch = try await limiter.schedule(path, cost: ["tokens": 100], maxWait: .seconds(10), priority: .batch)
        #expect(batch.allowed && batch.wait > .milliseconds(2_500) && batch.wait <= .milliseconds(3_000))
        // The headroom (30) is still there for interactive calls, now.
        let interactive = try await limiter.decide(path, cost: ["tokens": 29])
        #expect(interactive.allowed, "interactive calls lost the headroom to a batch admission")
        #expect(try await !limiter.decide(path, cost: ["tokens": 5]).allowed)
        // A second batch admission is scheduled behind both (the headroom refilled first).
        let second = try await limiter.schedule(path, cost: ["tokens": 10], maxWait: .seconds(10), priority: .batch)
        #expect(second.allowed && second.wait > .milliseconds(6_500))
        #expect(try await second.cancel() == .cancelled)
        #expect(try await batch.cancel() == .cancelled)
    }

    @Test("7. Fencing tokens keep growing after the lease key expired")
    func fencingTokensOutliveTheKey() async throws {
        let client = try TestRedis.client()
        defer { client.close() }
        let partition = "t-fencing-\(UUID().uuidString.prefix(8))"
        let pool = LeasePool(redis: client, partition: partition, scope: "gpt", slots: 2, ttl: .seconds(5))
        guard case .acquired(let first) = try await pool.tryAcquire() else {
            Issue.record("no slot")
            return
        }
        #expect(try await pool.release(first))
        let key = PartitionKeys(partition: partition).key("lease", "gpt")
        _ = try await client.send(RedisCommand("PEXPIRE", key, "1"))  // the key expires, as after a day idle
        try await Task.sleep(for: .milliseconds(20))
        #expect(try await client.send(RedisCommand("EXISTS", key)).integer == 0)
        guard case .acquired(let second) = try await pool.tryAcquire() else {
            Issue.record("no slot")
            return
        }
        #expect(second.token > first.token, "tokens restarted: \(first.token) then \(second.token)")
        #expect(try await pool.release(second))
        _ = try await client.send(RedisCommand("DEL", key))
    }

    @Test("8. A short-lived lease or registration never shortens the key's expiry")
    func expiryOnlyExtended() async throws {
        let client = try TestRedis.client()
        defer { client.close() }
        let partition = "t-expiry-\(UUID().uuidString.prefix(8))"
        let long = LeasePool(redis: client, partition: partition, scope: "gpt", slots: 5, ttl: .seconds(3_600))
        let short = LeasePool(redis: client, partition: partition, scope: "gpt", slots: 5, ttl: .milliseconds(50))
        let key = PartitionKeys(partition: partition).key("lease", "gpt")
        guard case .acquired(let held) = try await long.tryAcquire(),
            case .acquired(let brief) = try await short.tryAcquire()
        else {
            Issue.record("no slot")
            return
        }
        var pttl = try await client.send(RedisCommand("PTTL", key)).integer ?? 0
        #expect(pttl > 89_000_000, "acquire shortened the key's expiry to \(pttl) ms")
        #expect(try await short.renew(brief))
        pttl = try await client.send(RedisCommand("PTTL", key)).integer ?? 0
        #expect(pttl > 89_000_000, "renew shortened the key's expiry to \(pttl) ms")
        #expect(try await long.release(held))

        let steady = FleetMembership(redis: client, partition: partition, workerID: "steady", interval: .seconds(200))
        let hasty = FleetMembership(redis: client, partition: partition, workerID: "hasty", interval: .milliseconds(10))
        #expect(try await steady.beat() == 1)
        #expect(try await hasty.beat() == 2)
        let workers = PartitionKeys(partition: partition).workers
        pttl = try await client.send(RedisCommand("PTTL", workers)).integer ?? 0
        #expect(pttl > 600_000, "a heartbeat shortened the registry's expiry to \(pttl) ms")
        for key in [key, workers] { _ = try await client.send(RedisCommand("DEL", key)) }
    }

    @Test("9. An absurd expiry never leaves a decision half written")
    func absurdExpiryIsAllOrNothing() async throws {
        let fixture = try QuotaFixture()
        defer { Task { await fixture.cleanUp() } }
        try await fixture.configure("", "requests: bucket rate=1/d burst=100")
        // Refills 1 a million days: spending 2^50 of it takes ~10^29 ms to refill.
        try await fixture.configure(
            "tenant=*", "tokens: bucket rate=1/1000000d burst=1125899906842624 debt=1125899906842624")
        let limiter = try fixture.limiter()
        let path = try fixture.path("tenant=a")
        let first = try? await limiter.decide(path, cost: ["requests": 1, "tokens": 1_125_899_906_842_614])
        #expect(first?.allowed == true, "the decision failed")
        let second = try await limiter.decide(path, cost: ["requests": 1, "tokens": 1], reportLimits: true)
        #expect(second.allowed)
        #expect(second.limits.first { $0.resource == "requests" }?.remaining == 98, "each decision charged once")
        for key in try await fixture.keys() where key != fixture.quotasKey {
            let pttl = try await fixture.client.send(RedisCommand("PTTL", RedisArgument(key))).integer ?? -3
            #expect(pttl > 0, "\(key) has no expiry")
        }
    }

    @Test("10. settle refuses negative, non-decimal and non-finite actual costs before writing anything")
    func settleValidatesInput() async throws {
        let fixture = try QuotaFixture()
        defer { Task { await fixture.cleanUp() } }
        let limiter = try fixture.limiter(["global": "tokens: bucket rate=1/d burst=100"])
        let path = try fixture.path()
        let reservation = try await limiter.reserve(path, estimate: ["tokens": 10], id: "r1")
        #expect(try await limiter.decide(path, cost: ["tokens": 50]).allowed)
        let keys = limiter.keys(for: path)
        let redisKeys = [RedisArgument(keys.reservation("r1"))] + keys.states(path).map { RedisArgument($0) }
        let bad: [[String]] = [
            ["settle", "tokens", "-1000"], ["settle", "tokens", "nan"], ["settle", "tokens", "inf"],
            ["settle", "tokens", "0x10"], ["settle", "tokens", "1e2"], ["settle", "tokens", "1.5"],
            ["settle", "tokens", ""], ["settle", "tokens", "99999999999999999999"], ["settle", "tokens"],
            ["refund"], ["settle", "tok ens", "1"],
        ]
        for arguments in bad {
            await #expect(throws: RedisError.self, "\(arguments)") {
                _ = try await fixture.client.run(
                    LuaScripts.settle, keys: redisKeys, arguments: arguments.map { RedisArgument($0) })
            }
        }
        let untouched = try await limiter.decide(path, cost: ["tokens": 1], reportLimits: true)
        #expect(untouched.limits.first?.remaining == Int64(100 - 10 - 50 - 1))
        #expect(try await reservation.settle(actual: ["tokens": 4]) == .settled)
        let settled = try await limiter.decide(path, cost: ["tokens": 1], reportLimits: true)
        #expect(settled.limits.first?.remaining == Int64(100 - 4 - 50 - 2))
    }

    @Test("11. A spec holds at most 32 limits: Swift refuses more, the script ignores and reports a longer one")
    func limitsPerSpecAreCapped() async throws {
        let fixture = try QuotaFixture()
        defer { Task { await fixture.cleanUp() } }
        func windows(_ count: Int) -> String {
            "requests: " + (1...count).map { "window \($0 * 1000)/\($0)s" }.joined(separator: "; ")
        }
        #expect(try QuotaSpec(parsing: windows(QuotaSpec.maximumLimits)).entries[0].limits.count == 32)
        let error = #expect(throws: QuotaError.self) { try QuotaSpec(parsing: windows(33)) }
        #expect(error?.code == .tooManyLimits)
        #expect(throws: QuotaError.self) { try Limiter.Configuration(defaults: ["global": windows(33)]).validate() }

        try await fixture.configure("", windows(1_000))
        let limiter = try fixture.limiter(["global": "requests: window 3/min"])
        let path = try fixture.path()
        let decision = try await limiter.decide(path, cost: ["requests": 1], reportLimits: true)
        #expect(decision.allowed)
        #expect(decision.warnings.count == 1 && decision.warnings.first?.code == .invalidConfig)
        #expect(decision.warnings.first?.reason.contains("32") == true)
        #expect(decision.limits.count == 1 && decision.limits.first?.limit == 3, "the caller's default applies")
        // 32 limits are fine on both sides.
        try await fixture.configure("", windows(32))
        let capped = try await limiter.decide(path, cost: ["requests": 1], reportLimits: true)
        #expect(capped.warnings.isEmpty && capped.limits.count == 32)

        // quota set refuses the 33rd.
        let store = QuotaStore(client: fixture.client)
        let pattern = try ScopePattern(parsing: ["global=\(fixture.root)"])
        let setError = await #expect(throws: QuotaError.self) {
            try await store.set(
                pattern, resource: "requests",
                limit: try QuotaSpec(parsing: "requests: window 1/h")
                    .entries[0].limits[0])
        }
        #expect(setError?.code == .tooManyLimits)
    }

    @Test("12. A stored period or window ahead of now (Redis' clock stepped back) still counts")
    func clockStepBackKeepsCounts() async throws {
        let fixture = try QuotaFixture()
        defer { Task { await fixture.cleanUp() } }
        let limiter = try fixture.limiter([
            "global": "tokens: budget 100 period=d; requests: window 200/min; calls: window 5/min"
        ])
        let path = try fixture.path()
        #expect(try await limiter.decide(path, cost: ["tokens": 100, "requests": 200, "calls": 5]).allowed)
        let state = limiter.keys(for: path).states(path)[0]
        // As if the records had been written a period later than Redis' clock now says.
        try await Self.shift(fixture.client, state, tag: "tokens/g", field: 2, by: 1)  // the day's index
        try await Self.shift(fixture.client, state, tag: "requests/w60000", field: 3, by: 1)  // the window's index
        try await Self.shift(fixture.client, state, tag: "calls/w60000", field: 4, by: 0, log: 120_000)  // the log
        for cost: Cost in [["tokens": 1], ["requests": 1], ["calls": 1]] {
            let decision = try await limiter.decide(path, cost: cost)
            #expect(!decision.allowed, "\(cost) was admitted after the clock stepped back")
        }
    }

    @Test("13. A cost above a budget's total is refused for good")
    func costAboveBudgetIsFinal() async throws {
        let fixture = try QuotaFixture()
        defer { Task { await fixture.cleanUp() } }
        let limiter = try fixture.limiter(["global": "tokens: budget 250 period=mo; usd: budget 5 period=d"])
        let path = try fixture.path()
        let never = try await limiter.decide(path, cost: ["tokens": 251])
        #expect(!never.allowed && !never.retryable)
        #expect(try await limiter.decide(path, cost: ["tokens": 200]).allowed)
        let later = try await limiter.decide(path, cost: ["tokens": 100])
        #expect(!later.allowed && later.retryable, "the next month has room for 100")
        #expect(try await !limiter.decide(path, cost: ["usd": 6]).retryable)
    }

    @Test("14. reconcile range-checks its resources and resets before writing anything")
    func reconcileValidatesBeforeWriting() async throws {
        let fixture = try QuotaFixture()
        defer { Task { await fixture.cleanUp() } }
        let limiter = try fixture.limiter(["global": "tokens: bucket rate=1/d burst=100"])
        let path = try fixture.path()
        #expect(try await limiter.decide(path, cost: ["tokens": 10]).allowed)
        let keys = limiter.keys(for: path)
        let redisKeys = [RedisArgument(keys.states(path)[0]), RedisArgument(keys.events)]
        func reconcile(_ resources: [[String]], class responseClass: String = "ok") async throws -> RedisValue {
            let head = [
                path.root.description, responseClass, "0", "-1", "60000", "0.9", "0.5", "60000", "3600000", "1000",
                "0", "0",
            ]
            return try await fixture.client.run(
                LuaScripts.reconcile, keys: redisKeys,
                arguments: (head + resources.flatMap { $0 }).map { RedisArgument($0) })
        }
        let state = { () async throws -> [UInt8]? in
            try await fixture.client.send(RedisCommand("GET", RedisArgument(keys.states(path)[0]))).bytes
        }

        // Too many resources in one response: refused, nothing written.
        let before = try await state()
        let many = (0..<600).map { ["r\($0)_" + String(repeating: "x", count: 20), "1000", "500", "-1"] }
        await #expect(throws: RedisError.self) { _ = try await reconcile(many) }
        #expect(try await state() == before)

        // Many responses naming new resources: the record stays bounded and readable.
        for batch in 0..<12 {
            _ = try await reconcile(
                (0..<50).map { ["b\(batch)_\($0)_" + String(repeating: "y", count: 20), "1000", "500", "-1"] })
        }
        let after = try await limiter.decide(path, cost: ["tokens": 1], reportLimits: true)
        #expect(after.allowed && after.limits.first?.remaining == 89)
        _ = try await Reconciler(limiter: limiter).status(path)

        // A reset that is not a finite number: refused before the pause and the cut are written.
        let events = try await fixture.eventsCount("pause")
        let beforeInf = try await state()
        for reset in ["inf", "nan", "1e300", "0x10"] {
            await #expect(throws: RedisError.self, "\(reset)") {
                _ = try await reconcile([["tokens", "1000", "0", reset]], class: "quota")
            }
        }
        #expect(try await fixture.eventsCount("pause") == events)
        #expect(try await fixture.eventsCount("ceiling-cut") == 0)
        #expect(try await state() == beforeInf)
        #expect(try await limiter.decide(path, cost: ["tokens": 1]).allowed, "no pause in force")
    }

    /// Rewrites one record of a scope's state as a later clock would have written it: `field` 1-4 (a,
    /// b, c, x) moved `by`; with `log`, every time of an exact window's log moved that many ms.
    static func shift(
        _ client: RedisClient, _ key: String, tag: String, field: Int, by delta: Double, log: Double = 0
    ) async throws {
        let script = RedisScript(
            name: "test-shift",
            source: """
                local s = redis.call('GET', KEYS[1])
                local out, pos, found = { string.sub(s, 1, 8) }, 9, 0
                while pos < #s do
                    local tag, a, b, c, x, blob, nxt = struct.unpack('<Bc0ddddHc0', s, pos)
                    if tag == ARGV[1] then
                        local v = { a, b, c, x }
                        local k = tonumber(ARGV[2])
                        v[k] = v[k] + tonumber(ARGV[3])
                        a, b, c, x = v[1], v[2], v[3], v[4]
                        local shift = tonumber(ARGV[4])
                        if shift ~= 0 then
                            local parts = {}
                            for at = 1, #blob, 16 do
                                local t, running = struct.unpack('<dd', blob, at)
                                parts[#parts + 1] = struct.pack('<dd', t + shift, running)
                            end
                            blob = table.concat(parts)
                        end
                        found = found + 1
                    end
                    out[#out + 1] = struct.pack('<Bc0ddddHc0', #tag, tag, a, b, c, x, #blob, blob)
                    pos = nxt
                end
                redis.call('SET', KEYS[1], table.concat(out), 'KEEPTTL')
                return found
                """)
        let found = try await client.evalScript(
            script, keys: [RedisArgument(key)],
            arguments: [
                RedisArgument(tag), RedisArgument(field), RedisArgument(String(delta)), RedisArgument(String(log)),
            ])
        #expect(found.integer == 1, "no record \(tag)")
    }
}
