import Foundation
import SluiceRedis
import Testing

/// Deadlines that cover connecting, and cancelled callers, on servers of the tests' own.
@Suite("Redis client: deadlines and cancellation", .serialized)
struct RedisDeadlineTests {
    /// What a call ended with, and when.
    private struct Outcome: Sendable {
        var value: RedisValue?
        var error: RedisError?
        var finished: ContinuousClock.Instant
    }

    private static func attempt(_ redis: RedisClient, _ command: RedisCommand) async -> Outcome {
        do {
            let value = try await redis.send(command)
            return Outcome(value: value, finished: .now)
        } catch {
            return Outcome(error: error, finished: .now)
        }
    }

    @Test("A cancelled caller returns at once while the server is stopped; later callers get their own replies")
    func cancelledCallerReturnsAtOnce() async throws {
        let server = try RedisServer()
        defer { server.stop() }
        var configuration = try RedisConfiguration(url: server.url)
        configuration.commandTimeout = .seconds(30)
        let redis = try RedisClient(configuration: configuration)
        defer { redis.close() }
        #expect(try await redis.send("PING") == .simpleString("PONG"))

        server.pause()
        // The cancelled caller prefers the connection's I/O thread, so that what is measured is the
        // client's reaction, not how long Swift's two-thread cooperative pool (shared with the
        // tests running in parallel) takes to schedule the task again.
        let first = Task(executorPreference: redis.executor) {
            await Self.attempt(redis, RedisCommand("ECHO", "first"))
        }
        let second = Task { await Self.attempt(redis, RedisCommand("ECHO", "second")) }
        // Both are written and wait for the stopped server.
        try await Task.sleep(for: .milliseconds(200))
        let cancelledAt = ContinuousClock.now
        first.cancel()
        let outcome = await first.value
        let took = outcome.finished - cancelledAt
        server.resume()

        #expect(outcome.error?.code == .cancelled, "\(outcome)")
        // The aim is well under 10 ms (a lock and a continuation resumed on the cancelling thread);
        // the bound leaves room for a loaded two-core machine, far below the 30 s command deadline.
        #expect(took < .milliseconds(200), "the cancelled caller took \(took)")
        #expect(await second.value.value?.string == "second")
        // The cancelled command's reply was read and dropped: the stream is still in step.
        for round in 0..<5 {
            #expect(try await redis.send("ECHO", RedisArgument("after-\(round)")).string == "after-\(round)")
        }
    }

    @Test("A task cancelled before it calls never sends its command")
    func cancelledBeforeSendingNeverSends() async throws {
        let redis = try TestRedis.client()
        defer { redis.close() }
        let key = RedisArgument(TestRedis.uniquePrefix() + "counter")
        let task = Task { () -> Outcome in
            try? await Task.sleep(for: .seconds(30))  // ends at once when cancelled
            return await Self.attempt(redis, RedisCommand("INCR", key))
        }
        task.cancel()
        #expect(await task.value.error?.code == .cancelled)
        let pipelined = Task { () -> RedisError? in
            try? await Task.sleep(for: .seconds(30))
            do throws(RedisError) {
                _ = try await redis.pipeline([RedisCommand("INCR", key), RedisCommand("INCR", key)])
                return nil
            } catch {
                return error
            }
        }
        pipelined.cancel()
        #expect(await pipelined.value?.code == .cancelled)
        #expect(try await redis.send("GET", key) == .null, "INCR never ran")
    }

    @Test("Connecting counts against the command's deadline; a command that expired meanwhile is never written")
    func deadlineCoversConnecting() async throws {
        let server = try RedisServer(arguments: ["--requirepass", "pw"])
        defer { server.stop() }
        var configuration = try RedisConfiguration(url: "redis://:pw@127.0.0.1:\(server.port)/3")
        configuration.commandTimeout = .milliseconds(300)
        configuration.connectTimeout = .seconds(10)
        let redis = try RedisClient(configuration: configuration)
        defer { redis.close() }
        let key = RedisArgument(TestRedis.uniquePrefix() + "never")

        // Stopped: the kernel accepts the connection, but AUTH gets no answer.
        server.pause()
        let started = ContinuousClock.now
        let outcome = await Self.attempt(redis, RedisCommand("SET", key, "written", "PX", 60000))
        let took = outcome.finished - started
        #expect(outcome.error?.code == .timeout, "\(outcome)")
        #expect(took >= .milliseconds(250), "\(took)")
        // The connect timeout is 10 s: well under it (a loaded machine adds seconds) means the deadline ruled.
        #expect(took < .seconds(7), "the command's deadline bounds the wait, not the connect timeout: \(took)")

        server.resume()
        // The connection attempt carries on within its own timeout; later commands use it.
        var pong: RedisValue?
        for _ in 0..<40 where pong == nil {
            pong = try? await redis.send("PING")
            if pong == nil { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(pong == .simpleString("PONG"))
        #expect(try await redis.send("GET", key) == .null, "the expired SET was never written")
        #expect(try await redis.send("CLIENT", "INFO").string?.contains("db=3") == true)
    }

    @Test("Blocking and connection-state commands are refused on the shared connection and run on a dedicated one")
    func blockingCommandsNeedADedicatedConnection() async throws {
        let redis = try TestRedis.client()
        defer { redis.close() }
        let key = RedisArgument(TestRedis.uniquePrefix() + "list")
        for command in [
            RedisCommand("BLPOP", key, "1"), RedisCommand("brpop", key, "1"),
            RedisCommand("BLMOVE", key, key, "LEFT", "RIGHT", "1"),
            RedisCommand("BZPOPMIN", key, "1"),
            RedisCommand("XREAD", "COUNT", "1", "BLOCK", "100", "STREAMS", key, "$"),
            RedisCommand("XREADGROUP", "GROUP", "g", "c", "BLOCK", "10", "STREAMS", key, ">"),
            RedisCommand("WAIT", "1", "100"), RedisCommand("SELECT", "1"), RedisCommand("MULTI"), RedisCommand("EXEC"),
            RedisCommand("WATCH", key), RedisCommand("AUTH", "x"), RedisCommand("CLIENT", "TRACKING", "on"),
        ] {
            let error = await #expect(throws: RedisError.self, "\(command.name)") { try await redis.send(command) }
            #expect(error?.code == .requiresDedicatedConnection, "\(command.name): \(String(describing: error))")
            #expect(error?.isConnectionFailure == false)
        }
        let inPipeline = await #expect(throws: RedisError.self) {
            try await redis.pipeline([RedisCommand("PING"), RedisCommand("MULTI")])
        }
        #expect(inPipeline?.code == .requiresDedicatedConnection)
        // Without BLOCK, XREAD is an ordinary command; a key named BLOCK after STREAMS is no option.
        #expect(try await redis.send("XREAD", "COUNT", "1", "STREAMS", key, "0") == .null)
        #expect(try await redis.send("XREAD", "STREAMS", "BLOCK", "0") == .null)

        let popped = try await redis.withConnection { connection in
            try await connection.send(RedisCommand("BLPOP", key, "0.05"))
        }
        #expect(popped == .null)
        #expect(try await redis.send("PING") == .simpleString("PONG"))
    }
}
