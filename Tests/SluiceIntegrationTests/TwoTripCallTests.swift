import Foundation
import SluiceRedis
import Testing

@testable import Sluice

/// `Backpressure.call` in two Redis round trips (call-admit, call-finish), measured on a server of the
/// test's own so that its statistics count this test's commands only; on the cluster run, on a cluster of the
/// test's own (three primaries), its primaries' statistics added up.
@Suite("Backpressure.call: one round trip to admit, one to finish", .serialized, .onEveryServer)
struct TwoTripCallTests {
    private struct Setup {
        let server: RedisServer?
        let cluster: RedisCluster?
        let client: RedisClient
        let limiter: Limiter
        let backpressure: Backpressure
        let path: ScopePath

        init(
            defaults: [String: String] = [
                "global": "tokens: bucket rate=1000000/s burst=1000000", "tenant": "requests: window 100000/min",
            ], queue: AdmissionQueue.Configuration = .init(), reconciler: Bool = false
        ) async throws {
            if TestRedis.onCluster {
                server = nil
                cluster = try await RedisCluster.start(primaries: 3, replicasPerPrimary: 0)
            } else {
                server = try RedisServer()
                cluster = nil
            }
            // Generous timeouts: these tests count round trips, and a loaded machine must not fail them.
            var configuration = try RedisConfiguration(url: server?.url ?? cluster!.url)
            configuration.commandTimeout = .seconds(10)
            client = try RedisClient(configuration: configuration)
            limiter = try Limiter(client: client, configuration: .init(defaults: defaults))
            path = try ScopePath("global=openai", "tenant=acme")
            backpressure = Backpressure(
                redis: client,
                configuration: .init(
                    partition: "openai", queue: queue, health: .init(stepTimeout: .seconds(10)), heartbeat: nil),
                limiter: limiter,
                reconciler: reconciler ? try Reconciler(limiter: limiter) : nil)
        }

        /// `INFO commandstats` of every primary, one after another.
        func commandStats() async throws -> String {
            try await client.sendToEveryPrimary(RedisCommand("INFO", "commandstats")).compactMap(\.string).joined(
                separator: "\n")
        }

        func resetStats() async throws {
            _ = try await client.sendToEveryPrimary(RedisCommand("CONFIG", "RESETSTAT"))
        }

        func scriptCalls() async throws -> (calls: Int, microseconds: Double) {
            let info = try await commandStats()
            var calls = 0
            var usec = 0.0
            for line in info.split(whereSeparator: \.isNewline)
            where line.hasPrefix("cmdstat_fcall:") || line.hasPrefix("cmdstat_evalsha:")
                || line.hasPrefix("cmdstat_eval:")
            {
                for pair in line.split(separator: ":")[1].split(separator: ",") {
                    let parts = pair.split(separator: "=")
                    if parts[0] == "calls" { calls += Int(parts[1]) ?? 0 }
                    if parts[0] == "usec" { usec += Double(parts[1]) ?? 0 }
                }
            }
            return (calls, usec)
        }

        /// Every top-level command the server ran since the last reset (the stats commands left out).
        func allCommands() async throws -> [String: Int] {
            let info = try await commandStats()
            var out: [String: Int] = [:]
            for line in info.split(whereSeparator: \.isNewline) where line.hasPrefix("cmdstat_") {
                let name = String(line.dropFirst(8).prefix { $0 != ":" })
                let calls = line.split(separator: ",")[0].split(separator: "=")[1]
                out[name, default: 0] += Int(calls) ?? 0
            }
            return out
        }

        func close() {
            client.close()
            server?.stop()
            cluster?.stop()
        }
    }

