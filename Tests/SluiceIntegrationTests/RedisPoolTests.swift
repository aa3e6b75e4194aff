import Testing

@testable import SluiceRedis

/// The dedicated connections' pool against the shared test server: callers wait for connections
/// held by blocking reads, some give up (cancelled, or at their deadline), a holder whose body
/// throws has its connection closed, and every remaining waiter is still served.
@Suite("Redis pool: waiters under cancellation, deadlines and discards")
struct RedisPoolTests {
    struct Dropped: Error {}

    /// Polls `condition` (real time, at most 10 s).
    private func until(_ what: String, _ condition: () async throws -> Bool) async throws {
        let limit = ContinuousClock.now + .seconds(10)
        while try await !condition() {
            if ContinuousClock.now > limit {
                Issue.record("never happened: \(what)")
                return
            }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    @Test("Blocked holders, a cancelled waiter, a timed-out one, a discard: the others are served and nothing leaks")
    func waitersUnderCancellationAndDiscards() async throws {
        var configuration = try RedisConfiguration(url: TestRedis.url)
        configuration.commandTimeout = .seconds(20)
        let redis = try RedisClient(configuration: configuration, poolSize: 2)
        defer { redis.close() }
        let prefix = TestRedis.uniquePrefix()
        let listA = RedisArgument(prefix + "a")
        let listB = RedisArgument(prefix + "b")

        // Two holders take both connections and block on lists; A throws once its read returns.
        let holderAID = SluiceMutex<Int64>(-1)
        let holderA = Task {
            try await redis.withConnection { connection -> Void in
                let id = try await connection.send(RedisCommand("CLIENT", "ID")).integer ?? -1
                holderAID.withLock { $0 = id }
                _ = try await connection.send(RedisCommand("BLPOP", listA, 15))
                throw Dropped()  // an abandoned connection must not be reused
            }
        }
        let holderB = Task {
            try await redis.withConnection { connection in
                try await connection.send(RedisCommand("BLPOP", listB, 15)).array?.last?.string
            }
        }
        try await until("both connections are held") { redis.poolUsage.slots == 2 }

        // Four waiters: one to be cancelled, one with a short deadline, two to be served in turn.
        let ping = { @Sendable (connection: RedisConnection) in
            try await connection.send(RedisCommand("CLIENT", "ID")).integer ?? -1
        }
        let cancelled = Task { try await redis.withConnection(ping) }
        try await until("the first waiter queues") { redis.poolUsage.waiting == 1 }
        let impatient = Task { try await redis.withConnection(deadline: .now + .milliseconds(300), ping) }
        let first = Task { try await redis.withConnection(ping) }
        let second = Task { try await redis.withConnection(ping) }
        try await until("four waiters queue") { redis.poolUsage.waiting == 4 }

        cancelled.cancel()
        await #expect(throws: CancellationError.self) { try await cancelled.value }
        let timeout = await #expect(throws: RedisError.self) { try await impatient.value }
        #expect(timeout?.code == .timeout)
        #expect(redis.poolUsage.waiting == 2, "the cancelled and timed-out waiters left the queue")

        // A's read returns and its body throws: its connection is closed, and its slot serves `first`
        // with a new connection (the wake-up the pool used to lose).
        _ = try await redis.send("RPUSH", listA, "x")
        await #expect(throws: Dropped.self) { try await holderA.value }
        let firstID = try await first.value
        _ = try await redis.send("RPUSH", listB, "y")
        #expect(try await holderB.value == "y")
        let secondID = try await second.value
        let discardedID = holderAID.withLock { $0 }
        #expect(
            discardedID > 0 && firstID != discardedID && secondID != discardedID, "a discarded connection was reused")

        #expect(redis.poolUsage.waiting == 0)
        #expect(redis.poolUsage.slots <= 2)
        _ = try await redis.send("DEL", listA, listB)
    }

    @Test("A discarded connection is closed on the server")
    func discardClosesTheConnection() async throws {
        let redis = try RedisClient(configuration: try RedisConfiguration(url: TestRedis.url), poolSize: 1)
        defer { redis.close() }
        var discarded: Int64 = -1
        do {
            try await redis.withConnection { connection in
                discarded = try await connection.send(RedisCommand("CLIENT", "ID")).integer ?? -1
                throw Dropped()
            }
        } catch is Dropped {}
        #expect(discarded > 0)
        try await until("the server no longer lists the discarded connection") {
            let list = try await redis.send("CLIENT", "LIST", "ID", RedisArgument(discarded)).string ?? ""
            return list.isEmpty
        }
        let next = try await redis.withConnection { try await $0.send(RedisCommand("CLIENT", "ID")).integer ?? -1 }
        #expect(next != discarded, "the pool reused a discarded connection")
    }

    @Test("Several shared connections take commands in turn; concurrent callers all get their replies")
    func sharedConnectionsInTurn() async throws {
        let redis = try RedisClient(
            configuration: try RedisConfiguration(url: TestRedis.url), poolSize: 1, sharedConnections: 3)
        defer { redis.close() }
        var ids: Set<Int64> = []
        for _ in 0..<6 { ids.insert(try await redis.send("CLIENT", "ID").integer ?? -1) }
        #expect(ids.count == 3, "commands did not go round the three connections: \(ids)")
        let key = RedisArgument(TestRedis.uniquePrefix() + "n")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<300 { group.addTask { _ = try await redis.send("INCR", key) } }
            try await group.waitForAll()
        }
        #expect(try await redis.send("GET", key).string == "300")
        _ = try await redis.send("DEL", key)
    }
}
