import SluiceRedis
import Testing

@Suite("Redis client, without a server")
struct RedisClientUnitTests {
    @Test func urls() throws {
        let plain = try RedisConfiguration(url: "redis://cache.internal:6380/4")
        #expect(plain.endpoint == .tcp(host: "cache.internal", port: 6380))
        #expect(plain.database == 4)
        #expect(plain.password == nil)

        let credentials = try RedisConfiguration(url: "redis://agent:p%40ss%3Aword@10.0.0.1")
        #expect(credentials.username == "agent")
        #expect(credentials.password == "p@ss:word")
        #expect(credentials.endpoint == .tcp(host: "10.0.0.1", port: 6379))

        let passwordOnly = try RedisConfiguration(url: "redis://:secret@localhost:7000")
        #expect(passwordOnly.username == nil)
        #expect(passwordOnly.password == "secret")

        let ipv6 = try RedisConfiguration(url: "redis://[::1]:6390")
        #expect(ipv6.endpoint == .tcp(host: "::1", port: 6390))

        let socket = try RedisConfiguration(url: "unix:///run/redis/redis.sock?db=2")
        #expect(socket.endpoint == .unixSocket(path: "/run/redis/redis.sock"))
        #expect(socket.database == 2)
    }

    @Test func invalidURLsAreTypedErrors() {
        for url in [
            "http://x", "redis://host:notaport", "redis://host:0", "redis://host:70000", "redis://host/abc",
            "unix://relative",
        ] {
            let error = #expect(throws: RedisError.self, "\(url)") { try RedisConfiguration(url: url) }
            #expect(error?.code == .invalidURL)
        }
    }

    @Test func scriptDigestsMatchRedis() {
        // Digests as `redis-cli SCRIPT LOAD` reports them.
        #expect(RedisScript(name: "one", source: "return 1").sha1 == "e0e1f9fabfc9d4800c877a703b823ac0578ff8db")
        #expect(RedisScript(name: "empty", source: "").sha1 == "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        let long = String(repeating: "redis.call('PING') ", count: 100)
        #expect(RedisScript(name: "long", source: long).sha1.count == 40)
    }

    @Test func serverErrorPrefix() {
        #expect(RedisError(.server, "NOSCRIPT No matching script. Please use EVAL.").serverPrefix == "NOSCRIPT")
        #expect(RedisError(.server, "WRONGTYPE Operation against a key").serverPrefix == "WRONGTYPE")
        #expect(RedisError(.io, "Connection reset").serverPrefix == nil)
        #expect(RedisError(.timeout, "x").isConnectionFailure)
        #expect(!RedisError(.server, "ERR x").isConnectionFailure)
    }

    @Test func durationsOfCenturiesDoNotOverflow() async throws {
        var configuration = RedisConfiguration()
        configuration.commandTimeout = .seconds(Int64.max)
        configuration.reconnectBackoff = .init(initial: .seconds(Int64.max), maximum: .seconds(Int64.max))
        let connection = try RedisConnection(configuration: configuration)
        connection.close()
    }

    @Test func valueAccessors() {
        #expect(RedisValue.bulkString(Array("12".utf8)).integer == 12)
        #expect(RedisValue.bulkString(Array("0.25".utf8)).double == 0.25)
        #expect(RedisValue.integer(7).string == "7")
        #expect(RedisValue.null.isNull)
        #expect(RedisValue.array([.integer(1)]).array == [.integer(1)])
    }
}
