import Foundation
import SluiceRedis
import Testing

@testable import Sluice

@Suite("Quota decisions against a real Redis", .serialized, .onEveryServer)
struct QuotaDecisionTests {
    @Test("A bucket of burst 1000 admits exactly 1000 of 1500 concurrent decisions")
    func burstIsExact() async throws {
        let fixture = try QuotaFixture()
        defer { Task { await fixture.cleanUp() } }
        let limiter = try fixture.limiter(["global": "requests: bucket rate=1/d burst=1000"])
        let path = try fixture.path("tenant=a")
        let allowed = await withTaskGroup(of: Int.self) { group in
            for _ in 0..<50 {
                group.addTask {
                    var count = 0
                    for _ in 0..<30 where (try? await limiter.decide(path, cost: ["requests": 1]).allowed) == true {
                        count += 1
                    }
                    return count
                }
            }
            return await group.reduce(0, +)
        }
        #expect(allowed == 1000)
    }

    @Test("All or nothing: a tenant's denial leaves the global bucket alone, and the other way round")
    func allOrNothing() async throws {
        let fixture = try QuotaFixture()
        defer { Task { await fixture.cleanUp() } }
        let limiter = try fixture.limiter([
            "global": "tokens: bucket rate=1/d burst=100", "tenant": "tokens: bucket rate=1/d burst=10",
        ])
        let acme = try fixture.path("tenant=acme")
        #expect(try await limiter.decide(acme, cost: ["tokens": 10]).allowed)
        for _ in 0..<5 {
            let denied = try await limiter.decide(acme, cost: ["tokens": 5])
            #expect(!denied.allowed && denied.deniedBy?.scopeIndex == 1 && denied.deniedBy?.kind == .bucket)
            #expect(denied.limits.first { $0.scopeIndex == 0 }?.remaining == 90)
        }
        // The global bucket denies: the tenant's stays as it was.
        let bob = try fixture.path("tenant=bob")
        let big = try await limiter.decide(bob, cost: ["tokens": 95])
        #expect(!big.allowed && big.deniedBy?.scopeIndex == 0)
        #expect(big.limits.first { $0.scopeIndex == 1 }?.remaining == 10)
        #expect(
            try await limiter.decide(bob, cost: ["tokens": 10], reportLimits: true).limits.first { $0.scopeIndex == 0 }?
                .remaining == 80)
    }

    @Test("A settle refund is usable at once by another client; settle is idempotent; cancel refunds")
    func reserveAndSettle() async throws {
        let fixture = try QuotaFixture()
        defer { Task { await fixture.cleanUp() } }
        let defaults = ["global": "tokens: bucket rate=1/d burst=100"]
        let worker = try fixture.limiter(defaults)
        let otherClient = try TestRedis.client()
        defer { otherClient.close() }
        let other = try Limiter(client: otherClient, configuration: .init(defaults: defaults))
        let path = try fixture.path()

        let reservation = try await worker.reserve(path, estimate: ["tokens": 100], ttl: .seconds(30))
        #expect(reservation.decision.allowed)
        #expect(try await !other.decide(path, cost: ["tokens": 1]).allowed)
        #expect(try await reservation.settle(actual: ["tokens": 20]) == .settled)
        #expect(try await other.decide(path, cost: ["tokens": 80]).allowed)
        #expect(try await reservation.settle(actual: ["tokens": 0]) == .alreadySettled)
        #expect(try await reservation.cancel() == .alreadySettled)
        #expect(try await !other.decide(path, cost: ["tokens": 1]).allowed)

        // Reserving again under the same id charges nothing more.
        _ = try await worker.decide(path, cost: ["tokens": 0])
        let second = try await worker.reserve(path, estimate: ["tokens": 0], id: "same")
        let again = try await worker.reserve(path, estimate: ["tokens": 0], id: "same")
        #expect(second.decision.allowed && again.decision.allowed)
        #expect(try await second.cancel() == .cancelled)
        await #expect(throws: QuotaError.self) { try await worker.reserve(path, estimate: ["tokens": 1], id: "same") }
    }

    @Test("Cancel refunds everything; an overrun is charged into debt; unknown ids are reported")
    func cancelAndOverrun() async throws {
        let fixture = try QuotaFixture()
        defer { Task { await fixture.cleanUp() } }
        let limiter = try fixture.limiter(["global": "tokens: bucket rate=1/d burst=100; requests: window 50/min"])
        let path = try fixture.path()
        let reservation = try await limiter.reserve(path, estimate: ["tokens": 60, "requests": 1])
        #expect(try await reservation.cancel() == .cancelled)
        let after = try await limiter.decide(path, cost: ["tokens": 100, "requests": 1], reportLimits: true)
        #expect(after.allowed)
        #expect(after.limits.first { $0.resource == "requests" }?.remaining == 49)

        let overrun = try await limiter.reserve(try fixture.path("tenant=x"), estimate: ["tokens": 0, "requests": 1])
        _ = overrun
        let small = try await limiter.reserve(path, estimate: ["requests": 1])
        #expect(try await small.settle(actual: ["requests": 3]) == .settled)
        let window = try await limiter.decide(path, cost: ["requests": 1], reportLimits: true)
        let left = window.limits.first { $0.resource == "requests" }?.remaining
        #expect(left == Int64(50 - 1 - 1 - 3 - 1))

        let ghost = Reservation.ghost(limiter: limiter, path: path)
        #expect(try await ghost.settle(actual: ["tokens": 1]) == .unknown)
    }

    @Test("Shadow limits never deny, and count what they would have denied")
    func shadow() async throws {
        let fixture = try QuotaFixture()
        defer { Task { await fixture.cleanUp() } }
        try await fixture.configure("", "requests: bucket rate=1/d burst=5 shadow")
        let limiter = try fixture.limiter()
        let path = try fixture.path("tenant=a")
        var wouldDeny = 0
        for _ in 0..<20 {
            let decision = try await limiter.decide(path, cost: ["requests": 1])
            #expect(decision.allowed)
            wouldDeny += decision.wouldDeny.count
        }
        #expect(wouldDeny == 15)
        let counts = try await QuotaStore(client: fixture.client).shadowCounts(partition: fixture.root)
        #expect(counts["global=\(fixture.root)|requests|bucket"] == 15)
    }

    @Test("Operators' config applies to the next decision; the most specific field wins; invalid fields warn")
    func configOverrides() async throws {
        let fixture = try QuotaFixture()
        defer { Task { await fixture.cleanUp() } }
        let limiter = try fixture.limiter(["tenant": "requests: window 1000/min"])
        let acme = try fixture.path("tenant=acme")
        #expect(try await limiter.decide(acme, cost: ["requests": 1], reportLimits: true).limits.first?.limit == 1000)
        try await fixture.configure("tenant=*", "requests: window 3/min")
        #expect(try await limiter.decide(acme, cost: ["requests": 1], reportLimits: true).limits.first?.limit == 3)
        try await fixture.configure("tenant=acme", "requests: window 7/min")
        #expect(try await limiter.decide(acme, cost: ["requests": 1], reportLimits: true).limits.first?.limit == 7)
        try await fixture.configure("tenant=acme", "requests: window 7/mins")
        let decision = try await limiter.decide(acme, cost: ["requests": 1], reportLimits: true)
        #expect(decision.limits.first?.limit == 3)
        #expect(decision.warnings.count == 1 && decision.warnings[0].code == .invalidConfig)
        #expect(decision.warnings[0].field == "global=\(fixture.root) tenant=acme")
        try await fixture.configure("tenant=*", "requests: none")
        let none = try await limiter.decide(acme, cost: ["requests": 1], reportLimits: true)
        #expect(none.allowed && none.limits.isEmpty)
    }

    @Test("Scheduled admission: waits within max wait, refused beyond it, refunded when cancelled")
    func scheduled() async throws {
        let fixture = try QuotaFixture()
        defer { Task { await fixture.cleanUp() } }
        // 2 tokens a second: a refill slow enough that a loaded machine's pauses between the steps below do not
        // change which of them are admitted; the waits are checked against the time that really passed, in
        // Redis' clock (decidedAt), not against the time the steps were meant to take.
        let limiter = try fixture.limiter(["global": "tokens: bucket rate=2/s burst=10 debt=20"])
        let path = try fixture.path()
        let emptied = try await limiter.decide(path, cost: ["tokens": 10])
        #expect(emptied.allowed)
        #expect(try await !limiter.decide(path, cost: ["tokens": 5]).allowed)
        /// The wait for `cost` tokens decided at `decision`, with `owed` tokens already promised ahead of it.
        func expectedWait(_ decision: Decision, cost: Int64, owed: Int64 = 0) -> Int64 {
            (cost + owed) * 500 - (decision.decidedAt - emptied.decidedAt)
        }
        func milliseconds(_ duration: Duration) -> Int64 { Int64((duration / .milliseconds(1)).rounded()) }
        let first = try await limiter.schedule(path, cost: ["tokens": 5], maxWait: .seconds(5))
        #expect(first.allowed)
        #expect(abs(milliseconds(first.wait) - expectedWait(first.decision, cost: 5)) <= 3, "\(first.wait)")
        let refused = try await limiter.schedule(path, cost: ["tokens": 10], maxWait: .milliseconds(100))
        #expect(!refused.allowed && refused.decision.retryable)
        let second = try await limiter.schedule(path, cost: ["tokens": 5], maxWait: .seconds(10))
        #expect(second.allowed && second.wait > first.wait)
        #expect(abs(milliseconds(second.wait) - expectedWait(second.decision, cost: 5, owed: 5)) <= 3, "\(second.wait)")
        #expect(try await second.cancel() == .cancelled)
        let third = try await limiter.schedule(path, cost: ["tokens": 5], maxWait: .seconds(10))
        #expect(third.wait < second.wait + .milliseconds(100))
        #expect(
            abs(milliseconds(third.wait) - expectedWait(third.decision, cost: 5, owed: 5)) <= 3,
            "the cancelled reservation was refunded: \(third.wait)")
        try await first.proceed()
        #expect(ContinuousClock.now >= first.proceedAt, "proceed returns no earlier than the limiter said")
    }

    @Test("A scheduled admission cancelled while it waits to proceed gives its charge back")
    func cancelledProceedRefunds() async throws {
        let fixture = try QuotaFixture()
        defer { Task { await fixture.cleanUp() } }
        let limiter = try fixture.limiter(["global": "tokens: bucket rate=2/s burst=10 debt=20"])
        let path = try fixture.path()
        #expect(try await limiter.decide(path, cost: ["tokens": 10]).allowed)
        let first = try await limiter.schedule(path, cost: ["tokens": 5], maxWait: .seconds(10))
        #expect(first.allowed && first.wait > .seconds(1), "\(first.wait)")
        let waiting = Task { try await first.proceed() }
        try await Task.sleep(for: .milliseconds(100))
        waiting.cancel()
        await #expect(throws: CancellationError.self) { try await waiting.value }
        // Refunded: the next caller waits for the same 5 tokens, not behind the cancelled one's (2.5 s more).
        let next = try await limiter.schedule(path, cost: ["tokens": 5], maxWait: .seconds(10))
        #expect(next.allowed && next.wait < first.wait, "\(next.wait) after \(first.wait): the charge stayed")
        #expect(try await next.cancel() == .cancelled)
    }

    @Test("HTB: above its guarantee a tenant borrows only while the parent keeps its headroom; batch leaves it")
    func borrowing() async throws {
        let fixture = try QuotaFixture()
        defer { Task { await fixture.cleanUp() } }
        let limiter = try fixture.limiter([
            "global": "tokens: bucket rate=1/d burst=100 headroom=30",
            "tenant": "tokens: bucket rate=1/d burst=20 ceiling=1000/s",
        ])
        let heavy = try fixture.path("tenant=heavy")
        #expect(try await limiter.decide(heavy, cost: ["tokens": 20]).allowed)  // its guarantee
        var borrowed = 0
        for _ in 0..<10 {
            try await Task.sleep(for: .milliseconds(25))  // the ceiling (1000/s) refills what the last one took
            if try await limiter.decide(heavy, cost: ["tokens": 10]).allowed { borrowed += 1 }
        }
        #expect(borrowed == 5)  // 100 - 20 - 5 * 10 = 30: the headroom stays
        let light = try fixture.path("tenant=light")
        #expect(try await limiter.decide(light, cost: ["tokens": 20]).allowed)  // within its guarantee
        #expect(try await !limiter.decide(light, cost: ["tokens": 1]).allowed)
        let batch = try await limiter.decide(try fixture.path("tenant=batchy"), cost: ["tokens": 1], priority: .batch)
        #expect(!batch.allowed && batch.deniedBy?.scopeIndex == 0)
    }

    @Test("Exact windows, approximate windows and budgets")
    func windowsAndBudgets() async throws {
        let fixture = try QuotaFixture()
        defer { Task { await fixture.cleanUp() } }
        let limiter = try fixture.limiter([
            "global": "requests: window 3/min", "tenant": "requests: window 1000/min; tokens: budget 250 period=mo",
        ])
        let path = try fixture.path("tenant=a")
        for _ in 0..<3 { #expect(try await limiter.decide(path, cost: ["requests": 1]).allowed) }
        let denied = try await limiter.decide(path, cost: ["requests": 1])
        #expect(!denied.allowed && denied.retryAfter > .seconds(50) && denied.retryAfter <= .seconds(60))
        let budget = try fixture.path("tenant=b")
        #expect(try await limiter.decide(budget, cost: ["tokens": 200]).allowed)
        let spent = try await limiter.decide(budget, cost: ["tokens": 100])
        #expect(!spent.allowed && spent.deniedBy?.kind == .budget && spent.retryAfter <= .seconds(31 * 86_400))
        let never = try await limiter.decide(budget, cost: ["tokens": 251])
        #expect(!never.allowed)
    }

    @Test("Every key Sluice wrote has an expiry (the operators' config hash excepted)")
    func everyKeyExpires() async throws {
        let fixture = try QuotaFixture()
        defer { Task { await fixture.cleanUp() } }
        try await fixture.configure("tenant=*", "requests: window 5/min shadow; tokens: bucket rate=1/s burst=3 shadow")
        let limiter = try fixture.limiter([
            "global": "tokens: bucket rate=100/s; requests: window 1000/min",
            "tenant": "tokens: budget 100000; requests: window 10/s",
            "tree": "tokens: budget 500 period=d; requests: window 2000/h",
        ])
        for tree in 0..<5 {
            let path = try fixture.path("tenant=t\(tree % 2)", "tree=r\(tree)")
            for _ in 0..<4 { _ = try await limiter.decide(path, cost: ["requests": 1, "tokens": 2]) }
            let reservation = try await limiter.reserve(path, estimate: ["tokens": 5], ttl: .seconds(60))
            if tree % 2 == 0 { try await reservation.settle(actual: ["tokens": 9]) }
            _ = try await limiter.schedule(path, cost: ["tokens": 1], maxWait: .seconds(1))
        }
        let keys = try await fixture.keys()
        #expect(keys.count > 10)
        for key in keys where key != fixture.quotasKey {
            let ttl = try await fixture.client.send(RedisCommand("PTTL", RedisArgument(key))).integer ?? -3
            #expect(ttl > 0, "\(key) has no expiry")
        }
    }

    @Test("Names that look like separators, braces or wildcards get keys of their own")
    func hostileNames() async throws {
        let fixture = try QuotaFixture()
        defer { Task { await fixture.cleanUp() } }
        let limiter = try fixture.limiter(["tenant": "requests: bucket rate=1/d burst=1"])
        for name in ["*", "a}b", "{x}", "a/b", "a b", "a:b", "a=b", "%2A", String(repeating: "n", count: 500)] {
            #expect(
                try await limiter.decide(try fixture.path("tenant=\(name)"), cost: ["requests": 1]).allowed, "\(name)")
        }
        for key in try await fixture.keys() { #expect(key.hasPrefix("sluice:{\(fixture.root)}:")) }
    }

    @Test("A malformed call that sends a plan where the options go does not poison later decisions")
    func malformedCallLeavesMemoAlone() async throws {
        let fixture = try QuotaFixture()
        defer { Task { await fixture.cleanUp() } }
        // A plan no other call sent (the function keeps its memo across calls and tests).
        let limiter = try fixture.limiter(["global": "tokens: bucket rate=100/s burst=\(Int.random(in: 100...999_999))"]
        )
        let path = try fixture.path()
        let request = try DecideRequest(limiter: limiter, path: path, cost: ["tokens": 1], priority: .interactive)
        // Before any good call with this plan, one key too few: the last key becomes ARGV[1] and the plan
        // lands in ARGV[2], the options' place. The script may refuse the call, but must not remember
        // the plan's text as options.
        let keys = request.redisKeys
        _ = try? await limiter.client.run(
            LuaScripts.decide, keys: Array(keys.dropLast()), arguments: [keys[keys.count - 1]] + request.arguments)
        #expect(try await limiter.decide(path, cost: ["tokens": 1]).allowed)
    }
}

extension Reservation {
    /// A reservation that was never made.
    static func ghost(limiter: Limiter, path: ScopePath) -> Reservation {
        Reservation(
            id: "ghost-\(UUID().uuidString)", path: path, estimate: ["tokens": 1], decision: Decision(allowed: true),
            limiter: limiter, resources: [("tokens", 1)])
    }
}
