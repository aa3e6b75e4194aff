import Foundation
import Sluice
import SluiceRedis
import SluiceStorm
import Testing

/// The reconciler against a real Redis: the merge of provider responses into the partition's ceiling, reported by
/// several processes at once (`sluice observe --apply`), and what decisions make of it.
@Suite("Reconciler: one pause, one cut, never over-credited", .serialized, .onEveryServer)
struct ReconcilerTests {
    static let throttled = """
        HTTP/1.1 429 Too Many Requests
        x-ratelimit-limit-tokens: 60000
        x-ratelimit-remaining-tokens: 0
        x-ratelimit-reset-tokens: 1s
        retry-after-ms: 6000

        """

    static func headerFile(_ text: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-headers-\(UUID()).txt").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static func observation(limit: Int? = 60_000, remaining: Int?, status: Int = 200, retryAfterMs: Int64? = nil)
        -> ProviderObservation
    {
        ProviderObservation(
            status: status, responseClass: ResponseClass(status: status),
            retryAfter: retryAfterMs.map { .milliseconds($0) },
            resources: [.tokens: ResourceObservation(limit: limit, remaining: remaining, resetAfter: .seconds(1))])
    }

    @Test("Six processes report the same 429 at once: one pause, one cut; decisions wait it out or are refused")
    func sameThrottleFromManyProcesses() async throws {
        let fixture = try QuotaFixture()
        defer { Task { await fixture.cleanUp() } }
        let limiter = try fixture.limiter(["global": "tokens: bucket rate=60000/min burst=60000"])
        let reconciler = try Reconciler(limiter: limiter)
        let path = try fixture.path()
        let sent = try await limiter.decide(path, cost: ["tokens": 100]).sendsAt
        #expect(sent > 1_700_000_000_000, "decisions carry Redis' time")

        let file = try Self.headerFile(Self.throttled)
        defer { try? FileManager.default.removeItem(atPath: file) }
        // The pause (6 s) outlasts six processes starting on a loaded machine, so it is still in force below.
        let reporters = try (0..<6).map { _ in
            try SluiceBinary.start([
                "observe", "--headers", file, "--apply", "global=\(fixture.root)", "--sent-at", String(sent), "--json",
            ])
        }
        for reporter in reporters {
            let (status, output) = reporter.wait()
            #expect(status == 0, "\(output)")
            #expect(output.contains("\"class\":\"quota\""), "\(output)")
        }

        let events = try await EventLog(redis: fixture.client).recent(partition: fixture.root, count: 100)
        #expect(events.filter { $0.type == "pause" }.count == 1, "\(events.map(\.type))")
        #expect(events.filter { $0.type == "ceiling-cut" }.count == 1, "\(events.map(\.type))")
        let status = try await reconciler.status(path)
        #expect(status.cuts == 1)
        let pausedUntil = try #require(status.pausedUntil)
        #expect(pausedUntil > status.now && pausedUntil <= status.now + 6_000)
        let tokens = try #require(status.resources.first { $0.name == "tokens" })
        #expect(tokens.statedLimit == 60_000)
        #expect(abs(tokens.share - 0.7) < 0.01, "one cut of 30%: \(tokens.share)")

        // The whole partition is paused: a decision now is refused by the pause, a scheduled one waits it out.
        let refused = try await limiter.decide(path, cost: ["tokens": 1])
        #expect(!refused.allowed && refused.deniedBy?.kind == .pause && refused.retryable)
        #expect(refused.retryAfter > .zero && refused.retryAfter <= .milliseconds(6_000))
        let scheduled = try await limiter.schedule(path, cost: ["tokens": 1], maxWait: .seconds(10))
        #expect(scheduled.allowed && scheduled.decision.wait > .zero)
        try await scheduled.cancel()

        // A late 429 to a request sent before the cut extends nothing and cuts nothing.
        let late = try await reconciler.record(
            Self.observation(remaining: 0, status: 429, retryAfterMs: 100), path: path, sentAt: sent)
        #expect(!late.cut && !late.startedPause && late.pausedUntil == pausedUntil)

        // After the pause: admitted again; a 429 to a request sent now is a new congestion event.
        try await Task.sleep(for: .milliseconds(pausedUntil - status.now + 50))
        let after = try await limiter.decide(path, cost: ["tokens": 1])
        #expect(after.allowed)
        let again = try await reconciler.record(
            Self.observation(remaining: 0, status: 429, retryAfterMs: 200), path: path, sentAt: after.sendsAt)
        #expect(again.cut && again.startedPause)
        #expect(try await reconciler.status(path).cuts == 2)
        let text = try SluiceBinary.run(["status", "global=\(fixture.root)"])
        #expect(text.status == 0 && text.output.contains("tokens") && text.output.contains("2 cuts"), "\(text.output)")
    }

    @Test("Observations delivered late, twice and out of order by several processes never raise the bucket")
    func outOfOrderNeverRaises() async throws {
        let fixture = try QuotaFixture()
        defer { Task { await fixture.cleanUp() } }
        // 6000 tokens a minute: 0.1 token per ms of refill.
        let limiter = try fixture.limiter(["global": "tokens: bucket rate=6000/min burst=10000"])
        let reconciler = try Reconciler(limiter: limiter)
        let path = try fixture.path()
        var sends: [Int64] = []
        for _ in 0..<3 {
            sends.append(try await limiter.decide(path, cost: ["tokens": 1]).sendsAt)
            try await Task.sleep(for: .milliseconds(60))
        }
        // The newest response says 2000 remain.
        try await reconciler.record(Self.observation(limit: 10_000, remaining: 2_000), path: path, sentAt: sends[2])
        func level() async throws -> (remaining: Int64, at: Int64) {
            let decision = try await limiter.decide(path, cost: ["tokens": 1], reportLimits: true)
            let bucket = try #require(decision.limits.first { $0.kind == .bucket })
            return (bucket.remaining, decision.decidedAt)
        }
        let first = try await level()
        // The report, refilled since its send at the provider's stated rate x 0.9 (0.15 per ms).
        #expect(first.remaining <= 2_000 + (first.at - sends[2]) * 3 / 20 + 1, "lowered to the report: \(first)")

        // Older responses that saw more capacity, a duplicate, from three processes at once.
        var files: [String] = []
        defer { for file in files { try? FileManager.default.removeItem(atPath: file) } }
        var reporters: [SluiceBinary.Running] = []
        for (remaining, sentAt) in [(9_000, sends[0]), (5_000, sends[1]), (2_000, sends[2])] {
            let file = try Self.headerFile(
                "x-ratelimit-limit-tokens: 10000\nx-ratelimit-remaining-tokens: \(remaining)\n")
            files.append(file)
            reporters.append(
                try SluiceBinary.start([
                    "observe", "--headers", file, "--apply", "global=\(fixture.root)", "--sent-at", String(sentAt),
                ]))
        }
        for reporter in reporters { #expect(reporter.wait().status == 0) }
        try await reconciler.record(Self.observation(limit: 10_000, remaining: 9_500), path: path, sentAt: sends[0])

        let second = try await level()
        // Only refill since the first reading (0.1/ms), less the one token that reading charged.
        let refill = (second.at - first.at) / 10 + 1
        #expect(second.remaining <= first.remaining - 1 + refill, "raised: \(first) -> \(second)")
        let tokens = try #require(try await reconciler.status(path).resources.first { $0.name == "tokens" })
        #expect(tokens.lastRemaining?.amount == 2_000 && tokens.lastRemaining?.sentAt == sends[2])
    }

    @Test("After a cut the ceiling climbs back gradually, to the stated limit times the safety factor")
    func climbsBackGradually() async throws {
        let fixture = try QuotaFixture()
        defer { Task { await fixture.cleanUp() } }
        let limiter = try fixture.limiter(["global": "tokens: bucket rate=1000/s burst=1000"])
        let recovery: Int64 = 2_000
        let reconciler = try Reconciler(
            limiter: limiter,
            configuration: .init(
                window: .seconds(1), safetyFactor: 0.9, cutFactor: 0.5, recovery: .milliseconds(recovery)))
        let path = try fixture.path()
        try await reconciler.record(Self.observation(limit: 1_000, remaining: 1_000), path: path, sentAt: nil)
        let cut = try await reconciler.record(
            Self.observation(limit: 1_000, remaining: 0, status: 429, retryAfterMs: 1), path: path, sentAt: nil)
        #expect(cut.cut)

        // The share climbs linearly from 0.5 at the cut to 1 after the recovery time, and the root bucket's size is
        // 900 (the stated 1000 x the safety factor) times it. Each sample is held to the climb at its own moment in
        // Redis' clock (the cut's, the decision's, the status'), not at the moment the test meant to sample: a
        // loaded machine that samples late sees a higher ceiling, and the expectation moves with it.
        func share(at time: Int64) -> Double {
            min(1, 0.5 + 0.5 * Double(max(0, time - cut.mergedAt)) / Double(recovery))
        }
        var samples: [(burst: Int64, burstAt: Int64, share: Double, shareAt: Int64)] = []
        // Sampled every 100 ms until the recovery time has passed (capped, should Redis' clock stall).
        while samples.count < 300, (samples.last?.burstAt ?? 0) < cut.mergedAt + recovery + 200 {
            let decision = try await limiter.decide(path, cost: ["tokens": 1], reportLimits: true)
            let burst = try #require(decision.limits.first { $0.kind == .bucket }).limit
            let status = try await reconciler.status(path)
            let share = try #require(status.resources.first).share
            samples.append((burst, decision.decidedAt, share, status.now))
            try await Task.sleep(for: .milliseconds(100))
        }
        for sample in samples {
            let expected = 900 * share(at: sample.burstAt)
            #expect(
                abs(Double(sample.burst) - expected) <= 2,
                "bucket of \(sample.burst) \(sample.burstAt - cut.mergedAt) ms after the cut, expected \(expected)")
            #expect(
                abs(sample.share - share(at: sample.shareAt)) < 0.002,
                "share \(sample.share) \(sample.shareAt - cut.mergedAt) ms after the cut")
        }
        // Gradual: seen on the way up, not only cut and recovered (a 1.6 s stretch sampled every 100 ms; two
        // samples in it survive a loaded machine's longest pauses).
        let climbing = samples.filter { $0.share > 0.55 && $0.share < 0.95 }
        #expect(climbing.count >= 2, "\(samples.map(\.share))")
        #expect(zip(samples, samples.dropFirst()).allSatisfy { $0.burst <= $1.burst }, "\(samples.map(\.burst))")
        #expect(samples.last?.burst == 900 && samples.last?.share == 1, "recovered: \(samples.map(\.burst))")
    }

