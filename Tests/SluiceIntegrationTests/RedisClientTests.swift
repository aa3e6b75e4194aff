import Foundation
import SluiceRedis
import Testing

@Suite("Redis client against the shared test server")
struct RedisClientTests {
    @Test func pingAndRoundTrip() async throws {
        let redis = try TestRedis.client()
        defer { redis.close() }
        #expect(try await redis.send("PING") == .simpleString("PONG"))
        let key = RedisArgument(TestRedis.uniquePrefix() + "k")
        #expect(try await redis.send("SET", key, "v", "PX", 60000) == .simpleString("OK"))
        #expect(try await redis.send("GET", key).string == "v")
        #expect(try await redis.send("GET", RedisArgument(TestRedis.uniquePrefix() + "missing")) == .null)
    }

    @Test func binarySafeKeysAndValues() async throws {
        let redis = try TestRedis.client()
        defer { redis.close() }
        let every = (0...255).map { UInt8($0) }
        let key = RedisArgument(bytes: Array(TestRedis.uniquePrefix().utf8) + every + [0, 13, 10, 0])
        let value = RedisArgument(bytes: every.reversed() + [0, 0, 13, 10, 36, 42])
        _ = try await redis.send("SET", key, value, "PX", 60000)
        #expect(try await redis.send("GET", key) == .bulkString(value.bytes))
        #expect(try await redis.send("STRLEN", key) == .integer(Int64(value.bytes.count)))
        #expect(try await redis.send("EXISTS", key) == .integer(1))
    }

