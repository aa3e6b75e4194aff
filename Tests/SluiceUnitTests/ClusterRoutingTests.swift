import Testing

@testable import SluiceRedis

/// Integers in literal replies (`CLUSTER SLOTS` ranges, `COMMAND INFO` positions).
extension RedisValue: ExpressibleByIntegerLiteral {
    public init(integerLiteral value: Int64) { self = .integer(value) }
}

@Suite("Cluster routing: hash slots, key positions, slot maps")
struct ClusterRoutingTests {
    @Test("CRC16 (XMODEM) and slots match Redis' own values")
    func slots() {
        #expect(HashSlot.crc16(Array("123456789".utf8)) == 0x31C3)
        // Values from `CLUSTER KEYSLOT` on Redis 7.
        #expect(HashSlot.of("foo") == 12182)
        #expect(HashSlot.of("bar") == 5061)
        #expect(HashSlot.of("") == 0)
        #expect(HashSlot.of("sluice:{openai}:quotas") == HashSlot.of("openai"))
    }

    @Test(
        "Hash tags: the first {…} with something inside; an empty one hashes the whole key",
        arguments: [
            ("{user1000}.following", "user1000"), ("foo{bar}{zap}", "bar"), ("foo{{bar}}zap", "{bar"),
            ("a{b}c{", "b"),
        ])
    func hashTags(key: String, tag: String) {
        #expect(HashSlot.of(key) == HashSlot.of(tag))
    }

    @Test("A key with an empty tag or no closing brace hashes whole")
    func noTag() {
        #expect(HashSlot.of("foo{}{bar}") == Int(HashSlot.crc16(Array("foo{}{bar}".utf8)) & 0x3FFF))
        #expect(HashSlot.of("foo{bar") == Int(HashSlot.crc16(Array("foo{bar".utf8)) & 0x3FFF))
    }

    private func route(_ name: String, _ arguments: [RedisArgument]) throws -> ClusterRoute {
        let command = RedisCommand(name, arguments)
        let parsed = try #require(EncodedArguments(command.encoded))
        let rule = parsed.resolve(KeyRule.rule(for: name))
        if case .everyPrimary = rule { return .everyPrimary }
        let positions = try #require(parsed.keyPositions(rule))
        return try ClusterRoute.forKeys(positions, of: parsed, command: name)
    }

    @Test("Scripts and functions: the keys come after numkeys, the arguments after them do not count")
    func scriptKeys() throws {
        #expect(try route("FCALL", ["f", 2, "{t}a", "{t}b", "other", "keys?"]) == .slot(HashSlot.of("t")))
        #expect(try route("EVALSHA", ["sha", 1, "foo", "bar"]) == .slot(HashSlot.of("foo")))
        #expect(try route("eval", ["return 1", 0, "foo"]) == .anyPrimary)
        #expect(throws: RedisError.self) { try route("FCALL", ["f", 2, "foo", "bar"]) }
    }

    @Test("Commands spanning slots are refused with crossSlot; a shared hash tag passes")
    func crossSlot() throws {
        do {
            _ = try route("MGET", ["foo", "bar"])
            Issue.record("MGET over two slots was not refused")
        } catch let error as RedisError {
            #expect(error.code == .crossSlot)
            #expect(!error.message.contains("foo"), "an error must not show keys")
        }
        #expect(try route("MGET", ["{x}foo", "{x}bar"]) == .slot(HashSlot.of("x")))
        #expect(try route("MSET", ["{x}a", "1", "{x}b", "2"]) == .slot(HashSlot.of("x")))
        #expect(try route("DEL", ["foo"]) == .slot(HashSlot.of("foo")))
    }