    @Test("A changed stated limit takes two agreeing observations; overloads leave the ceiling alone")
    func statedLimitChanges() async throws {
        let fixture = try QuotaFixture()
        defer { Task { await fixture.cleanUp() } }
        let limiter = try fixture.limiter(["global": "tokens: bucket rate=100000/s burst=100000"])
        let reconciler = try Reconciler(limiter: limiter, configuration: .init(window: .seconds(1)))
        let path = try fixture.path()
        func tokens() async throws -> ReconcilerStatus.Resource {
            try #require(try await reconciler.status(path).resources.first { $0.name == "tokens" })
        }
        try await reconciler.record(Self.observation(limit: 60_000, remaining: nil), path: path)
        #expect(try await tokens().statedLimit == 60_000, "the first stated limit is taken at once")
        try await reconciler.record(Self.observation(limit: 30_000, remaining: nil), path: path)
        let pending = try await tokens()
        #expect(pending.statedLimit == 60_000 && pending.pendingLimit == 30_000)
        try await reconciler.record(Self.observation(limit: 30_000, remaining: nil), path: path)
        let lowered = try await tokens()
        #expect(lowered.statedLimit == 30_000 && lowered.pendingLimit == nil)
        #expect(abs((lowered.ceiling ?? 0) - 27_000) < 1, "a lower limit applies at once: \(lowered)")
        let stated = try await EventLog(redis: fixture.client).recent(partition: fixture.root)
            .filter { $0.type == "stated-limit" }
        #expect(stated.count == 1)

        // A raised limit is climbed to, not jumped to.
        for _ in 0..<2 { try await reconciler.record(Self.observation(limit: 60_000, remaining: nil), path: path) }
        let raised = try await tokens()
        #expect(raised.statedLimit == 60_000 && raised.share == 1, "\(raised)")
        #expect((raised.ceiling ?? .infinity) < 0.6 * 54_000, "climbing from 27,000: \(raised)")

        // 503s and timeouts are not quota: no pause, and the ceiling stays where it was.
        let before = try await tokens()
        let overload = try await reconciler.record(
            ProviderObservation(status: 503, responseClass: .overload, retryAfter: .seconds(5)), path: path)
        _ = try await reconciler.record(.noResponse, path: path)
        #expect(overload.pausedUntil == nil)
        #expect(try await reconciler.status(path).cuts == 0)
        #expect(try await tokens().share >= before.share)
    }

