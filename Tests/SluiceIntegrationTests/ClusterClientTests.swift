import Foundation
import SluiceRedis
import Testing

@testable import Sluice

/// The client on the shared Redis Cluster of the run (`REDIS_CLUSTER_URL`, three primaries with a replica each):
/// found from any node's URL, commands routed by slot.
@Suite("Redis client on a Redis Cluster", .serialized, .enabled(if: TestRedis.clusterURL != nil))
struct ClusterClientTests {
    private func client(_ url: String? = nil) throws -> RedisClient {
        var configuration = try RedisConfiguration(url: url ?? TestRedis.clusterURL!)
        configuration.commandTimeout = .seconds(5)
        return try RedisClient(configuration: configuration)
    }

    /// Plain connections to every primary, to look at where keys are.
    private func primaryConnections(_ client: RedisClient) async throws -> [RedisConnection] {
        try await client.primaries().map { address in
            let url = "redis://\(address)"
            return try RedisConnection(configuration: RedisConfiguration(url: url))
        }
    }

    @Test("Any node's URL finds the cluster; keys of many slots land on their primaries and read back")
    func routesBySlot() async throws {
        let redis = try client()
        defer { redis.close() }
        #expect(try await redis.isCluster())
        #expect(try await redis.primaries().count == 3)
        let prefix = TestRedis.uniquePrefix()
        let keys = (0..<200).map { "\(prefix)\($0)" }
        #expect(Set(keys.map { HashSlot.of($0) }).count > 150)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for key in keys {
                group.addTask {
                    _ = try await redis.send("SET", RedisArgument(key), RedisArgument(key), "PX", 60_000)
                }
            }
            try await group.waitForAll()
        }
        for key in keys { #expect(try await redis.send("GET", RedisArgument(key)).string == key) }
        // Each primary holds only its slots' keys, and between them all of them.
        let connections = try await primaryConnections(redis)
        defer { connections.forEach { $0.close() } }
        var total = 0
        for connection in connections {
            // A primary answers MOVED for a key it does not serve, so look with SCAN.
            var held: Set<String> = []
            var cursor = "0"
            repeat {
                let reply = try await connection.send(
                    RedisCommand("SCAN", RedisArgument(cursor), "MATCH", RedisArgument(prefix + "*"), "COUNT", 1000))
                cursor = reply.array?[0].string ?? "0"
                for key in reply.array?[1].array ?? [] { if let key = key.string { held.insert(key) } }
            } while cursor != "0"
            #expect(held.count > 20, "a primary holds \(held.count) of 200 keys")
            total += held.count
        }
        #expect(total == keys.count)
        let deleted = try await redis.pipeline(keys.map { RedisCommand("DEL", RedisArgument($0)) })
        #expect(deleted.allSatisfy { $0 == .integer(1) })
    }

    @Test("A replica's URL works too")
    func throughAReplica() async throws {
        let seed = try client()
        defer { seed.close() }
        let nodes = try await seed.send("CLUSTER", "NODES").string ?? ""
        let replica = try #require(
            nodes.split(separator: "\n").first { $0.contains(" slave ") }?.split(separator: " ")[1]
                .split(separator: "@").first)
        let redis = try client("redis://\(replica)")
        defer { redis.close() }
        let key = RedisArgument(TestRedis.uniquePrefix() + "r")
        _ = try await redis.send("SET", key, "v", "PX", 60_000)
        #expect(try await redis.send("GET", key).string == "v")
    }

    @Test("Keys of different slots in one command are refused before sending; one hash tag makes them one slot")
    func crossSlotRefused() async throws {
        let redis = try client()
        defer { redis.close() }
        let prefix = TestRedis.uniquePrefix()
        let error = await #expect(throws: RedisError.self) {
            try await redis.send("MSET", RedisArgument(prefix + "a"), "1", RedisArgument(prefix + "b"), "2")
        }
        #expect(error?.code == .crossSlot)
        #expect(try await redis.send("EXISTS", RedisArgument(prefix + "a")) == .integer(0))
        let a = RedisArgument("{\(prefix)}a")
        let b = RedisArgument("{\(prefix)}b")
        _ = try await redis.send("MSET", a, "1", b, "2")
        #expect(try await redis.send("MGET", a, b) == .array([.bulkString([49]), .bulkString([50])]))
        _ = try await redis.send("DEL", a, b)
    }

    @Test("Scripts go by the keys after numkeys; EVALSHA falls back to EVAL on the right node")
    func scripts() async throws {
        let redis = try client()
        defer { redis.close() }
        let script = RedisScript(
            name: "t", source: "redis.call('SET', KEYS[1], ARGV[1], 'PX', 60000) return redis.call('GET', KEYS[1])")
        var keys: [RedisArgument] = []
        for index in 0..<30 {
            let key = RedisArgument(TestRedis.uniquePrefix() + "s\(index)")
            keys.append(key)
            #expect(
                try await redis.evalScript(script, keys: [key], arguments: [RedisArgument("x\(index)")]).string
                    == "x\(index)")
        }
        _ = try await redis.sendToEveryPrimary(RedisCommand("SCRIPT", "FLUSH"))
        #expect(try await redis.evalScript(script, keys: [keys[0]], arguments: ["again"]).string == "again")
        for key in keys { _ = try await redis.send("DEL", key) }
    }

    @Test("A pipeline over many primaries answers in order; MULTI … EXEC stays with its keys")
    func pipelines() async throws {
        let redis = try client()
        defer { redis.close() }
        let prefix = TestRedis.uniquePrefix()
        let keys = (0..<50).map { RedisArgument("\(prefix)p\($0)") }
        let sets = try await redis.pipeline(keys.map { RedisCommand("SET", $0, $0, "PX", 60_000) })
        #expect(sets.allSatisfy { $0 == .simpleString("OK") })
        let gets = try await redis.pipeline(keys.map { RedisCommand("GET", $0) })
        #expect(gets == keys.map { .bulkString($0.bytes) })
        let tx = RedisArgument("{\(prefix)}tx")
        let replies = try await redis.pipeline([
            RedisCommand("MULTI"), RedisCommand("SET", tx, "1", "PX", 60_000), RedisCommand("INCR", tx),
            RedisCommand("EXEC"),
        ])
        #expect(replies.last == .array([.simpleString("OK"), .integer(2)]))
        _ = try await redis.pipeline((keys + [tx]).map { RedisCommand("DEL", $0) })
    }

    @Test("Loading a function reaches every primary; a primary that lost it gets it again on the next call")
    func functionsOnEveryPrimary() async throws {
        let redis = try client()
        defer { redis.close() }
        try await SluiceFunctions.load(on: redis)
        let connections = try await primaryConnections(redis)
        defer { connections.forEach { $0.close() } }
        for connection in connections {
            let list = try await connection.send(
                RedisCommand("FUNCTION", "LIST", "LIBRARYNAME", RedisArgument(SluiceFunctions.libraryName)))
            #expect(list.array?.count == 1)
        }
        // One primary loses the library (a restart without persistence, a new node): the next decision there
        // answers "Function not found", and the client loads it again.
        let partition = "cl-\(UUID().uuidString.prefix(8))"
        let slot = HashSlot.of(partition)
        let port = try #require(Self.ownerPort(try await redis.send("CLUSTER", "SLOTS"), slot: slot))
        let ownerConnection = try RedisConnection(configuration: RedisConfiguration(url: "redis://127.0.0.1:\(port)"))
        defer { ownerConnection.close() }
        _ = try await ownerConnection.send(
            RedisCommand("FUNCTION", "DELETE", RedisArgument(SluiceFunctions.libraryName)))
        let limiter = try Limiter(
            client: redis, configuration: .init(defaults: ["global": "requests: bucket rate=1/d burst=5"]))
        let decision = try await limiter.decide(try ScopePath("global=\(partition)"), cost: ["requests": 1])
        #expect(decision.allowed)
        let list = try await ownerConnection.send(
            RedisCommand("FUNCTION", "LIST", "LIBRARYNAME", RedisArgument(SluiceFunctions.libraryName)))
        #expect(list.array?.count == 1)
        for key in try await redis.scanKeys(matching: "sluice:{\(partition)}:*") {
            _ = try await redis.send("DEL", RedisArgument(key))
        }
    }

    /// The port of the primary that serves `slot`, from a `CLUSTER SLOTS` reply.
    static func ownerPort(_ reply: RedisValue, slot: Int) -> Int? {
        for range in reply.array ?? [] {
            guard let parts = range.array, parts.count >= 3, let low = parts[0].integer, let high = parts[1].integer,
                (low...high).contains(Int64(slot))
            else { continue }
            return parts[2].array?[1].integer.map(Int.init)
        }
        return nil
    }

    @Test("Every primary answers commands about servers; a scan visits every primary")
    func everyPrimary() async throws {
        let redis = try client()
        defer { redis.close() }
        #expect(try await redis.sendToEveryPrimary(RedisCommand("PING")).count == 3)
        let prefix = TestRedis.uniquePrefix()
        let keys = (0..<60).map { "\(prefix)\($0)" }
        _ = try await redis.pipeline(keys.map { RedisCommand("SET", RedisArgument($0), "1", "PX", 60_000) })
        let found = try await redis.scanKeys(matching: prefix + "*")
        #expect(Set(found) == Set(keys))
        // Bounded: within the calls allowed, the same keys, complete; with one call per primary, a part of them, and
        // complete only when that part is all of them.
        let bounded = try await redis.scanKeys(matching: prefix + "*", mostCallsPerNode: 1_000)
        #expect(bounded.complete && Set(bounded.keys) == Set(keys))
        let once = try await redis.scanKeys(matching: prefix + "*", mostCallsPerNode: 1)
        #expect(Set(once.keys).isSubset(of: Set(keys)))
        if once.complete { #expect(Set(once.keys) == Set(keys)) }
        _ = try await redis.pipeline(keys.map { RedisCommand("DEL", RedisArgument($0)) })
    }

    @Test("The operators' fleet view finds the partitions of every primary")
    func fleetViewOnEveryPrimary() async throws {
        let redis = try client()
        defer { redis.close() }
        let prefix = TestRedis.uniquePrefix()
        let partitions = (0..<24).map { "\(prefix)p\($0)" }
        let log = EventLog(redis: redis)
        for partition in partitions { try await log.record(partition: partition, type: "t", fields: []) }
        let events = partitions.map { PartitionKeys(partition: $0).events }
        let primaries = try await primaryConnections(redis)
        defer { primaries.forEach { $0.close() } }
        var holding = 0
        for connection in primaries {
            let held = try await connection.send(
                RedisCommand(
                    "SCAN", ["0", "MATCH", RedisArgument("sluice:{\(KeyName.escape(prefix))*"), "COUNT", "100000"]))
            if !(held.array?[1].array ?? []).isEmpty { holding += 1 }
        }
        #expect(holding > 1, "the partitions spread over the primaries")
        let found = Set(try await FleetReader(redis: redis).partitions())
        #expect(found.isSuperset(of: partitions), "missing: \(Set(partitions).subtracting(found).sorted())")
        let snapshot = try await FleetReader(redis: redis).snapshot(partitions[5])
        #expect(snapshot.streamLength == 1)
        _ = try await redis.pipeline(events.map { RedisCommand("DEL", $0) })
    }

    @Test("A blocking read on a connection of its own goes to the key's primary")
    func blockingRead() async throws {
        let redis = try client()
        defer { redis.close() }
        let key = RedisArgument(TestRedis.uniquePrefix() + "list")
        async let popped = redis.withConnection(routingKey: key) { connection in
            try await connection.send(RedisCommand("BLPOP", key, "3"))
        }
        try await Task.sleep(for: .milliseconds(100))
        _ = try await redis.send("RPUSH", key, "woken")
        #expect(try await popped.array?.last?.string == "woken")
    }

    @Test("Commands the table does not know are routed by COMMAND INFO, or COMMAND GETKEYS when their keys move")
    func unknownCommands() async throws {
        let redis = try client()
        defer { redis.close() }
        let tag = TestRedis.uniquePrefix()
        let a = RedisArgument("{\(tag)}a")
        let b = RedisArgument("{\(tag)}b")
        let union = RedisArgument("{\(tag)}u")
        _ = try await redis.send("SADD", a, "1", "2")
        _ = try await redis.send("SADD", b, "2", "3")
        #expect(try await redis.send("SUNIONSTORE", union, a, b) == .integer(3))
        #expect(try await redis.send("SINTERCARD", 2, a, b) == .integer(1))
        let error = await #expect(throws: RedisError.self) {
            try await redis.send("SINTERCARD", 2, a, RedisArgument(tag + "elsewhere"))
        }
        #expect(error?.code == .crossSlot)
        _ = try await redis.send("DEL", a, b, union)
    }

    @Test("A single server is not taken for a cluster")
    func singleServer() async throws {
        let redis = try TestRedis.client()
        defer { redis.close() }
        guard !TestRedis.onCluster else { return }
        #expect(try await redis.isCluster() == false)
        #expect(try await redis.sendToEveryPrimary(RedisCommand("PING")) == [.simpleString("PONG")])
    }
}