    @Test("Other key positions: blocking pops, streams, subcommands")
    func positions() throws {
        #expect(try route("BLPOP", ["foo", "1.5"]) == .slot(HashSlot.of("foo")))
        #expect(
            try route("XREAD", ["BLOCK", 100, "STREAMS", "{s}a", "{s}b", "$", "$"]) == .slot(HashSlot.of("s")))
        #expect(throws: RedisError.self) { try route("XREAD", ["STREAMS", "foo", "bar", "$", "$"]) }
        #expect(try route("OBJECT", ["ENCODING", "foo"]) == .slot(HashSlot.of("foo")))
        #expect(try route("PING", []) == .anyPrimary)
        #expect(try route("SCAN", ["0"]) == .anyPrimary)
    }

    @Test("Loading code reaches every primary; looking at it does not")
    func broadcast() throws {
        #expect(try route("FUNCTION", ["LOAD", "REPLACE", "#!lua name=x"]) == .everyPrimary)
        #expect(try route("function", ["delete", "x"]) == .everyPrimary)
        #expect(try route("SCRIPT", ["LOAD", "return 1"]) == .everyPrimary)
        #expect(try route("FUNCTION", ["LIST"]) == .anyPrimary)
        #expect(try route("SCRIPT", ["EXISTS", "abc"]) == .anyPrimary)
        #expect(try route("FLUSHALL", []) == .everyPrimary)
    }

    @Test("Binary keys parse from the encoded command")
    func binaryKeys() throws {
        let key = RedisArgument(bytes: [0, 13, 10, 0x7B, 0x61, 0x7D, 255])
        #expect(try route("GET", [key]) == .slot(HashSlot.of("a")))
    }

    @Test("COMMAND INFO describes commands the table does not know")
    func commandInfo() {
        let getex: RedisValue = .array([
            .array([.bulkString(Array("getex".utf8)), .integer(-2), .array([.simpleString("write")]), 1, 1, 1])
        ])
        #expect(ClusterRouter.rule(fromCommandInfo: getex) == .positions(first: 1, last: 1, step: 1))
        let movable: RedisValue = .array([
            .array([.bulkString(Array("zunion".utf8)), .integer(-3), .array([.simpleString("movablekeys")]), 0, 0, 0])
        ])
        #expect(ClusterRouter.rule(fromCommandInfo: movable) == .movable)
        #expect(ClusterRouter.rule(fromCommandInfo: .array([.null])) == KeyRule.none)
    }

    private func text(_ string: String) -> RedisValue { .bulkString(Array(string.utf8)) }

    @Test("A CLUSTER SHARDS reply becomes a slot map; a failed primary without slots is left out")
    func shards() throws {
        func node(_ port: Int, _ role: String, _ health: String = "online", endpoint: String = "127.0.0.1")
            -> RedisValue
        {
            .array([
                text("id"), text("x"), text("port"), .integer(Int64(port)), text("ip"), text("127.0.0.1"),
                text("endpoint"), text(endpoint), text("role"), text(role), text("health"), text(health),
            ])
        }
        let reply: RedisValue = .array([
            .array([
                text("slots"), .array([0, 99, 200, 300]), text("nodes"),
                .array([node(7001, "master"), node(7004, "replica")]),
            ]),
            .array([
                text("slots"), .array([100, 199]), text("nodes"),
                .array([node(7002, "replica", "failed"), node(7005, "master", endpoint: "?")]),
            ]),
            .array([text("slots"), .array([]), text("nodes"), .array([node(7003, "master", "failed")])]),
        ])
        let topology = try #require(ClusterTopology.fromShards(reply, askedHost: "localhost"))
        #expect(topology.primary(forSlot: 0) == NodeAddress(host: "127.0.0.1", port: 7001))
        #expect(topology.primary(forSlot: 250) == NodeAddress(host: "127.0.0.1", port: 7001))
        #expect(topology.primary(forSlot: 150) == NodeAddress(host: "127.0.0.1", port: 7005))
        #expect(topology.primary(forSlot: 301) == nil)
        #expect(topology.primaries.count == 2)
        #expect(topology.replicas == [NodeAddress(host: "127.0.0.1", port: 7004)])
        #expect(topology.servedSlots == 100 + 101 + 100)
    }

    @Test("A CLUSTER SLOTS reply becomes the same map; an unknown endpoint is the node asked")
    func slotsReply() throws {
        let reply: RedisValue = .array([
            .array([
                0, 8191, .array([text("127.0.0.1"), 7001, text("a")]), .array([text("127.0.0.1"), 7004, text("b")]),
            ]),
            .array([8192, 16383, .array([text("?"), 7002, text("c")])]),
        ])
        let topology = try #require(ClusterTopology.fromSlots(reply, askedHost: "10.0.0.9"))
        #expect(topology.primary(forSlot: 8191)?.port == 7001)
        #expect(topology.primary(forSlot: 16383) == NodeAddress(host: "10.0.0.9", port: 7002))
        #expect(topology.servedSlots == HashSlot.count)
    }

    @Test("MOVED and ASK name nodes as host:port, IPv6 in brackets")
    func addresses() {
        #expect(NodeAddress("127.0.0.1:7002") == NodeAddress(host: "127.0.0.1", port: 7002))
        #expect(NodeAddress("[::1]:7002") == NodeAddress(host: "::1", port: 7002))
        #expect(NodeAddress("nonsense") == nil)
        #expect(NodeAddress(host: "::1", port: 1).description == "[::1]:1")
    }
}