    @Test("Overloads cut the concurrency slots of pools that follow the partition, once per overload event")
    func overloadsCutConcurrency() async throws {
        let fixture = try QuotaFixture()
        defer { Task { await fixture.cleanUp() } }
        let limiter = try fixture.limiter(["global": "tokens: bucket rate=1000/s burst=1000"])
        // The share climbs back from 0.7 over 4 s: an eighth slot opens 1.3 s after the cut, which leaves the
        // counting below room on a loaded machine.
        let reconciler = try Reconciler(
            limiter: limiter, configuration: .init(window: .seconds(1), cutFactor: 0.7, recovery: .seconds(4)))
        let path = try fixture.path()
        let pool = LeasePool(redis: fixture.client, partition: fixture.root, scope: "provider", slots: 10)
            .following(reconciler, path: path)
        let sent = try await limiter.decide(path, cost: ["tokens": 1]).sendsAt
        let first = try await reconciler.record(
            ProviderObservation(status: 529, responseClass: .overload), path: path, sentAt: sent)
        let second = try await reconciler.record(.noResponse, path: path, sentAt: sent)
        #expect(first.cut && !second.cut, "one cut for one overload event")
        let status = try await reconciler.status(path)
        #expect(first.pausedUntil == nil && status.cuts == 0, "the quota is untouched")

        var leases: [Lease] = []
        while case .acquired(let lease) = try await pool.tryAcquire() { leases.append(lease) }
        #expect(leases.count == 7, "10 slots cut by 30%")
        let unfollowed = LeasePool(redis: fixture.client, partition: fixture.root, scope: "provider", slots: 10)
        if case .acquired(let lease) = try await unfollowed.tryAcquire() { leases.append(lease) }
        #expect(leases.count == 8, "a pool that does not follow keeps its slots")
        for lease in leases { try await pool.release(lease) }

        try await Task.sleep(for: .seconds(4))  // the recovery time
        leases = []
        while case .acquired(let lease) = try await pool.tryAcquire() { leases.append(lease) }
        #expect(leases.count == 10, "climbed back")
        for lease in leases { try await pool.release(lease) }
    }