    @Test func largeReplies() async throws {
        let redis = try TestRedis.client(commandTimeout: .seconds(20))
        defer { redis.close() }
        let prefix = TestRedis.uniquePrefix()
        let big = RedisArgument(bytes: (0..<(8 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        _ = try await redis.send("SET", RedisArgument(prefix + "big"), big, "PX", 60000)
        #expect(try await redis.send("GET", RedisArgument(prefix + "big")) == .bulkString(big.bytes))

        let list = RedisArgument(prefix + "list")
        let members = (0..<20_000).map { RedisArgument("member-\($0)") }
        _ = try await redis.send(RedisCommand("RPUSH", [list] + members))
        _ = try await redis.send("PEXPIRE", list, 60000)
        let range = try #require(try await redis.send("LRANGE", list, 0, -1).array)
        #expect(range.count == 20_000)
        #expect(range.first?.string == "member-0")
        #expect(range.last?.string == "member-19999")
    }

    @Test func thousandConcurrentCallersGetTheirOwnReplies() async throws {
        let redis = try TestRedis.client(commandTimeout: .seconds(20))
        defer { redis.close() }
        let prefix = TestRedis.uniquePrefix()
        let mismatches = try await withThrowingTaskGroup(of: Int.self) { group in
            for caller in 0..<1000 {
                group.addTask {
                    var wrong = 0
                    for round in 0..<5 {
                        let text = "\(prefix)caller-\(caller)-round-\(round)"
                        if try await redis.send("ECHO", RedisArgument(text)).string != text { wrong += 1 }
                        let counter = RedisArgument("\(prefix)counter-\(caller)")
                        if try await redis.send("INCR", counter) != .integer(Int64(round + 1)) { wrong += 1 }
                        if round == 0 { _ = try await redis.send("PEXPIRE", counter, 60000) }
                    }
                    return wrong
                }
            }
            return try await group.reduce(0, +)
        }
        #expect(mismatches == 0)
    }

    @Test func tasksCanRunOnTheConnectionsIOThread() async throws {
        let redis = try TestRedis.client()
        let prefix = TestRedis.uniquePrefix()
        let wrong = try await withThrowingTaskGroup(of: Int.self) { group in
            for caller in 0..<50 {
                group.addTask(executorPreference: redis.executor) {
                    var wrong = 0
                    for round in 0..<20 {
                        let text = "\(prefix)\(caller)-\(round)"
                        if try await redis.send("ECHO", RedisArgument(text)).string != text { wrong += 1 }
                    }
                    return wrong
                }
            }
            return try await group.reduce(0, +)
        }
        #expect(wrong == 0)
        // Closing while tasks prefer the I/O thread leaves none of them suspended.
        redis.close()
        let afterClose = await Task(executorPreference: redis.executor) { () -> RedisError? in
            do throws(RedisError) {
                _ = try await redis.send("PING")
                return nil
            } catch {
                return error
            }
        }.value
        #expect(afterClose?.code == .closed)
    }

    @Test func aBusyTaskOnTheIOThreadDoesNotStarveReplies() async throws {
        let redis = try TestRedis.client()
        defer { redis.close() }
        // A task that keeps re-enqueueing itself on the I/O thread: replies must still be read.
        let spinner = Task(executorPreference: redis.executor) {
            var turns = 0
            while !Task.isCancelled {
                turns += 1
                await Task.yield()
            }
            return turns
        }
        let replies = try await withThrowingTaskGroup(of: RedisValue.self) { group in
            for _ in 0..<20 { group.addTask { try await redis.send("PING") } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        spinner.cancel()
        #expect(await spinner.value > 0)
        #expect(replies.count == 20)
        #expect(replies.allSatisfy { $0 == .simpleString("PONG") })
    }

    @Test func commandsWithoutOneReplyAreRefusedBeforeSending() async throws {
        let redis = try TestRedis.client()
        defer { redis.close() }
        for command in [
            RedisCommand("SUBSCRIBE", "news"), RedisCommand("psubscribe", "n*"), RedisCommand("MONITOR"),
            RedisCommand("CLIENT", "reply", "off"),
        ] {
            let error = await #expect(throws: RedisError.self) { try await redis.send(command) }
            #expect(error?.code == .unsupportedCommand)
        }
        #expect(try await redis.send("CLIENT", "ID").integer != nil)
        #expect(try await redis.send("PING") == .simpleString("PONG"))
    }

    @Test func aConnectionLeftInsideMultiIsNotReused() async throws {
        let redis = try TestRedis.client()
        defer { redis.close() }
        struct Abandoned: Error {}
        await #expect(throws: Abandoned.self) {
            try await redis.withConnection { connection in
                _ = try await connection.send(RedisCommand("MULTI"))
                throw Abandoned()
            }
        }
        // Every pooled connection answers PING with PONG, not QUEUED.
        let replies = try await withThrowingTaskGroup(of: RedisValue.self) { group in
            for _ in 0..<8 {
                group.addTask { try await redis.withConnection { try await $0.send(RedisCommand("PING")) } }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(replies.allSatisfy { $0 == .simpleString("PONG") })
    }

    @Test func serverErrorsAreTypedWithTheirPrefix() async throws {
        let redis = try TestRedis.client()
        defer { redis.close() }
        let key = RedisArgument(TestRedis.uniquePrefix() + "string")
        _ = try await redis.send("SET", key, "x", "PX", 60000)
        let error = await #expect(throws: RedisError.self) { try await redis.send("LPUSH", key, "y") }
        #expect(error?.code == .server)
        #expect(error?.serverPrefix == "WRONGTYPE")
        #expect(error?.command == "LPUSH")
        // The connection is still good after a refused command.
        #expect(try await redis.send("PING") == .simpleString("PONG"))
    }

    @Test func pipelineKeepsErrorRepliesInPlace() async throws {
        let redis = try TestRedis.client()
        defer { redis.close() }
        let key = RedisArgument(TestRedis.uniquePrefix() + "p")
        let replies = try await redis.pipeline([
            RedisCommand("SET", key, "1", "PX", 60000), RedisCommand("INCRBY", key, "nope"), RedisCommand("INCR", key),
        ])
        #expect(replies.count == 3)
        #expect(replies[0] == .simpleString("OK"))
        guard case .error(let message) = replies[1] else {
            Issue.record("expected an error reply, got \(replies[1])")
            return
        }
        #expect(message.hasPrefix("ERR"))
        #expect(replies[2] == .integer(2))
    }

    @Test func scriptErrorsAreServerErrors() async throws {
        let redis = try TestRedis.client()
        defer { redis.close() }
        let script = RedisScript(name: "failing", source: "return redis.error_reply('SLUICE bad input')")
        let error = await #expect(throws: RedisError.self) { try await redis.evalScript(script) }
        #expect(error?.serverPrefix == "SLUICE")
    }

    @Test func dedicatedConnectionsFromThePool() async throws {
        let redis = try TestRedis.client()
        defer { redis.close() }
        let key = RedisArgument(TestRedis.uniquePrefix() + "tx")
        let replies = try await redis.withConnection { connection in
            try await connection.pipeline([
                RedisCommand("MULTI"), RedisCommand("SET", key, "1", "PX", 60000), RedisCommand("INCR", key),
                RedisCommand("EXEC"),
            ])
        }
        #expect(replies.last == .array([.simpleString("OK"), .integer(2)]))
    }
}
