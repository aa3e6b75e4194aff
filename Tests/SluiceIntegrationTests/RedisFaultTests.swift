import Foundation
import SluiceRedis
import Testing

/// Faults of the server itself, each on a `redis-server` process of the test's own.
@Suite("Redis client under server faults", .serialized)
struct RedisFaultTests {
    @Test func aStoppedServerTimesOutWithinTheDeadline() async throws {
        let server = try RedisServer()
        defer { server.stop() }
        var configuration = try RedisConfiguration(url: server.url)
        configuration.commandTimeout = .milliseconds(300)
        let redis = try RedisClient(configuration: configuration)
        defer { redis.close() }
        #expect(try await redis.send("PING") == .simpleString("PONG"))

        server.pause()
        let started = ContinuousClock.now
        let error = await #expect(throws: RedisError.self) { try await redis.send("PING") }
        let elapsed = ContinuousClock.now - started
        server.resume()

        #expect(error?.code == .timeout)
        #expect(elapsed >= .milliseconds(250))
        // The bound leaves room for a loaded two-core machine; a hang would take forever.
        #expect(elapsed < .seconds(10), "the call took \(elapsed), far past its 300 ms deadline")
        // The next call reconnects.
        #expect(try await redis.send("PING") == .simpleString("PONG"))
    }