    @Test("Backpressure.call hands every response to the reconciler; the next call waits out the 429's pause")
    func backpressureReportsResponses() async throws {
        let fixture = try QuotaFixture()
        defer { Task { await fixture.cleanUp() } }
        let limiter = try fixture.limiter(["global": "tokens: bucket rate=60000/min burst=60000"])
        let reconciler = try Reconciler(limiter: limiter)
        let backpressure = Backpressure(
            redis: fixture.client, configuration: .init(partition: fixture.root, heartbeat: nil), limiter: limiter,
            reconciler: reconciler)
        defer { Task { await backpressure.shutdown() } }
        let path = try fixture.path()
        let call = ProviderCall(
            scope: "provider", estimate: ["tokens": 100], quotaPath: path, concurrency: 4, timeout: .seconds(5),
            maxAttempts: 1)
        // A pause long enough to be still in force when the second call starts, however loaded the machine.
        let throttled = Self.observation(remaining: 0, status: 429, retryAfterMs: 2_000)
        let sentAt = SluiceMutex<Int64?>(nil)
        await #expect(throws: ProviderFailure.self) {
            _ = try await backpressure.call(call) { attempt -> CallOutcome<Void> in
                sentAt.withLock { $0 = attempt.sentAt }
                throw ProviderFailure(throttled, usage: ["tokens": 0])
            }
        }
        let sent = try #require(sentAt.withLock { $0 })
        let status = try await reconciler.status(path)
        #expect(status.cuts == 1 && status.pausedUntil != nil)
        // Redis' clock is milliseconds since 1970; a local monotonic clock would be off by decades, not a minute.
        #expect(status.now - sent >= 0 && status.now - sent < 60_000, "sentAt is in Redis' clock")
        let pausedUntil = try #require(status.pausedUntil)