    @Test("The happy path is two script calls: call-admit and call-finish, with a lease and a reconciler report")
    func twoRoundTrips() async throws {
        let setup = try await Setup(reconciler: true)
        defer { setup.close() }
        let call = ProviderCall(
            scope: "openai/gpt-4o", estimate: ["tokens": 100, "requests": 1], quotaPath: setup.path, concurrency: 4,
            maxAttempts: 1)
        _ = try await setup.backpressure.call(call) { _ in CallOutcome(0, usage: ["tokens": 50, "requests": 1]) }
        try await setup.resetStats()
        let calls = 20
        for n in 0..<calls {
            let result = try await setup.backpressure.call(call) { _ in
                CallOutcome(
                    n, usage: ["tokens": 40, "requests": 1],
                    observation: ProviderObservation(
                        status: 200, headers: [(name: "x-ratelimit-remaining-tokens", value: "900000")]))
            }
            #expect(result.value == n)
        }
        let commands = try await setup.allCommands()
        #expect(commands["fcall"] == 2 * calls, "\(commands)")
        // Nothing else reached the server from the client: every other command ran inside the scripts.
        let (scripts, usec) = try await setup.scriptCalls()
        #expect(scripts == 2 * calls)
        #expect(usec > 0)

        // Nothing left behind: the lease is free, nobody waits or counts in flight, the reservation is closed.
        let queue = AdmissionQueue(redis: setup.client, partition: "openai", scope: "openai/gpt-4o")
        let status = try await queue.status()
        #expect(status.waiting == 0 && status.inFlight == 0, "\(status)")
        let pool = LeasePool(redis: setup.client, partition: "openai", scope: "openai/gpt-4o", slots: 4)
        #expect(try await pool.held() == 0)
        // The reconciler saw the reports: the bucket is capped by the remaining they reported.
        let reconcilerStatus = try await Reconciler(limiter: setup.limiter).status(setup.path)
        #expect(
            reconcilerStatus.resources.contains { $0.lastRemaining?.amount == 900_000 }, "\(reconcilerStatus)")
    }

    @Test("A process's first burst of calls reads a partition's shard layout once, and an unsplit one not again")
    func layoutReadOnce() async throws {
        let setup = try await Setup()
        defer { setup.close() }
        try await setup.resetStats()
        let directory = ShardDirectory()
        let client = setup.client
        try await withThrowingTaskGroup(of: ShardLayout?.self) { group in
            for _ in 0..<50 {
                group.addTask { try await directory.layout("openai", namespace: "sluice", client: client) }
            }
            for try await layout in group { #expect(layout == nil) }
        }
        #expect(try await directory.layout("openai", namespace: "sluice", client: client) == nil)
        #expect(try await setup.allCommands()["hmget"] == 1)
        // Reloaded (a decision found the partition split): read again, once, and kept.
        #expect(try await directory.reload("openai", namespace: "sluice", client: client) == nil)
        #expect(try await directory.layout("openai", namespace: "sluice", client: client) == nil)
        #expect(try await setup.allCommands()["hmget"] == 2)
    }

    @Test("Settle in call-finish charges the actual usage, not the estimate")
    func settlesActualUsage() async throws {
        let setup = try await Setup(defaults: ["global": "tokens: budget 1000", "tenant": "requests: window 100/min"])
        defer { setup.close() }
        let call = ProviderCall(
            scope: "s", estimate: ["tokens": 400, "requests": 1], quotaPath: setup.path, maxAttempts: 1)
        // Each admission needs its estimate (400) free; each call then uses 100. Charged the estimate, two calls would
        // fit; settled to their usage, seven do (after six, 600 are spent and 400 remain).
        for _ in 0..<7 {
            _ = try await setup.backpressure.call(call) { _ in CallOutcome((), usage: ["tokens": 100]) }
        }
        let refused = await #expect(throws: BackpressureError.self) {
            try await setup.backpressure.call(call) { _ in CallOutcome((), usage: ["tokens": 100]) }
        }
        #expect(refused?.code == .quotaDenied)
    }

    @Test("A refusal at any stage leaves nothing behind: no lease, no queue entry, no charge")
    func refusalLeavesNothing() async throws {
        let setup = try await Setup(defaults: ["global": "tokens: budget 500"])
        defer { setup.close() }
        let path = try ScopePath("global=openai")
        let big = ProviderCall(scope: "s", estimate: ["tokens": 600], quotaPath: path, concurrency: 1, maxAttempts: 1)
        let refused = await #expect(throws: BackpressureError.self) {
            try await setup.backpressure.call(big) { _ in CallOutcome(()) }
        }
        #expect(refused?.code == .quotaDenied)
        let pool = LeasePool(redis: setup.client, partition: "openai", scope: "s", slots: 1)
        #expect(try await pool.held() == 0, "the lease taken before the quota refused is given back")
        let status = try await AdmissionQueue(redis: setup.client, partition: "openai", scope: "s").status()
        #expect(status.waiting == 0 && status.inFlight == 0, "\(status)")
        let decision = try await setup.limiter.decide(path, cost: ["tokens": 500], reportLimits: true)
        #expect(decision.allowed, "the refused call charged nothing: all 500 are still there")
    }

    @Test("Waiting callers are scheduled in the admission's reply: under contention at most 3 script calls per call")
    func scheduledWithoutPolling() async throws {
        // 10 a second, a burst of 1: 30 callers within a 2 s deadline — about 20 are scheduled, the rest shed.
        let setup = try await Setup(defaults: ["global": "requests: bucket rate=10/s burst=1 debt=20"])
        defer { setup.close() }
        let path = try ScopePath("global=openai")
        let call = ProviderCall(
            scope: "s", estimate: ["requests": 1], quotaPath: path, timeout: .seconds(2), maxAttempts: 1)
        _ = try await setup.limiter.decide(path, cost: ["requests": 0])  // loads the function library
        try await setup.resetStats()
        let outcomes = await withTaskGroup(of: String.self) { group in
            for _ in 0..<30 {
                group.addTask {
                    do {
                        _ = try await setup.backpressure.call(call) { _ in CallOutcome((), usage: ["requests": 1]) }
                        return "admitted"
                    } catch let error as BackpressureError {
                        return error.code == .quotaDenied ? "quotaDenied" : error.code.description
                    } catch {
                        return "\(error)"
                    }
                }
            }
            var all: [String: Int] = [:]
            for await outcome in group { all[outcome, default: 0] += 1 }
            return all
        }
        let admitted = outcomes["admitted"] ?? 0
        #expect(admitted >= 10, "\(outcomes)")
        // A caller scheduled close to its deadline may still run out of it: answered all the same.
        let answered = admitted + (outcomes["quotaDenied"] ?? 0) + (outcomes["deadline-exceeded"] ?? 0)
        #expect(answered == 30, "every caller admitted or refused: \(outcomes)")
        let (scripts, _) = try await setup.scriptCalls()
        // Refused callers: call-admit only; every other caller (admitted, or out of time after its turn came):
        // call-admit and call-finish. Nobody asked twice (interactive callers wait in no line).
        let refused = outcomes["quotaDenied"] ?? 0
        #expect(scripts == refused + 2 * (30 - refused), "\(scripts) script calls for \(outcomes)")
    }

    @Test("Batch callers beyond the debt wait in line, told their place: all admitted in turn, none asking thrice")
    func linedBeyondTheDebt() async throws {
        // 10 a second, a burst of 1 and a debt of 3: of 15 batch callers at once, 4 are scheduled into the debt,
        // the others get places in line 100 ms apart (within their 5 s deadline) and are admitted when asking there.
        let setup = try await Setup(defaults: ["global": "requests: bucket rate=10/s burst=1 debt=3"])
        defer { setup.close() }
        let path = try ScopePath("global=openai")
        let call = ProviderCall(
            scope: "s", estimate: ["requests": 1], quotaPath: path, timeout: .seconds(5), maxAttempts: 1)
        let tree = try await RequestTrees(redis: setup.client).open(
            partition: "openai", limits: TreeLimits(maxInFlight: 100), priority: .batch)
        _ = try await setup.limiter.decide(path, cost: ["requests": 0])  // loads the function library
        try await setup.resetStats()
        let started = ContinuousClock.now
        let outcomes = await Self.runAtOnce(15, call, in: tree, on: setup)
        #expect(outcomes == ["admitted": 15], "every caller admitted in its turn: \(outcomes)")
        #expect(ContinuousClock.now - started >= .milliseconds(900), "paced by the bucket: 10 a second after the first")
        let (scripts, _) = try await setup.scriptCalls()
        // call-finish once each; call-admit once, or twice for a caller that waited in line.
        #expect(scripts > 2 * 15 && scripts <= 3 * 15, "\(scripts) script calls for 15 calls")
        for part in ["", ":tenants", ":turns", ":lapse"] {
            let key = "sluice:{openai}:queue:s:line:batch" + part
            let ttl = try await setup.client.send(RedisCommand("PTTL", RedisArgument(key)))
            #expect(ttl.integer == -2 || (ttl.integer ?? 0) > 0, "\(key) expires (PTTL \(ttl))")
        }
    }

    @Test("What a batch call did not use of its estimate moves the line up: places follow usage, not estimates")
    func lineMovesUpByRefunds() async throws {
        // 1,000 tokens a second: a call that estimated 500 and used 100 gave back 400, which the bucket would
        // have taken 400 ms to refill, so the line (here 5 s long) ends 400 ms sooner.
        let setup = try await Setup(defaults: ["global": "tokens: bucket rate=1000/s burst=10000 debt=1000"])
        defer { setup.close() }
        let path = try ScopePath("global=openai")
        let call = ProviderCall(scope: "s", estimate: ["tokens": 500], quotaPath: path, maxAttempts: 1)
        let tree = try await RequestTrees(redis: setup.client).open(
            partition: "openai", limits: TreeLimits(maxInFlight: 100), priority: .batch)
        let key = RedisArgument("sluice:{openai}:queue:s:line:batch")
        let now = try await setup.client.send(RedisCommand("TIME")).array ?? []
        let nowMs = Double((now.first?.string).flatMap(Int.init) ?? 0) * 1000
        let ends = nowMs + 5_000
        _ = try await setup.client.send(
            RedisCommand("SET", key, RedisArgument(String(format: "%.1f 0", ends)), "PX", 10_000))
        _ = try await tree.run {
            try await setup.backpressure.call(call) { _ in CallOutcome((), usage: ["tokens": 100]) }
        }
        let line = try await setup.client.send(RedisCommand("GET", key)).string ?? ""
        let moved = line.split(separator: " ").first.flatMap { Double($0) }.map { ends - $0 }
        #expect(moved.map { abs($0 - 400) < 1 } == true, "the line moved up by \(moved ?? -1) ms: \(line)")

        // A call that used its estimate gives nothing back; an interactive call (outside the batch tree) is not
        // in the line.
        _ = try await tree.run {
            try await setup.backpressure.call(call) { _ in CallOutcome((), usage: ["tokens": 500]) }
        }
        _ = try await setup.backpressure.call(call) { _ in CallOutcome((), usage: ["tokens": 100]) }
        #expect(try await setup.client.send(RedisCommand("GET", key)).string == line)

        // Never before the line's front: callers placed there again keep their turn ahead of newcomers.
        let front = ends - 100
        _ = try await setup.client.send(
            RedisCommand("SET", key, RedisArgument(String(format: "%.1f %.1f", ends, front)), "PX", 10_000))
        _ = try await tree.run {
            try await setup.backpressure.call(call) { _ in CallOutcome((), usage: ["tokens": 100]) }
        }
        let clamped = try await setup.client.send(RedisCommand("GET", key)).string ?? ""
        #expect(clamped == String(format: "%.1f %.1f", front, front), "\(clamped)")
    }

    /// Runs `count` batch calls of `tenant` at once, each in a tree of its own priority, logging the order in which
    /// their provider operations ran; returns the outcomes.
    private func lineCalls(
        _ setup: Setup, tenant: String, count: Int, order: RunOrder
    ) async throws -> Task<[String: Int], Never> {
        let path = try ScopePath("global=openai", "tenant=\(tenant)")
        let call = ProviderCall(
            scope: "s", estimate: ["requests": 1], quotaPath: path, timeout: .seconds(20), maxAttempts: 1)
        let tree = try await RequestTrees(redis: setup.client).open(
            partition: "openai", limits: TreeLimits(maxInFlight: 1000, deadline: .seconds(60)), priority: .batch)
        return Task { await Self.runAtOnce(count, call, in: tree, on: setup) { order.append(tenant) } }
    }

    /// Runs `count` copies of `call` at once in `tree`, each provider operation reporting a usage of 1 request (after
    /// `ran`); returns how many ended how ("admitted", or the error).
    private static func runAtOnce(
        _ count: Int, _ call: ProviderCall, in tree: TreeContext, on setup: Setup,
        ran: @escaping @Sendable () -> Void = {}
    ) async -> [String: Int] {
        await withTaskGroup(of: String.self) { group in
            for _ in 0..<count {
                group.addTask {
                    do {
                        _ = try await tree.run {
                            try await setup.backpressure.call(call) { (_: CallAttempt) -> CallOutcome<Void> in
                                ran()
                                return CallOutcome((), usage: ["requests": 1])
                            }
                        }
                        return "admitted"
                    } catch {
                        return "\(error)"
                    }
                }
            }
            var all: [String: Int] = [:]
            for await outcome in group { all[outcome, default: 0] += 1 }
            return all
        }
    }

    /// At 20 calls a second (a burst and a debt of 1), `first.count` batch calls of `first.tenant` at once, then, `after`
    /// later, `second.count` of `second.tenant`: every call admitted. Returns the order in which they ran, how many
    /// had run when the second tenant came, and the script calls made.
    private func twoTenantsInLine(
        weights: [String: Double] = [:], weightsInRedis: [String: String] = [:], _ first: (tenant: String, count: Int),
        then second: (tenant: String, count: Int),
        after: Duration
    ) async throws -> (ran: [String], arrived: Int, scripts: Int) {
        let setup = try await Setup(
            defaults: ["global": "requests: bucket rate=20/s burst=1 debt=1"], queue: .init(tenantWeights: weights))
        defer { setup.close() }
        for (tenant, weight) in weightsInRedis {  // as an operator writes them (`sluice quota weight` checks them)
            _ = try await setup.client.send(
                RedisCommand(
                    "HSET", "sluice:{openai}:weights", RedisArgument("tenant=\(tenant)"), RedisArgument(weight)))
        }
        _ = try await setup.limiter.decide(try ScopePath("global=openai"), cost: ["requests": 0])
        let order = RunOrder()
        let early = try await lineCalls(setup, tenant: first.tenant, count: first.count, order: order)
        try await Task.sleep(for: after)
        let late = try await lineCalls(setup, tenant: second.tenant, count: second.count, order: order)
        let arrived = order.all.count  // its tree is open: its calls ask at once
        #expect(await late.value == ["admitted": second.count])
        #expect(await early.value == ["admitted": first.count])
        return (order.all, arrived, try await setup.scriptCalls().calls)
    }

    @Test("One tenant's backlog in line does not lengthen another tenant's wait: the line takes turns by tenant")
    func lineTakesTurnsByTenant() async throws {
        // 30 calls of `heavy` at once make a line of about 1.4 s. Three calls of `light` that come 300 ms later go
        // ahead of that backlog.
        let (ran, arrived, _) = try await twoTenantsInLine(("heavy", 30), then: ("light", 3), after: .milliseconds(300))
        let lastLight = ran.lastIndex(of: "light") ?? ran.count
        let heavyBefore = ran[arrived..<lastLight].filter { $0 == "heavy" }.count
        // First come, first served, about 24 of heavy's calls would run first; taking turns, about 3 to 6.
        #expect(
            heavyBefore <= 10, "\(heavyBefore) of heavy's calls ran between light's arrival and its last call: \(ran)")
        #expect(arrived < 20, "heavy still had a line when light came (\(arrived) of its calls had run)")
    }

    /// Where the line's weights come from in ``lineFollowsTenantWeights(_:)``.
    enum WeightSource: String, CaseIterable, CustomTestStringConvertible {
        case process, redis, invalidInRedis
        var testDescription: String { rawValue }
    }

    @Test(
        "Tenants take places in line in proportion to their weights: the operators' in Redis, else the process's",
        arguments: WeightSource.allCases)
    func lineFollowsTenantWeights(_ source: WeightSource) async throws {
        // Set in Redis, the operators' weights win over the process's (here the other way round); values there that
        // are not weights are ignored, the process's apply.
        let (ran, arrived, scripts) = try await twoTenantsInLine(
            weights: source == .redis ? ["gold": 1, "bronze": 3] : ["gold": 3, "bronze": 1],
            weightsInRedis: [.redis: ["gold": "3", "bronze": "1"], .invalidInRedis: ["gold": "nan", "bronze": "0"]][
                source] ?? [:],
            ("bronze", 24), then: ("gold", 24), after: .milliseconds(200))
        // The places bronze's callers were given before gold came are kept (places given are not moved: 2 to 6 of them
        // in a run, as the machine goes), then gold goes ahead of bronze's backlog; first come, first served, it would
        // wait behind all of it (some 20 calls).
        let firstGold = try #require(ran.firstIndex(of: "gold"))
        #expect(firstGold - arrived <= 12, "gold waited behind \(firstGold - arrived) of bronze's calls: \(ran)")
        // Taking turns, gold (3) and bronze (1) waiting at once share the calls about 3 to 1 (gold's first places come at
        // the line's front): of the 20 calls from gold's first, gold ran 14 to 20 in 36 runs; at equal weights it ran 9
        // to 11 in 12, with the process's weights where Redis holds others (1 to 3) 2 to 4. While gold's calls run,
        // bronze's still get their share: it is not starved.
        let golden = ran[firstGold...].prefix(20).filter { $0 == "gold" }.count
        #expect(golden >= 12, "gold ran \(golden) of the 20 calls from its first: \(ran)")
        let lastGold = ran.lastIndex(of: "gold") ?? ran.count
        let bronzeMeanwhile = ran[arrived..<lastGold].filter { $0 == "bronze" }.count
        #expect(bronzeMeanwhile >= 3, "bronze ran \(bronzeMeanwhile) calls while gold's 24 ran: \(ran)")
        // Callers who give their places up ask once more, nobody asks again and again.
        #expect(scripts <= 5 * 48, "\(scripts) script calls for 48 calls")
    }

    @Test(
        "A caller cancelled while it waits, at its place in line or for a lease, leaves the queue and the line at once")
    func cancelledWaitersLeave() async throws {
        let setup = try await Setup(defaults: ["global": "requests: bucket rate=5/s burst=1 debt=1"])
        defer { setup.close() }
        let queue = AdmissionQueue(redis: setup.client, partition: "openai", scope: "s")
        let turns = RedisArgument("sluice:{openai}:queue:s:line:batch:turns")
        func held() async throws -> Int { Int(try await setup.client.send(RedisCommand("ZCARD", turns)).integer ?? 0) }

        // Waiting for the only lease, held by a call that runs until told to stop.
        let call = ProviderCall(
            scope: "s", estimate: ["requests": 0], quotaPath: setup.path, concurrency: 1, timeout: .seconds(20),
            maxAttempts: 1)
        let release = AsyncStream.makeStream(of: Void.self)
        let holder = Task {
            try await setup.backpressure.call(call) { _ in
                for await _ in release.stream { break }
                return CallOutcome(())
            }
        }
        for _ in 0..<400 where try await queue.status().inFlight < 1 { try await Task.sleep(for: .milliseconds(5)) }
        let waiter = Task { try await setup.backpressure.call(call) { _ in CallOutcome(()) } }
        for _ in 0..<400 where try await queue.status().waiting < 1 { try await Task.sleep(for: .milliseconds(5)) }
        try #require(try await queue.status().waiting == 1, "the second call never waited for the lease")
        waiter.cancel()
        await #expect(throws: CancellationError.self) { try await waiter.value }
        // Its patience (20 s) would have kept it counted against the queue's most until then.
        #expect(try await queue.status().waiting == 0, "a cancelled lease waiter still counts as waiting")
        release.continuation.finish()
        _ = try await holder.value

        // 30 batch calls at once, at 5 a second: most wait in line (some 6 s), each with its turn.
        let inLine = try await lineCalls(setup, tenant: "acme", count: 30, order: RunOrder())
        var most = 0
        for _ in 0..<1_000 where most < 15 {
            most = max(most, try await held())
            try await Task.sleep(for: .milliseconds(5))
        }
        try #require(most >= 15, "the calls never waited in line")
        inLine.cancel()
        let outcomes = await inLine.value
        #expect(outcomes["admitted", default: 0] < 30, "\(outcomes)")
        // Gone at once, not when their places lapse (1 s after each place; the last one some 6 s away).
        #expect(try await held() == 0, "turns of cancelled callers stayed behind")
        #expect(try await queue.status().waiting == 0, "cancelled callers still count as waiting")
    }

    @Test(
        "A call cancelled while its admission is in flight gives back what the admission took",
        arguments: ["in two trips", "step by step"])
    func cancelledDuringAdmission(route: String) async throws {
        let setup = try await Setup(defaults: ["global": "tokens: bucket rate=1/d burst=1000"])
        defer { setup.close() }
        let queue = AdmissionQueue(redis: setup.client, partition: "openai", scope: "s")
        let pool = LeasePool(redis: setup.client, partition: "openai", scope: "s", slots: 1)
        // Without a quota path, a call takes its stages one round trip each: its first, the queue, is the one in
        // flight when the caller is cancelled (the lease and the charge are not reached).
        let quotaPath = route == "in two trips" ? setup.path : nil
        let call = ProviderCall(
            scope: "s", estimate: ["tokens": 100], quotaPath: quotaPath, concurrency: 1, timeout: .seconds(20),
            maxAttempts: 1)
        // A first call loads the function library: the call below sends its admission, nothing before it.
        let warmUp = ProviderCall(scope: "s", estimate: ["tokens": 0], quotaPath: quotaPath, maxAttempts: 1)
        _ = try await setup.backpressure.call(warmUp) { _ in CallOutcome(()) }
        // The partition's server is busy with a 600 ms script (shorter than the cluster's node timeout): the call's
        // admission is sent, then waits behind it, and the caller is cancelled meanwhile.
        let busy = """
            local from = redis.call('TIME')
            for _ = 1, 500000000 do
                local now = redis.call('TIME')
                if (now[1] - from[1]) * 1000000 + now[2] - from[2] > tonumber(ARGV[1]) then return 1 end
            end
            return 0
            """
        let server = Task {
            try await setup.client.send(
                RedisCommand("EVAL", [RedisArgument(busy), "1", "sluice:{openai}:busy", "600000"]))
        }
        try await Task.sleep(for: .milliseconds(150))
        let ran = Counter()
        let caller = Task {
            try await setup.backpressure.call(call) { _ in
                ran.add()
                return CallOutcome(())
            }
        }
        try await Task.sleep(for: .milliseconds(150))
        caller.cancel()
        await #expect(throws: CancellationError.self) { try await caller.value }
        _ = try await server.value
        #expect(ran.value == 0, "a cancelled caller's operation ran")
        // Nothing stays behind: no lease (held 30 s), no place in the queue, no charge (the bucket refills 1 a day).
        #expect(try await pool.held() == 0, "the admission's lease stayed held")
        let status = try await queue.status()
        #expect(status.inFlight == 0 && status.waiting == 0, "\(status)")
        #expect(try await setup.limiter.decide(setup.path, cost: ["tokens": 1000]).allowed, "the charge stayed")
    }

    @Test("A retry costs one script call more: the failed attempt's outcome with the retry budget and the next permit")
    func retryRoundTrips() async throws {
        let setup = try await Setup()
        defer { setup.close() }
        let call = ProviderCall(
            scope: "openai/gpt-4o", estimate: ["tokens": 100, "requests": 1], quotaPath: setup.path, maxAttempts: 2)
        _ = try await setup.backpressure.call(call) { _ in CallOutcome(0, usage: ["tokens": 50, "requests": 1]) }
        try await setup.resetStats()
        let attempts = Counter()
        let result = try await setup.backpressure.call(call) { _ in
            attempts.add()
            if attempts.value == 1 { throw ProviderFailure("503", retryable: true, retryAfter: .milliseconds(1)) }
            return CallOutcome(1, usage: ["tokens": 40, "requests": 1])
        }
        #expect(result.value == 1 && result.attempts == 2)
        let (scripts, _) = try await setup.scriptCalls()
        // call-admit; call-finish with the breaker's outcome, the retry budget and (the breaker being closed) the
        // second attempt's permit; call-finish.
        #expect(scripts == 3, "\(scripts) script calls for one call retried once")
        let commands = try await setup.allCommands()
        #expect(commands["fcall", default: 0] + commands["evalsha", default: 0] == 3, "\(commands)")
    }

    @Test("A started tree costs no round trip of its own: its first call records its limits, which then hold")
    func startedTreeRecordedByFirstCall() async throws {
        let setup = try await Setup()
        defer { setup.close() }
        let trees = RequestTrees(redis: setup.client)
        let tree = try trees.start(
            partition: "openai", limits: TreeLimits(budgets: ["tokens": 250], deadline: .seconds(60)))
        let call = ProviderCall(
            scope: "s", estimate: ["tokens": 100, "requests": 1], quotaPath: setup.path, maxAttempts: 1)
        _ = try await setup.backpressure.call(call) { _ in CallOutcome((), usage: ["tokens": 100, "requests": 1]) }
        try await setup.resetStats()
        for _ in 0..<2 {
            _ = try await tree.run {
                try await setup.backpressure.call(call) { _ in CallOutcome((), usage: ["tokens": 100, "requests": 1]) }
            }
        }
        let (scripts, _) = try await setup.scriptCalls()
        #expect(scripts == 4, "two calls of two script calls each, and no tree-open")
        // A third call would pass the budget of 250 that the first call recorded.
        let refused = await #expect(throws: BackpressureError.self) {
            try await tree.run { try await setup.backpressure.call(call) { _ in CallOutcome(()) } }
        }
        #expect(refused?.code == .treeBudget)
        let usage = try await trees.usage(tree)
        #expect(usage.used["tokens"] == 200 && usage.budgets["tokens"] == 250, "\(usage)")
        // Recorded with tree-open's expiry: the deadline and an hour.
        let key = PartitionKeys(partition: "openai", namespace: "sluice").key("tree", tree.treeID)
        let ttl = try await setup.client.send(RedisCommand("PTTL", key)).integer ?? -1
        #expect(ttl > 3_500_000 && ttl <= 3_660_000, "\(ttl)")
    }

    @Test("A started tree's first call refused by the quota records nothing; enter and spawn record it first")
    func startedTreeRefusedFirstCall() async throws {
        let setup = try await Setup(defaults: ["global": "tokens: budget 500"])
        defer { setup.close() }
        let trees = RequestTrees(redis: setup.client)
        let path = try ScopePath("global=openai")
        let tree = try trees.start(partition: "openai", limits: TreeLimits(maxChildren: 1, loopGuard: 1))
        let key = PartitionKeys(partition: "openai", namespace: "sluice").key("tree", tree.treeID)
        let big = ProviderCall(scope: "s", estimate: ["tokens": 600], quotaPath: path, maxAttempts: 1)
        let refused = await #expect(throws: BackpressureError.self) {
            try await tree.run { try await setup.backpressure.call(big) { _ in CallOutcome(()) } }
        }
        #expect(refused?.code == .quotaDenied)
        #expect(try await setup.client.send(RedisCommand("EXISTS", key)).integer == 0, "a refusal leaves no tree")
        // enter (the loop guard) and spawn (max children) hold the started tree's limits, recorded once.
        let ticket = try await trees.enter(tree, tool: "search", arguments: "q")
        try await trees.settle(ticket, usage: [:])
        try await setup.resetStats()
        try await trees.settle(try await trees.enter(tree, tool: "fetch", arguments: "q"), usage: [:])
        #expect(try await setup.scriptCalls().calls == 2, "a second enter records nothing again")
        let looped = await #expect(throws: BackpressureError.self) {
            try await trees.enter(tree, tool: "search", arguments: "q")
        }
        #expect(looped?.code == .loopGuard)
        _ = try await trees.spawn(from: tree)
        let spawned = await #expect(throws: BackpressureError.self) { try await trees.spawn(from: tree) }
        #expect(spawned?.code == .treeChildren)
        let ttl = try await setup.client.send(RedisCommand("PTTL", key)).integer ?? -1
        #expect(ttl > 0, "the tree expires (its lifetime: \(ttl) ms left)")
    }

    @Test("A retry after the failure that opened the breaker asks for its probe after the pause, not before")
    func retryProbesAfterThePause() async throws {
        let setup = try await Setup()
        defer { setup.close() }
        let backpressure = Backpressure(
            redis: setup.client,
            configuration: .init(
                partition: "openai",
                breaker: .init(
                    window: .seconds(10), buckets: 10, minimumCalls: 1, failureRatio: 0.5, coolDown: .milliseconds(50),
                    probes: 1, probeTimeout: .seconds(5)),
                health: .init(stepTimeout: .seconds(10)), heartbeat: nil),
            limiter: setup.limiter)
        let call = ProviderCall(
            scope: "flaky", estimate: ["tokens": 100, "requests": 1], quotaPath: setup.path, maxAttempts: 2)
        _ = try await backpressure.call(call) { _ in CallOutcome(0, usage: ["tokens": 50, "requests": 1]) }
        try await setup.resetStats()
        let probes = SluiceMutex<[Bool]>([])
        let result = try await backpressure.call(call) { attempt in
            probes.withLock { $0.append(attempt.isProbe) }
            if attempt.number == 1 { throw ProviderFailure("503", retryable: true, retryAfter: .milliseconds(200)) }
            return CallOutcome(1, usage: ["tokens": 40, "requests": 1])
        }
        #expect(result.value == 1 && result.attempts == 2)
        // The first failure opened the breaker (one call is enough here): the retry waited out the cool-down and
        // then took the half-open probe in a script call of its own.
        #expect(probes.withLock { $0 } == [false, true])
        let (scripts, _) = try await setup.scriptCalls()
        #expect(scripts == 4, "\(scripts) script calls")
        let permit = try await CircuitBreaker(redis: setup.client, partition: "openai", name: "flaky").permit()
        #expect(permit.state == .closed, "the probe's success closed the breaker again")
    }

    @Test("sluice bench call reports two round trips per call on the happy path, from the server's statistics")
    func benchCall() async throws {
        let server = try RedisServer()
        defer { server.stop() }
        let (status, output) = try SluiceBinary.run([
            "bench", "call", "global=openai", "tenant=acme", "--cost", "requests=1", "--cost", "tokens=10",
            "--default", "global=tokens: bucket rate=1000000/s burst=1000000", "--concurrency", "4", "--count", "40",
            "--json", "--redis", server.url,
        ])
        #expect(status == 0, "\(output)")
        let line = output.split(separator: "\n").last { $0.hasPrefix("{") }.map(String.init) ?? ""
        let object = try #require(
            try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "\(output)")
        #expect(object["calls"] as? Int == 40)
        #expect((object["redis_round_trips_per_call"] as? NSNumber)?.doubleValue == 2, "\(line)")
        #expect(((object["server_us_per_call"] as? NSNumber)?.doubleValue ?? 0) > 0, "\(line)")
        for key in ["calls_per_sec", "p50_us", "p99_us"] { #expect(object[key] != nil, "\(key) in \(line)") }
    }
}

/// The order in which calls of several tasks ran.
private final class RunOrder: Sendable {
    private let names = SluiceMutex<[String]>([])
    func append(_ name: String) { names.withLock { $0.append(name) } }
    var all: [String] { names.withLock { $0 } }
}
