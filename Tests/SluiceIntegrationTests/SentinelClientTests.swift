import Foundation
import SluiceRedis
import Testing

@testable import Sluice

/// The client through Redis Sentinel, each test on a sentinel setup of its own (a primary, a replica and three
/// sentinels): connecting by `redis-sentinel://`, typed errors for a wrong primary name or no sentinel, and a
/// `SENTINEL FAILOVER` while decisions run.
@Suite("Redis Sentinel", .serialized)
struct SentinelClientTests {
    @Test("A redis-sentinel:// client reaches the primary the sentinels name, on its shared and its pooled connections")
    func connectsThroughSentinel() async throws {
        let setup = try await RedisSentinelSetup.start()
        defer { setup.stop() }
        let client = try RedisClient(url: setup.url())
        defer { client.close() }
        let key = RedisArgument("sentinel-test:\(UUID().uuidString)")
        _ = try await client.send("SET", key, "through-sentinel")
        #expect(try await client.send("GET", key).string == "through-sentinel")
        #expect(try await client.primaries() == ["127.0.0.1:\(setup.primary.port)"])
        #expect(try await client.isCluster() == false)
        // A dedicated connection goes to the same primary (ROLE: master).
        let role = try await client.withConnection { connection in
            try await connection.send(RedisCommand("ROLE")).array?.first?.string
        }
        #expect(role == "master")
        // The write really is on the primary (read back on a plain connection to it).
        let direct = try RedisConnection(configuration: RedisConfiguration(url: setup.primary.url))
        defer { direct.close() }
        #expect(try await direct.send(RedisCommand("GET", key)).string == "through-sentinel")
    }