    @Test func aServerKilledMidPipelineFailsEveryWaiterAndTheNextCallReconnects() async throws {
        let server = try RedisServer()
        defer { server.stop() }
        var configuration = try RedisConfiguration(url: server.url)
        configuration.commandTimeout = .seconds(10)
        configuration.reconnectBackoff = .init(initial: .milliseconds(20), maximum: .milliseconds(200))
        let redis = try RedisClient(configuration: configuration)
        defer { redis.close() }
        #expect(try await redis.send("PING") == .simpleString("PONG"))

        // Stop the server so that the commands are written but never answered, then kill it.
        server.pause()
        let started = ContinuousClock.now
        let outcomes = await withTaskGroup(of: RedisError?.self) { group in
            for index in 0..<200 {
                group.addTask {
                    do throws(RedisError) {
                        _ = try await redis.send("ECHO", RedisArgument("waiting-\(index)"))
                        return nil
                    } catch {
                        return error
                    }
                }
            }
            group.addTask {
                try? await Task.sleep(for: .milliseconds(200))
                server.kill9()
                return RedisError(.closed, "marker")
            }
            var all: [RedisError?] = []
            for await outcome in group { all.append(outcome) }
            return all
        }
        let elapsed = ContinuousClock.now - started
        let failures = outcomes.compactMap { $0 }.filter { $0.message != "marker" }
        #expect(failures.count == 200, "every waiting caller gets an error")
        #expect(failures.allSatisfy { $0.isConnectionFailure })
        #expect(elapsed < .seconds(5), "nobody hangs")

        try server.restart()
        // The first attempts may land in the reconnection backoff; within a second the client is back.
        var reply: RedisValue?
        for _ in 0..<50 where reply == nil {
            reply = try? await redis.send("PING")
            if reply == nil { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(reply == .simpleString("PONG"))
    }

    @Test func commandsFailFastWhileTheServerIsDownAndResumeAfterARestart() async throws {
        let server = try RedisServer()
        defer { server.stop() }
        var configuration = try RedisConfiguration(url: server.url)
        configuration.connectTimeout = .milliseconds(300)
        configuration.commandTimeout = .seconds(10)
        configuration.reconnectBackoff = .init(initial: .milliseconds(50), maximum: .milliseconds(400))
        let redis = try RedisClient(configuration: configuration)
        defer { redis.close() }
        #expect(try await redis.send("PING") == .simpleString("PONG"))
        server.kill9()

        // Twenty commands against a dead server end in less time than one command's timeout: none waited for
        // its deadline (a loaded machine may take seconds over the twenty; waiting would take 200).
        let started = ContinuousClock.now
        for _ in 0..<20 {
            let error = await #expect(throws: RedisError.self) { try await redis.send("PING") }
            #expect(error?.isConnectionFailure == true)
        }
        #expect(ContinuousClock.now - started < .seconds(10), "a down server is reported at once, not waited for")

        try server.restart()
        try await Task.sleep(for: .milliseconds(450))
        #expect(try await redis.send("PING") == .simpleString("PONG"))
    }

    @Test func scriptsSurviveScriptFlush() async throws {
        // A server of its own: flushing the shared one would pull scripts from under parallel tests.
        let server = try RedisServer()
        defer { server.stop() }
        let redis = try RedisClient(url: server.url)
        defer { redis.close() }
        let script = RedisScript(name: "test-echo", source: "return {KEYS[1], ARGV[1], 'flush-test'}")
        let key = RedisArgument(TestRedis.uniquePrefix() + "k")
        let first = try await redis.evalScript(script, keys: [key], arguments: ["a"])
        #expect(first.array?.map(\.string) == [String(decoding: key.bytes, as: UTF8.self), "a", "flush-test"])
        _ = try await redis.send("SCRIPT", "FLUSH")
        #expect(try await redis.send("SCRIPT", "EXISTS", RedisArgument(script.sha1)).array == [.integer(0)])
        let second = try await redis.evalScript(script, keys: [key], arguments: ["b"])
        #expect(second.array?[1].string == "b")
        #expect(try await redis.send("SCRIPT", "EXISTS", RedisArgument(script.sha1)).array == [.integer(1)])
    }

    @Test func authentication() async throws {
        let server = try RedisServer(arguments: [
            "--requirepass", "s3cret", "--user", "agent", "on", ">agent-pass", "~*", "+@all",
        ])
        defer { server.stop() }

        let wrong = try RedisClient(url: "redis://:wrong@127.0.0.1:\(server.port)")
        defer { wrong.close() }
        let error = await #expect(throws: RedisError.self) { try await wrong.send("PING") }
        #expect(error?.code == .authentication)
        #expect(error.map { !$0.description.contains("wrong") } == true, "the password never appears in an error")

        let none = try RedisClient(url: server.url)
        defer { none.close() }
        let refused = await #expect(throws: RedisError.self) { try await none.send("PING") }
        #expect(refused?.serverPrefix == "NOAUTH")

        let right = try RedisClient(url: "redis://:s3cret@127.0.0.1:\(server.port)/2")
        defer { right.close() }
        #expect(try await right.send("PING") == .simpleString("PONG"))
        _ = try await right.send("SET", "db-check", "2")
        #expect(try await right.send("CLIENT", "INFO").string?.contains("db=2") == true)

        let user = try RedisClient(url: "redis://agent:agent-pass@127.0.0.1:\(server.port)")
        defer { user.close() }
        #expect(try await user.send("ACL", "WHOAMI").string == "agent")
    }

    @Test func unixSocketEndpoint() async throws {
        let server = try RedisServer()
        defer { server.stop() }
        let redis = try RedisClient(url: "unix://\(server.unixSocketPath)?db=3")
        defer { redis.close() }
        #expect(try await redis.send("PING") == .simpleString("PONG"))
        #expect(try await redis.send("CLIENT", "INFO").string?.contains("db=3") == true)
    }

    @Test func refusedConnectionIsAConnectError() async throws {
        let port = try RedisServer.freePort()
        let redis = try RedisClient(url: "redis://127.0.0.1:\(port)")
        defer { redis.close() }
        let error = await #expect(throws: RedisError.self) { try await redis.send("PING") }
        #expect(error?.code == .connect)
    }

    @Test func closingFailsLaterCommands() async throws {
        let redis = try TestRedis.client()
        #expect(try await redis.send("PING") == .simpleString("PONG"))
        redis.close()
        let error = await #expect(throws: RedisError.self) { try await redis.send("PING") }
        #expect(error?.code == .closed)
    }
}
