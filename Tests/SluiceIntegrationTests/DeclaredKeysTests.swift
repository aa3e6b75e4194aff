import Foundation
import SluiceRedis
import Testing

@testable import Sluice

/// Every key a script touches must come in its KEYS: Redis Cluster routes a script by its declared keys, and
/// proxies and Redis itself (key-space ACLs, client-side tracking) only know those. A key built inside a script
/// from another key's name works on a single server and on a cluster while it shares the hash tag, which is why
/// no other test notices one.
///
/// This test loads the library with every `redis.call` checked: each key it names is compared with the KEYS of
/// the function call that runs it (nested steps of `call-admit` and `call-finish` included), and the keys that were
/// not declared are recorded on the server. Then `Backpressure.call` runs through every stage — queue, breaker,
/// lease (free, held by another, given back after a quota refusal), tree (with its max in flight reached),
/// quota, reconciler, a retry, batch callers waiting in line and cancelled there — and nothing may have been
/// recorded.
@Suite("Scripts touch only the keys they are given", .serialized, .onEveryServer)
struct DeclaredKeysTests {
    /// The library's source with every `redis.call` checked against the declared KEYS; the same library and
    /// function names, so that `FUNCTION LOAD REPLACE` puts it in place of the real one. Two functions more:
    /// `sluice_undeclared_<version>` returns the keys recorded (and forgets them), `sluice_undeclared_probe_<version>`
    /// touches `KEYS[1] .. ':probe'` (to show that the check records what it should).
    static func checkedLibrary() -> String {
        let library = ScriptLibrary.shared
        let version = library.version
        var lines = library.functionSource.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let header = lines.removeFirst()
        var body = lines.joined(separator: "\n").replacingOccurrences(of: "redis.call(", with: "sluice_checked_call(")
        body = body.replacingOccurrences(
            of: #"redis\.register_function\('([^']+)', sluice\['([^']+)'\]\)"#,
            with:
                "redis.register_function('$1', function(keys, args) sluice_declare(keys) return sluice['$2'](keys, args) end)",
            options: .regularExpression)
        let prelude = """
            local sluice_declared, sluice_undeclared, sluice_seen = {}, {}, {}
            local function sluice_declare(keys)
                sluice_declared = {}
                for _, key in ipairs(keys) do sluice_declared[key] = true end
            end
            local function sluice_check(key)
                if not sluice_declared[key] and not sluice_seen[key] then
                    sluice_seen[key] = true
                    sluice_undeclared[#sluice_undeclared + 1] = tostring(key)
                end
            end
            local sluice_every_argument_a_key = { MGET = true, DEL = true, EXISTS = true, UNLINK = true, TOUCH = true }
            local function sluice_checked_call(command, ...)
                local name = string.upper(command)
                if sluice_every_argument_a_key[name] then
                    for i = 1, select('#', ...) do sluice_check((select(i, ...))) end
                elseif name == 'MSET' then
                    for i = 1, select('#', ...), 2 do sluice_check((select(i, ...))) end
                elseif name ~= 'TIME' then
                    sluice_check((...))
                end
                return redis.call(command, ...)
            end
            redis.register_function('sluice_undeclared_\(version)', function()
                local found = sluice_undeclared
                sluice_undeclared, sluice_seen = {}, {}
                return found
            end)
            redis.register_function('sluice_undeclared_probe_\(version)', function(keys)
                sluice_declare(keys)
                return sluice_checked_call('EXISTS', keys[1] .. ':probe')
            end)

            """
        return header + "\n" + prelude + body
    }

    /// The keys recorded on every primary since the last read.
    private func undeclared(_ client: RedisClient) async throws -> [String] {
        let function = "sluice_undeclared_\(ScriptLibrary.shared.version)"
        let replies = try await client.sendToEveryPrimary(RedisCommand("FCALL", RedisArgument(function), 0))
        return replies.flatMap { ($0.array ?? []).compactMap(\.string) }.sorted()
    }