    @Test(
        "rediss-sentinel:// over TLS sentinels reaches the TLS primary they name, verified against the CA, and follows a fail-over",
        .timeLimit(.minutes(3)))
    func sentinelOverTLS() async throws {
        let certificates = try await TestCertificates.shared()
        let setup = try await RedisSentinelSetup.start(tls: certificates.server())
        defer { setup.stop() }
        var configuration = try RedisConfiguration(url: setup.url())
        configuration.commandTimeout = .seconds(5)
        let client = try RedisClient(configuration: configuration)
        defer { client.close() }
        // Which server answered: its TLS port (its plain port is 0).
        func servingPort() async throws -> String? {
            try await client.send(RedisCommand("CONFIG", "GET", "tls-port")).array?.last?.string
        }
        let key = RedisArgument("sentinel-tls-test:\(UUID().uuidString)")
        _ = try await client.send("SET", key, "over-tls")
        #expect(try await client.send("GET", key).string == "over-tls")
        #expect(try await servingPort() == String(setup.primary.port))

        // Without the test CA the sentinels' certificates are not trusted: a typed error, not a connection in clear.
        var systemRoots = configuration
        systemRoots.tls?.caCertificateFile = nil
        let untrusted = try RedisClient(configuration: systemRoots)
        defer { untrusted.close() }
        let refused = await #expect(throws: RedisError.self) { try await untrusted.send("PING") }
        #expect(refused?.code == .tlsUntrustedCertificate, "\(String(describing: refused))")

        try await setup.failover()
        var moved = false
        let until = ContinuousClock.now + .seconds(60)
        while !moved, ContinuousClock.now < until {
            moved = (try? await servingPort()) == String(setup.replica.port)
            if !moved { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(moved, "the client follows the sentinels to the promoted replica, over TLS")
        #expect(try await client.send("GET", key).string == "over-tls", "replicated before the fail-over")
        _ = try await client.send("SET", key, "after-failover")
        #expect(try await client.send("GET", key).string == "after-failover")
    }

    @Test(
        "Password-protected sentinels and primary: the URL's password is the primary's, ?sentinel-password the sentinels'; a wrong or missing one is .authentication"
    )
    func passwords() async throws {
        let setup = try await RedisSentinelSetup.start(password: "s3cret")
        defer { setup.stop() }
        let hosts = setup.sentinelPorts.map { "127.0.0.1:\($0)" }.joined(separator: ",")
        let client = try RedisClient(
            url: "redis-sentinel://:s3cret@\(hosts)?sentinel-password=s3cret#\(setup.primaryName)")
        defer { client.close() }
        #expect(try await client.send("PING").string == "PONG")
        #expect(!"\(client.configuration)".contains("s3cret"))

        for url in [
            "redis-sentinel://:s3cret@\(hosts)?sentinel-password=wrong#\(setup.primaryName)",  // the sentinels refuse
            "redis-sentinel://\(hosts)?sentinel-password=s3cret#\(setup.primaryName)",  // the primary wants one
        ] {
            let refused = try RedisClient(url: url)
            defer { refused.close() }
            let error = await #expect(throws: RedisError.self) { try await refused.send("PING") }
            #expect(error?.code == .authentication, "\(String(describing: error))")
            #expect(error?.message.contains("s3cret") == false)
        }
    }

    @Test("A primary name the sentinels do not monitor is a typed error (.unknownPrimary), every time")
    func unknownPrimaryName() async throws {
        let setup = try await RedisSentinelSetup.start()
        defer { setup.stop() }
        let client = try RedisClient(url: setup.url(primaryName: "no-such-primary"))
        defer { client.close() }
        for _ in 0..<3 {
            let error = await #expect(throws: RedisError.self) { try await client.send("PING") }
            #expect(error?.code == .unknownPrimary, "\(String(describing: error))")
            #expect(error?.message.contains("no-such-primary") == true)
        }
    }

    @Test("No sentinel answering is a typed outage (.unavailable) that names the sentinels tried")
    func noSentinelAnswers() async throws {
        let ports = [try RedisServer.freePort(), try RedisServer.freePort()]
        var configuration = try RedisConfiguration(
            url: "redis-sentinel://" + ports.map { "127.0.0.1:\($0)" }.joined(separator: ",") + "#p")
        configuration.commandTimeout = .seconds(5)
        let client = try RedisClient(configuration: configuration)
        defer { client.close() }
        let started = ContinuousClock.now
        let error = await #expect(throws: RedisError.self) { try await client.send("PING") }
        #expect(error?.code == .unavailable, "\(String(describing: error))")
        #expect(error?.message.contains("127.0.0.1:\(ports[1])") == true, "\(String(describing: error))")
        // Refused at once: no waiting for the deadline (generous margin for a loaded machine).
        #expect(ContinuousClock.now - started < .seconds(4))
    }

    @Test(
        "-READONLY (the primary turned into a replica under a live connection): the refused command waits and runs once, on the primary",
        .timeLimit(.minutes(2)))
    func readOnlyReplyIsSentAgainOnThePrimary() async throws {
        let setup = try await RedisSentinelSetup.start()
        defer { setup.stop() }
        var configuration = try RedisConfiguration(url: setup.url())
        configuration.commandTimeout = .seconds(10)
        configuration.connectTimeout = .seconds(1)
        configuration.reconnectBackoff = .init(initial: .milliseconds(50), maximum: .milliseconds(200))
        let client = try RedisClient(configuration: configuration)
        defer { client.close() }
        let key = RedisArgument("sentinel-test:readonly:\(UUID().uuidString)")
        #expect(try await client.send("INCR", key).integer == 1)

        // Swap the roles behind the sentinels' back: REPLICAOF keeps the clients' connections open, so the
        // client's next write meets -READONLY (Sentinel itself would close them).
        let primary = try RedisConnection(configuration: RedisConfiguration(url: setup.primary.url))
        let replica = try RedisConnection(configuration: RedisConfiguration(url: setup.replica.url))
        defer {
            primary.close()
            replica.close()
        }
        _ = try await replica.send(RedisCommand("REPLICAOF", "NO", "ONE"))
        _ = try await primary.send(RedisCommand("REPLICAOF", "127.0.0.1", RedisArgument(setup.replica.port)))
        #expect(try await primary.send(RedisCommand("ROLE")).array?.first?.string == "slave")

        // The sentinels still name the old primary, which now says it is a replica: the INCR waits (the client
        // asks again after each backoff) until the roles are swapped back, 1.5 s later, well within its deadline.
        async let incremented = client.send("INCR", key)
        try await Task.sleep(for: .milliseconds(1500))
        _ = try await primary.send(RedisCommand("REPLICAOF", "NO", "ONE"))
        _ = try await replica.send(RedisCommand("REPLICAOF", "127.0.0.1", RedisArgument(setup.primary.port)))
        let value = try await incremented
        // Run exactly once, on the primary: 2 (the data came back from the replica's full resync of the first 1).
        #expect(value.integer == 2, "\(value)")
        #expect(try await primary.send(RedisCommand("GET", key)).string == "2")
        #expect(try await client.send("ROLE").array?.first?.string == "master")
    }

    /// What the decision loops saw.
    private struct Tally: Sendable {
        var allowed = 0
        var allowedAfterSwitch = 0
        var errors: [String: Int] = [:]
        var longest: Duration = .zero
    }

    private final class Control: Sendable {
        let switched = SluiceMutex(false)
        let done = SluiceMutex(false)
        let tally = SluiceMutex(Tally())
    }

    private static func decide(_ limiter: Limiter, callers: Int, control: Control) async {
        await withTaskGroup(of: Void.self) { group in
            for caller in 0..<callers {
                group.addTask {
                    var round = 0
                    // Also ends when cancelled: when the test throws before setting `done`, leaving its scope cancels
                    // `loops`, and a cancelled caller's decisions and sleeps return at once, so it would spin forever.
                    while !control.done.withLock({ $0 }) && !Task.isCancelled {
                        round += 1
                        let started = ContinuousClock.now
                        var failure: String?
                        var allowed = false
                        do {
                            let path = try ScopePath("global=sentinel-\(caller % 4)", "tenant=t\(round % 3)")
                            allowed = try await limiter.decide(path, cost: ["requests": 1]).allowed
                        } catch let error as QuotaError {
                            failure = error.redisError.map { "redis:\($0.code)" } ?? "\(error.code)"
                        } catch {
                            failure = "\(error)"
                        }
                        let took = ContinuousClock.now - started
                        let switched = control.switched.withLock { $0 }
                        control.tally.withLock { tally in
                            tally.longest = max(tally.longest, took)
                            if let failure {
                                tally.errors[failure, default: 0] += 1
                            } else if allowed {
                                tally.allowed += 1
                                if switched { tally.allowedAfterSwitch += 1 }
                            }
                        }
                        if failure != nil { try? await Task.sleep(for: .milliseconds(20)) }
                    }
                }
            }
        }
    }

    @Test(
        "SENTINEL FAILOVER while 8 callers decide: decisions resume on the new primary without manual action, only typed outage errors, no call far past its deadline",
        .timeLimit(.minutes(3)))
    func failoverUnderLoad() async throws {
        try await Self.failOver(waitingUpTo: .seconds(30)) { setup in try await setup.failover() }
    }

    @Test(
        "The primary SIGKILLed while 8 callers decide: the sentinels promote the replica and decisions resume there, only typed outage errors, no call far past its deadline",
        .timeLimit(.minutes(3)))
    func primaryKilledUnderLoad() async throws {
        // The sentinels see it down after 2 s (down-after-milliseconds), then agree and promote the replica.
        try await Self.failOver(waitingUpTo: .seconds(60), killed: true) { setup in setup.primary.kill9() }
    }

    /// Runs 8 deciding callers, causes a fail-over with `fault`, and checks that the client moves to the
    /// replica (now the primary) within `limit`, with only typed outage errors.
    private static func failOver(
        waitingUpTo limit: Duration, killed: Bool = false,
        _ fault: (RedisSentinelSetup) async throws -> Void
    ) async throws {
        let setup = try await RedisSentinelSetup.start()
        defer { setup.stop() }
        var configuration = try RedisConfiguration(url: setup.url())
        configuration.commandTimeout = .seconds(1)
        configuration.connectTimeout = .milliseconds(500)
        configuration.reconnectBackoff = .init(initial: .milliseconds(20), maximum: .milliseconds(200))
        let client = try RedisClient(configuration: configuration)
        defer { client.close() }
        let limiter = try Limiter(
            client: client, configuration: .init(defaults: ["global": "requests: bucket rate=1000000/s burst=1000000"]))
        let oldPrimary = setup.primary.port
        let newPrimary = setup.replica.port

        // A pooled connection, opened now and given back: after the fail-over it is on the old primary.
        func pooledPort() async throws -> String? {
            try await client.withConnection { connection in
                try await connection.send(RedisCommand("INFO", "server")).string?.split(separator: "\r\n")
                    .first { $0.hasPrefix("tcp_port:") }.map { String($0.dropFirst("tcp_port:".count)) }
            }
        }
        #expect(try await pooledPort() == String(oldPrimary))

        let control = Control()
        async let loops: Void = Self.decide(limiter, callers: 8, control: control)
        try await Task.sleep(for: .seconds(1))
        let failedOverAt = ContinuousClock.now
        try await fault(setup)
        // Decisions go on, now on the new primary: the client's writes reach it. The client asks the sentinels
        // every second, so it moves before Sentinel turns the old primary into a replica (some seconds later).
        // (`INFO server` says which server the client's shared connection is on: the replica port, as a primary.)
        var landed = false
        let until = ContinuousClock.now + limit
        while !landed && ContinuousClock.now < until {
            let server = (try? await client.send("INFO", "server"))?.string ?? ""
            let role = (try? await client.send("ROLE"))?.array?.first?.string
            if server.contains("tcp_port:\(newPrimary)\r\n") && role == "master" {
                landed = true
            } else {
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        let landedAfter = ContinuousClock.now - failedOverAt
        // The pool lends a connection to the new primary, not the one left on the old.
        #expect(try await pooledPort() == String(newPrimary))
        // The sentinels switch to the replica and see the old primary as its replica (a killed one stays
        // known to them as a replica that is down).
        if killed {
            // The other sentinels learn the leader's new configuration from its hello messages (every 2 s), so
            // they may name the new primary a little after the client landed there: waited for, within the limit.
            var named: [Int?] = []
            while ContinuousClock.now < until {
                named = []
                for index in setup.sentinelPorts.indices {
                    named.append(try? await setup.primaryPort(accordingTo: index))
                }
                if named.allSatisfy({ $0 == newPrimary }) { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(named.allSatisfy { $0 == newPrimary }, "the sentinels name \(named), not \(newPrimary)")
        } else {
            try await setup.waitUntilAgreed(on: newPrimary, replicas: 1)
        }
        control.switched.withLock { $0 = true }
        let switchedAfter = ContinuousClock.now - failedOverAt
        try await Task.sleep(for: .seconds(1))
        control.done.withLock { $0 = true }
        await loops
        let tally = control.tally.withLock { $0 }
        print(
            "sentinel fail-over\(killed ? " (primary killed)" : ""): writes on the new primary \(landedAfter) and the sentinels agreed \(switchedAfter) after "
                + "the fault; longest call \(tally.longest), "
                + "errors \(tally.errors), allowed \(tally.allowed) (\(tally.allowedAfterSwitch) after the switch)")

        #expect(landed, "the client did not move to the new primary within \(limit)")
        #expect(try await client.primaries() == ["127.0.0.1:\(newPrimary)"])
        let role = try await client.withConnection { try await $0.send(RedisCommand("ROLE")).array?.first?.string }
        #expect(role == "master")
        #expect(oldPrimary != newPrimary)
        let outageCodes: Set<String> = [
            "redis:unavailable", "redis:connect", "redis:endOfFile", "redis:io", "redis:timeout",
        ]
        #expect(tally.errors.keys.allSatisfy { outageCodes.contains($0) }, "\(tally.errors)")
        // A 1 s deadline plus one reconnect (0.5 s) and a sentinel question, with a generous margin for a loaded
        // machine.
        #expect(tally.longest < .seconds(3), "the longest call took \(tally.longest)")
        #expect(tally.allowed > 100, "decisions ran: \(tally.allowed)")
        #expect(tally.allowedAfterSwitch > 0, "no decision after the switch")
    }
}
