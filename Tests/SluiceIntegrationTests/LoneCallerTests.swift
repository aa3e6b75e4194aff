import Foundation
import SluiceRedis
import Testing

/// A caller alone on an idle connection makes its round trip on its own thread
/// (``RedisConfiguration/loneCallerReplyWait``); these check that the connection lends and takes
/// back its socket without ever mixing up replies, losing a caller or hiding a failure.
@Suite("Redis client: lone callers", .serialized)
struct LoneCallerTests {
    /// A Lua loop that keeps the server busy for tens of milliseconds (far past any lone caller's wait).
    private static let slowScript = RedisCommand("EVAL", "for i = 1, 3000000 do end return 'slow'", "0")

    private static func connection(
        _ url: String = TestRedis.url, wait: Duration = .milliseconds(1), commandTimeout: Duration = .seconds(10)
    ) throws -> RedisConnection {
        var configuration = try RedisConfiguration(url: url)
        configuration.loneCallerReplyWait = wait
        configuration.commandTimeout = commandTimeout
        return try RedisConnection(configuration: configuration)
    }

    /// Enough commands one after another for the connection to start lending its socket. The pause after each lets
    /// the I/O thread go back to sleep first (the only time it lends): a caller that comes back faster finds it awake
    /// and goes the usual way.
    private static func warmUp(_ connection: RedisConnection, commands: Int = 20) async throws {
        for round in 0..<commands {
            #expect(
                try await connection.send(RedisCommand("ECHO", RedisArgument("warm-\(round)"))).string
                    == "warm-\(round)")
            try await Task.sleep(for: .milliseconds(1))
        }
    }

    @Test("Commands one after another are sent and read by their callers; a zero wait turns it off")
    func loneCallersMakeTheirOwnRoundTrips() async throws {
        // The longest wait: a reply slower than the wait (a busy machine) doubles the run that lending needs.
        let connection = try Self.connection(wait: .milliseconds(10))
        defer { connection.close() }
        try await Self.warmUp(connection, commands: 100)
        // The first 8 go through the I/O thread, until the run of lone commands is long enough (16 more after a
        // slow reply, 32 more after a second one).
        #expect(connection.loneRoundTrips >= 20, "\(connection.loneRoundTrips) lone round trips")
        let pipelined = try await connection.pipeline([RedisCommand("ECHO", "a"), RedisCommand("ECHO", "b")])
        #expect(pipelined == [.bulkString(Array("a".utf8)), .bulkString(Array("b".utf8))])

        let off = try Self.connection(wait: .zero)
        defer { off.close() }
        for round in 0..<50 {
            #expect(try await off.send(RedisCommand("ECHO", RedisArgument("off-\(round)"))).string == "off-\(round)")
        }
        #expect(off.loneRoundTrips == 0)
    }

    @Test("Callers that come and go in every number get their own replies, alone or pipelined")
    func repliesNeverCross() async throws {
        // The longest wait, so that a busy machine's slow replies do not keep the connection from lending.
        let connection = try Self.connection(wait: .milliseconds(10))
        defer { connection.close() }
        try await Self.warmUp(connection)
        let before = connection.loneRoundTrips
        var generator = SystemRandomNumberGenerator()
        for round in 0..<300 {
            let callers = Int.random(in: 1...6, using: &generator)
            let commandsEach = Int.random(in: 1...4, using: &generator)
            let pipelining = Bool.random(using: &generator)
            let mismatches = try await withThrowingTaskGroup(of: Int.self) { group in
                for caller in 0..<callers {
                    group.addTask {
                        var mismatches = 0
                        for step in 0..<commandsEach {
                            let tag = "\(round)-\(caller)-\(step)"
                            if pipelining && step % 2 == 1 {
                                let replies = try await connection.pipeline([
                                    RedisCommand("ECHO", RedisArgument("\(tag)-a")),
                                    RedisCommand("ECHO", RedisArgument("\(tag)-b")),
                                ])
                                if replies.map(\.string) != ["\(tag)-a", "\(tag)-b"] { mismatches += 1 }
                            } else if try await connection.send(RedisCommand("ECHO", RedisArgument(tag))).string != tag
                            {
                                mismatches += 1
                            }
                        }
                        return mismatches
                    }
                }
                return try await group.reduce(0, +)
            }
            #expect(mismatches == 0, "round \(round): \(mismatches) replies went to the wrong caller")
            if round % 3 == 0 { try await Task.sleep(for: .microseconds(Int.random(in: 0...2000))) }
        }
        #expect(connection.loneRoundTrips > before, "no lone round trip among the rounds of one caller")
    }

    @Test("A reply slower than the wait is read by the I/O thread, and the next caller waits its turn")
    func aSlowReplyIsHandedToTheIOThread() async throws {
        // The longest wait, so that the second caller comes while the first still holds the socket.
        let connection = try Self.connection(wait: .milliseconds(10))
        defer { connection.close() }
        try await Self.warmUp(connection)
        #expect(connection.loneRoundTrips > 0)
        let lone = connection.loneRoundTrips
        let started = ContinuousClock.now
        async let slow = connection.send(Self.slowScript)
        try await Task.sleep(for: .milliseconds(2))
        async let next = connection.send(RedisCommand("ECHO", "next"))
        #expect(try await slow.string == "slow")
        let took = ContinuousClock.now - started
        #expect(try await next.string == "next")
        #expect(took > .milliseconds(10), "the slow script took \(took): no longer than the wait")
        // The slow reply did not count as a lone round trip: the I/O thread read it.
        #expect(connection.loneRoundTrips - lone <= 1)
        for round in 0..<20 {
            #expect(
                try await connection.send(RedisCommand("ECHO", RedisArgument("after-\(round)"))).string
                    == "after-\(round)")
        }
    }

    @Test("A cancelled lone caller returns at once while the server is stopped, and the stream stays in step")
    func aCancelledLoneCallerReturnsAtOnce() async throws {
        let server = try RedisServer()
        defer { server.stop() }
        // The longest wait, so that the cancellation comes while the caller still waits on its own thread.
        let connection = try Self.connection(server.url, wait: .milliseconds(10), commandTimeout: .seconds(30))
        defer { connection.close() }
        try await Self.warmUp(connection)
        #expect(connection.loneRoundTrips > 0)

        server.pause()
        let caller = Task { () -> RedisError? in
            do throws(RedisError) {
                _ = try await connection.send(RedisCommand("ECHO", "cancelled"))
                return nil
            } catch {
                return error
            }
        }
        try await Task.sleep(for: .milliseconds(2))
        let cancelledAt = ContinuousClock.now
        caller.cancel()
        let error = await caller.value
        let took = ContinuousClock.now - cancelledAt
        server.resume()
        #expect(error?.code == .cancelled, "\(String(describing: error))")
        // Well under 10 ms in itself; the bound leaves room for a loaded two-core machine.
        #expect(took < .milliseconds(200), "the cancelled caller took \(took)")
        for round in 0..<5 {
            #expect(
                try await connection.send(RedisCommand("ECHO", RedisArgument("after-\(round)"))).string
                    == "after-\(round)")
        }
    }

    @Test("A server that ends the connection fails what was sent on it, and the next command reconnects")
    func theServerEndingTheConnection() async throws {
        let connection = try Self.connection()
        defer { connection.close() }
        try await Self.warmUp(connection)
        let id = try #require(try await connection.send(RedisCommand("CLIENT", "ID")).integer)
        // The server answers the first two, then closes: the third reply never comes.
        let error = await #expect(throws: RedisError.self) {
            _ = try await connection.pipeline([
                RedisCommand("PING"), RedisCommand("CLIENT", "KILL", "ID", RedisArgument("\(id)"), "SKIPME", "no"),
                RedisCommand("PING"),
            ])
        }
        #expect(error?.isConnectionFailure == true, "\(String(describing: error))")
        #expect(try await connection.send(RedisCommand("ECHO", "reconnected")).string == "reconnected")

        // Killed from elsewhere while idle (and lent): the I/O thread notices the end of the
        // connection, and the next command goes out on a new one without an error.
        try await Self.warmUp(connection)
        let newID = try #require(try await connection.send(RedisCommand("CLIENT", "ID")).integer)
        let other = try TestRedis.client()
        defer { other.close() }
        _ = try await other.send("CLIENT", "KILL", "ID", RedisArgument("\(newID)"))
        let deadline = ContinuousClock.now + .seconds(10)
        while connection.isConnected && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(5))
        }
        #expect(!connection.isConnected, "the end of the connection went unnoticed")
        #expect(try await connection.send(RedisCommand("ECHO", "again")).string == "again")
    }
}