    @Test("Backpressure.call through every stage touches only declared keys", .timeLimit(.minutes(2)))
    func everyKeyDeclared() async throws {
        let server: RedisServer? = TestRedis.onCluster ? nil : try RedisServer()
        let cluster: RedisCluster? =
            TestRedis.onCluster ? try await RedisCluster.start(primaries: 3, replicasPerPrimary: 0) : nil
        defer {
            server?.stop()
            cluster?.stop()
        }
        var configuration = try RedisConfiguration(url: server?.url ?? cluster!.url)
        configuration.commandTimeout = .seconds(10)
        let client = try RedisClient(configuration: configuration)
        defer { client.close() }
        _ = try await client.sendToEveryPrimary(
            RedisCommand("FUNCTION", "LOAD", "REPLACE", RedisArgument(Self.checkedLibrary())))

        // The check records what it should: a key built from a declared one.
        let probe = "sluice_undeclared_probe_\(ScriptLibrary.shared.version)"
        _ = try await client.send(RedisCommand("FCALL", RedisArgument(probe), 1, "sluice:{openai}:x"))
        #expect(try await undeclared(client) == ["sluice:{openai}:x:probe"])

        let limiter = try Limiter(
            client: client,
            configuration: .init(defaults: [
                "global": "tokens: bucket rate=1000000/s burst=1000000", "tenant": "requests: window 100000/min",
            ]))
        let backpressure = Backpressure(
            redis: client,
            configuration: .init(
                partition: "openai", breaker: .init(minimumCalls: 1_000),
                backoff: RetryBackoff(initial: .milliseconds(1), maximum: .milliseconds(2)),
                health: .init(stepTimeout: .seconds(10)), heartbeat: nil),
            limiter: limiter, reconciler: try Reconciler(limiter: limiter))
        let path = try ScopePath("global=openai", "tenant=acme")
        let trees = RequestTrees(redis: client)
        let tree = try await trees.open(
            partition: "openai", limits: TreeLimits(budgets: ["tokens": 1_000_000], maxInFlight: 1))
        let call = ProviderCall(
            scope: "openai/gpt-4o", estimate: ["tokens": 100, "requests": 1], quotaPath: path, concurrency: 1,
            timeout: .seconds(5), maxAttempts: 2)
        let observation = ProviderObservation(
            status: 200, headers: [(name: "x-ratelimit-remaining-tokens", value: "900000")])

        // The happy path inside the tree, and a retry (breaker outcome, retry budget, a second permit).
        do {
            _ = try await tree.run {
                try await backpressure.call(call) { _ in CallOutcome(0, usage: ["tokens": 40], observation: observation)
                }
            }
        } catch {
            let errors = try await client.send("INFO", "errorstats").string ?? ""
            Issue.record("the first call failed: \(error); the server's errors: \(errors)")
            return
        }
        let attempts = Counter()
        _ = try await tree.run {
            try await backpressure.call(call) { _ in
                attempts.add()
                if attempts.value == 1 { throw ProviderFailure("503", retryable: true, retryAfter: .milliseconds(1)) }
                return CallOutcome(0, usage: ["tokens": 40])
            }
        }

        // Every lease held by another: refused after waiting on the pool's wake-up list.
        let pool = LeasePool(redis: client, partition: "openai", scope: "openai/gpt-4o", slots: 1)
        guard case .acquired(let held) = try await pool.tryAcquire() else {
            Issue.record("the only slot is free")
            return
        }
        let busy = ProviderCall(
            scope: "openai/gpt-4o", estimate: ["tokens": 1], quotaPath: path, concurrency: 1,
            timeout: .milliseconds(300), maxAttempts: 1)
        await #expect(throws: BackpressureError.self) { try await backpressure.call(busy) { _ in CallOutcome(0) } }
        try await pool.release(held)

        // The tree's one call in flight is running: a second call of the tree is refused (tree-in-flight).
        let (started, running) = AsyncStream.makeStream(of: Void.self)
        let (released, release) = AsyncStream.makeStream(of: Void.self)
        let inside = ProviderCall(
            scope: "tool", estimate: ["tokens": 1], quotaPath: path, timeout: .seconds(5), maxAttempts: 1)
        let first = Task {
            defer { running.finish() }  // a call that fails before it runs must not leave the test waiting
            return try await tree.run {
                try await backpressure.call(inside) { _ in
                    running.yield()
                    for await _ in released { break }
                    return CallOutcome(0)
                }
            }
        }
        for await _ in started { break }
        let second = ProviderCall(
            scope: "tool", estimate: ["tokens": 1], quotaPath: path, timeout: .milliseconds(300), maxAttempts: 1)
        await #expect(throws: BackpressureError.self) {
            try await tree.run { try await backpressure.call(second) { _ in CallOutcome(0) } }
        }
        release.yield()
        _ = try await first.value

        // A quota refusal after the lease was taken: call-admit gives the lease back itself.
        let huge = ProviderCall(
            scope: "openai/gpt-4o", estimate: ["tokens": 10_000_000], quotaPath: path, concurrency: 1,
            timeout: .seconds(5), maxAttempts: 1)
        await #expect(throws: BackpressureError.self) { try await backpressure.call(huge) { _ in CallOutcome(0) } }

        // Batch callers at a root as deep in debt as it may go wait in line (their turns, the tenants' next turns,
        // the weights); cancelled there, they leave the queue and the line (queue-leave with the line's keys), and
        // those admitted with a wait give their charge back (call-finish with the line's credit).
        let slowLimiter = try Limiter(
            client: client, configuration: .init(defaults: ["global": "requests: bucket rate=2/s burst=1 debt=1"]))
        let slow = Backpressure(
            redis: client,
            configuration: .init(partition: "slow", health: .init(stepTimeout: .seconds(10)), heartbeat: nil),
            limiter: slowLimiter)
        let batchTree = try await RequestTrees(redis: client).open(
            partition: "slow", limits: TreeLimits(maxInFlight: 100, deadline: .seconds(60)), priority: .batch)
        let batch = ProviderCall(
            scope: "s", estimate: ["requests": 1], quotaPath: try ScopePath("global=slow", "tenant=acme"),
            timeout: .seconds(20), maxAttempts: 1)
        let waiting = (0..<6).map { _ in
            Task { try await batchTree.run { try await slow.call(batch) { _ in CallOutcome(0) } } }
        }
        let turns = RedisArgument("sluice:{slow}:queue:s:line:batch:turns")
        var inLine = 0
        for _ in 0..<1_000 where inLine == 0 {
            inLine = Int(try await client.send(RedisCommand("ZCARD", turns)).integer ?? 0)
            if inLine == 0 { try await Task.sleep(for: .milliseconds(5)) }
        }
        #expect(inLine > 0, "no batch caller waited in line")
        for task in waiting { task.cancel() }
        for task in waiting { _ = try? await task.value }
        #expect(try await client.send(RedisCommand("ZCARD", turns)).integer == 0, "a cancelled caller kept its turn")

        #expect(try await undeclared(client) == [], "keys touched without being declared in KEYS")
    }
}