        let result = try await backpressure.call(call) { attempt in
            sentAt.withLock { $0 = attempt.sentAt }
            return CallOutcome((), usage: ["tokens": 80], observation: Self.observation(remaining: 50_000))
        }
        #expect(result.attempts == 1)
        // In Redis' clock, whatever the time the test took to get here: not sent before the pause ended.
        let resent = try #require(sentAt.withLock { $0 })
        #expect(resent >= pausedUntil - 1, "sent \(pausedUntil - resent) ms before the pause ended (whole ms)")
        let tokens = try #require(try await reconciler.status(path).resources.first { $0.name == "tokens" })
        #expect(tokens.lastRemaining?.amount == 0, "the later, higher remaining did not raise the bucket")
    }

    @Test("A provider's limit above the configured bucket never lowers it, even when raised")
    func configuredBelowStated() async throws {
        let fixture = try QuotaFixture()
        defer { Task { await fixture.cleanUp() } }
        let limiter = try fixture.limiter(["global": "tokens: bucket rate=6000/min burst=60"])
        let reconciler = try Reconciler(limiter: limiter)
        let path = try fixture.path()
        func burst() async throws -> Int64 {
            let decision = try await limiter.decide(path, cost: ["tokens": 1], reportLimits: true)
            return try #require(decision.limits.first { $0.kind == .bucket }).limit
        }
        try await reconciler.record(Self.observation(limit: 100_000, remaining: nil), path: path)
        #expect(try await burst() == 60)
        for _ in 0..<2 { try await reconciler.record(Self.observation(limit: 1_000_000, remaining: nil), path: path) }
        #expect(try await burst() == 60, "the provider raised its limit: the configured bucket stays")
    }

    @Test("Without a stated limit, an older report never replaces a newer one")
    func olderReportWithoutStatedLimit() async throws {
        let fixture = try QuotaFixture()
        defer { Task { await fixture.cleanUp() } }
        let limiter = try fixture.limiter(["global": "tokens: bucket rate=6000/min burst=10000"])
        let reconciler = try Reconciler(limiter: limiter)
        let path = try fixture.path()
        let now = try await limiter.decide(path, cost: ["tokens": 1]).decidedAt
        try await reconciler.record(Self.observation(limit: nil, remaining: 20), path: path, sentAt: now)
        func level() async throws -> (remaining: Int64, at: Int64) {
            let decision = try await limiter.decide(path, cost: ["tokens": 1], reportLimits: true)
            return (try #require(decision.limits.first { $0.kind == .bucket }).remaining, decision.decidedAt)
        }
        let before = try await level()
        // Lower, but sent 10 s earlier: projected from then at 100 tokens/s it would allow about 1,000.
        try await reconciler.record(Self.observation(limit: nil, remaining: 10), path: path, sentAt: now - 10_000)
        let after = try await level()
        // What the bucket refilled (0.1 token per ms of Redis' clock) between the readings, however slow the
        // machine, plus rounding.
        let refill = (after.at - before.at) / 10 + 2
        #expect(after.remaining <= before.remaining + refill, "\(before) -> \(after)")
    }

    @Test("A request admitted before a cut but sent after it neither cuts nor pauses again")
    func admittedBeforeTheCut() async throws {
        let fixture = try QuotaFixture()
        defer { Task { await fixture.cleanUp() } }
        let limiter = try fixture.limiter(["global": "tokens: bucket rate=60/s burst=2"])
        let reconciler = try Reconciler(limiter: limiter)
        let path = try fixture.path()
        _ = try await limiter.decide(path, cost: ["tokens": 2])
        let scheduled = try await limiter.schedule(path, cost: ["tokens": 1], maxWait: .seconds(2))
        #expect(scheduled.allowed && scheduled.decision.wait > .zero)
        let first = try await reconciler.record(
            Self.observation(remaining: 0, status: 429, retryAfterMs: 100), path: path)
        #expect(first.cut && first.startedPause)
        try await Task.sleep(for: .milliseconds(150))  // the pause is over when the scheduled request's 429 comes
        let late = try await reconciler.record(
            Self.observation(remaining: 0, status: 429, retryAfterMs: 100), path: path,
            sentAt: scheduled.decision.sendsAt, admittedAt: scheduled.decision.decidedAt)
        #expect(!late.cut && !late.startedPause && late.pausedUntil == nil)
        #expect(try await reconciler.status(path).cuts == 1)
    }

    @Test("The ceiling binds an HTB root bucket too; a cost above the stated limit is final, one above a cut is not")
    func ceilingEdges() async throws {
        let fixture = try QuotaFixture()
        defer { Task { await fixture.cleanUp() } }
        let limiter = try fixture.limiter(["global": "tokens: bucket rate=600/min burst=1000 ceiling=1200/min"])
        let reconciler = try Reconciler(limiter: limiter, configuration: .init(window: .seconds(60)))
        let path = try fixture.path()
        try await reconciler.record(Self.observation(limit: 100, remaining: 0), path: path)
        let capped = try await limiter.decide(path, cost: ["tokens": 3])
        #expect(!capped.allowed && capped.retryable, "nothing remains at the provider")
        let tooBig = try await limiter.decide(path, cost: ["tokens": 95])
        #expect(!tooBig.allowed && !tooBig.retryable, "more than 100 x 0.9 per window can never pass")
        let cut = try await reconciler.record(
            Self.observation(limit: 100, remaining: 0, status: 429, retryAfterMs: 0), path: path)
        #expect(cut.cut)
        let overCut = try await limiter.decide(path, cost: ["tokens": 80])
        #expect(!overCut.allowed && overCut.retryable, "above the cut burst (63) but within the stated limit")
    }

    @Test("Bad settings are typed errors before any I/O; the reconciler's state key always expires")
    func settingsAndExpiry() async throws {
        let fixture = try QuotaFixture()
        defer { Task { await fixture.cleanUp() } }
        let limiter = try fixture.limiter()
        for bad in [
            Reconciler.Configuration(safetyFactor: 0), .init(safetyFactor: 1.5), .init(cutFactor: 1),
            .init(window: .zero), .init(recovery: .seconds(-1)), .init(resourceNames: [.tokens: "no spaces"]),
        ] {
            #expect(throws: QuotaError.self) { try Reconciler(limiter: limiter, configuration: bad) }
        }
        let reconciler = try Reconciler(limiter: limiter)
        let path = try fixture.path()
        try await reconciler.record(Self.observation(remaining: 10, status: 429), path: path)
        for key in try await fixture.keys() where !key.hasSuffix(":quotas") {
            let ttl = try await fixture.client.send("PTTL", RedisArgument(key)).integer ?? -1
            #expect(ttl > 0, "\(key) has no expiry")
        }
    }

    @Test("A response that changes nothing writes nothing, until the record's expiry needs refreshing")
    func unchangedResponseWritesNothing() async throws {
        let fixture = try QuotaFixture()
        defer { Task { await fixture.cleanUp() } }
        let limiter = try fixture.limiter(["global": "tokens: bucket rate=60000/min burst=60000"])
        let path = try fixture.path()
        let key = RedisArgument("sluice:{\(fixture.root)}:s:global=\(fixture.root)")
        func state() async throws -> String { try await fixture.client.send("GET", key).string ?? "" }
        // A day's ttl: the record's expiry is refreshed once it falls more than a minute behind.
        let daily = try Reconciler(limiter: limiter)
        try await daily.record(Self.observation(remaining: 60_000), path: path)
        let written = try await state()
        #expect(!written.isEmpty)

        // The same full window again: the record (and its expiry, a day after the last response) is left as it is.
        try await daily.record(Self.observation(remaining: 60_000), path: path)
        #expect(try await state() == written, "a full window reported again changes nothing")

        // A lower remaining is merged.
        try await daily.record(Self.observation(remaining: 1_000), path: path)
        let lowered = try await state()
        #expect(lowered != written)
        let status = try await daily.status(path)
        let tokens = try #require(status.resources.first { $0.name == "tokens" })
        #expect(tokens.lastRemaining?.amount == 1_000, "the lower report caps the bucket: \(tokens)")

        // Without a stated limit (another partition), the same report delivered twice changes nothing the second time.
        let unstated = try ScopePath("global=\(fixture.root)-unstated")
        let unstatedKey = RedisArgument("sluice:{\(fixture.root)-unstated}:s:global=\(fixture.root)-unstated")
        defer { Task { _ = try? await fixture.client.send("DEL", unstatedKey) } }
        let sent = try await limiter.decide(unstated, cost: ["tokens": 0]).sendsAt
        try await daily.record(Self.observation(limit: nil, remaining: 500), path: unstated, sentAt: sent)
        let once = try await fixture.client.send("GET", unstatedKey).string ?? ""
        #expect(!once.isEmpty)
        try await daily.record(Self.observation(limit: nil, remaining: 500), path: unstated, sentAt: sent)
        #expect(try await fixture.client.send("GET", unstatedKey).string == once, "a duplicate report changes nothing")

        // A ten-second ttl: the record's expiry may fall at most a tenth of it (1 s) behind. A full window reported
        // again at once writes nothing; 1.2 s later it rewrites the record, whose expiry moves on with the key's.
        let other = try ScopePath("global=\(fixture.root)-ttl")
        let otherKey = RedisArgument("sluice:{\(fixture.root)-ttl}:s:global=\(fixture.root)-ttl")
        defer { Task { _ = try? await fixture.client.send("DEL", otherKey) } }
        let brief = try Reconciler(limiter: limiter, configuration: .init(stateTTL: .seconds(10)))
        try await brief.record(Self.observation(remaining: 60_000), path: other)
        let first = try await fixture.client.send("GET", otherKey).string ?? ""
        try await brief.record(Self.observation(remaining: 60_000), path: other)
        #expect(try await fixture.client.send("GET", otherKey).string == first, "within the slack: nothing written")
        try await Task.sleep(for: .milliseconds(1_200))
        try await brief.record(Self.observation(remaining: 60_000), path: other)
        #expect(try await fixture.client.send("GET", otherKey).string != first, "the record's expiry was refreshed")
        let ttl = try await fixture.client.send("PTTL", otherKey).integer ?? -1
        #expect(ttl > 9_000, "the key lives on with the record: \(ttl) ms")
    }
}

/// The reconciler in a fleet: real worker processes (`sluice storm-worker`) call the mock provider over HTTP through
/// `Backpressure.call` and report every response to the reconciler.
@Suite("Reconciler: a fleet follows a provider whose capacity halves", .serialized)
struct ReconcilerFollowTests {
    @Test(
        "Capacity halves: followed within two reset periods, no 429s after; when it returns, the ceiling climbs back gradually",
        .timeLimit(.minutes(2)))
    func followsHalvingAndClimbsBack() async throws {
        let scenario = try BuiltinScenarios.load("tier-change")
        let options = StormOptions(
            redisURL: TestRedis.url, workers: 4, scenarios: [scenario], modes: [.sluice],
            workerExecutable: SluiceBinary.path)
        let report = try await StormRunner(options: options).run()
        let run = try #require(report.runs.first { $0.mode == .sluice && !$0.isBaseline })
        let metrics = try #require(report.metrics.first { $0.mode == StormMode.sluice.name })
        #expect(metrics.workerFailures.isEmpty, "\(metrics.workerFailures)")

        let window = scenario.provider.window
        let change = try #require(scenario.provider.capacityChanges.first { $0.after < $0.before })
        let restore = try #require(scenario.provider.capacityChanges.first { $0.after > $0.before })
        let bin = ProviderRecorder.binSeconds
        func bins(_ from: Double, _ until: Double) -> Range<Int> {
            Int((from / bin).rounded(.up))..<min(run.provider.count, Int(until / bin))
        }
        // Followed: no 429 from two reset periods after the halving until capacity returns.
        let settled = bins(change.time + 2 * window, restore.time)
        #expect(settled.reduce(0) { $0 + run.provider[$1].limited } == 0, "429s after two reset periods")
        #expect(try #require(metrics.followSeconds) <= 2 * window)
        // The ceiling came down to the halved capacity within two reset periods ...
        let halved = scenario.provider.tokensPerSecond * change.after
        let during = bins(change.time, change.time + 2 * window).compactMap { run.ceiling[$0] }
        #expect(during.contains { $0 <= halved }, "ceiling \(during) vs capacity \(halved)")
        // ... and, once capacity returned, rose through several steps rather than in one jump.
        let full = try #require(bins(0, change.time).compactMap { run.ceiling[$0] }.max())
        let after = bins(restore.time, scenario.duration).compactMap { run.ceiling[$0] }
        let between = Set(after.filter { $0 > halved * 1.05 && $0 < full * 0.95 }.map { Int($0) })
        #expect(between.count >= 2, "gradual: \(after)")  // a climb of a third of a reset period, sampled every 0.1 s
        #expect(after.last.map { $0 >= full * 0.99 } ?? false, "back to the full ceiling: \(after)")
    }
}
