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
            // Unknown, misspelt or misplaced options are refused rather than ignored.
            "redis://host?tls-ca-cert-file=/ca.pem", "rediss://host?tls-ca-cert=/ca.pem", "redis://host?db=2",
            "rediss://host?sentinel-password=x", "redis-sentinel://s1?timeout=1#p", "unix:///run/r.sock?database=1",
            "rediss://host?tls-ca-cert-file", "redis-sentinel://s1?database=2#p",
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
        // Longer than one 64-byte block (digest from Python's hashlib).
        #expect(RedisScript(name: "long", source: long).sha1 == "6fbcb94f28480f3d90781f810b49b7d5f01ecd79")
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

    @Test("Replies decode as a connection reads them: every type, nested, binary-safe, several in a row")
    func replyDecoding() {
        let stream =
            "+OK\r\n:-42\r\n$5\r\nhe\0lo\r\n$-1\r\n-ERR wrong type\r\n*3\r\n:1\r\n*1\r\n$0\r\n\r\n-inner\r\n*-1\r\n"
        let decoded = RESPReplyDecoder.decode(Array(stream.utf8))
        #expect(decoded.error == nil)
        #expect(
            decoded.replies == [
                .simpleString("OK"), .integer(-42), .bulkString(Array("he\0lo".utf8)), .null, .error("ERR wrong type"),
                .array([.integer(1), .array([.bulkString([])]), .error("inner")]), .null,
            ])
        // An incomplete reply at the end is no reply (yet), and no error.
        let partial = RESPReplyDecoder.decode(Array("$5\r\nhel".utf8))
        #expect(partial.replies.isEmpty && partial.error == nil)
        // A protocol error stops the reader; what came before it stands.
        let broken = RESPReplyDecoder.decode(Array(":1\r\n?what\r\n".utf8))
        #expect(broken.replies == [.integer(1)])
        #expect(broken.error != nil)
    }

    // Found by Fuzz/FuzzRESPReplies: hiredis reserved 8 bytes per announced element before any arrived, so 12 bytes
    // from a peer reserved 2.4 GB. Arrays are capped at 4,194,304 elements (on connections too, shim.h).
    @Test("An array header announcing millions of elements is refused before anything is reserved")
    func hugeArrayHeadersAreRefused() {
        for header in ["*300000000\r\n", "*2147483647\r\n", "*4194305\r\n", "*1\r\n*300000000\r\n"] {
            let decoded = RESPReplyDecoder.decode(Array(header.utf8))
            #expect(decoded.replies.isEmpty, "\(header)")
            #expect(decoded.error != nil, "\(header)")
        }
        // Up to the cap, an array is only reserved (nothing refused), and completes when its elements arrive.
        #expect(RESPReplyDecoder.decode(Array("*4194304\r\n".utf8)).error == nil)
        let elements = String(repeating: ":7\r\n", count: 1000)
        #expect(RESPReplyDecoder.decode(Array("*1000\r\n\(elements)".utf8)).replies.first?.array?.count == 1000)
    }

    @Test func tlsURLs() throws {
        let plain = try RedisConfiguration(url: "rediss://cache.example.com:6380/2")
        #expect(plain.endpoint == .tcp(host: "cache.example.com", port: 6380))
        #expect(plain.database == 2)
        #expect(plain.tls == RedisConfiguration.TLS())
        #expect(try RedisConfiguration(url: "redis://h").tls == nil)

        let files = try RedisConfiguration(
            url: "rediss://:pw@10.1.2.3?tls-ca-cert-file=/etc/ca.pem&tls-cert-file=/etc/c%20crt.pem"
                + "&tls-key-file=/etc/k.pem&tls-server-name=redis.internal")
        #expect(files.endpoint == .tcp(host: "10.1.2.3", port: 6379))
        #expect(files.password == "pw")
        #expect(
            files.tls
                == RedisConfiguration.TLS(
                    caCertificateFile: "/etc/ca.pem", certificateFile: "/etc/c crt.pem", keyFile: "/etc/k.pem",
                    serverName: "redis.internal"))
    }

    @Test func tlsOverAUnixSocketIsRefused() {
        var configuration = RedisConfiguration(endpoint: .unixSocket(path: "/tmp/redis.sock"))
        configuration.tls = .init()
        let error = #expect(throws: RedisError.self) { try RedisConnection(configuration: configuration) }
        #expect(error?.code == .tlsConfiguration)
    }

    @Test func noSecretInAnyDescription() throws {
        let configurations = [
            try RedisConfiguration(url: "redis://agent:hunter2-secret@cache:6380/4"),
            try RedisConfiguration(url: "rediss://:hunter2-secret@cache?tls-ca-cert-file=/ca.pem"),
            try RedisConfiguration(url: "redis://hunter2-secret@cache"),
            try RedisConfiguration(url: "unix:///run/redis.sock?password=hunter2-secret&db=2"),
        ]
        for configuration in configurations {
            #expect(configuration.password == "hunter2-secret")
            var dumped = ""
            dump(configuration, to: &dumped)
            for text in [
                "\(configuration)", String(describing: configuration), String(reflecting: configuration), dumped,
                configuration.redactedURL, "\([configuration])", "\(Optional(configuration) as Any)",
            ] {
                #expect(!text.contains("hunter2"), "\(text)")
            }
        }
        #expect(configurations[0].redactedURL == "redis://agent:***@cache:6380/4")
        #expect(configurations[1].redactedURL == "rediss://:***@cache:6379")
        #expect(configurations[3].redactedURL == "unix:///run/redis.sock?db=2&password=***")
        // The redacted URL reads back as the same place.
        let back = try RedisConfiguration(url: configurations[0].redactedURL)
        #expect(back.endpoint == configurations[0].endpoint && back.username == "agent" && back.database == 4)
    }

    @Test func errorKinds() {
        #expect(!RedisError(.unexpectedReply, "decide replied with 3 items").isConnectionFailure)
        #expect(!RedisError(.cancelled, "x").isConnectionFailure)
        #expect(!RedisError(.requiresDedicatedConnection, "x").isConnectionFailure)
        #expect(!RedisError(.tlsUntrustedCertificate, "x").isConnectionFailure)
        #expect(RedisError(.tlsHandshake, "x").isConnectionFailure)
        #expect(RedisError(.protocolError, "x").isConnectionFailure)
    }

    @Test func sharedConnectionsRefuseBlockingCommandsBeforeSending() async throws {
        // Nothing listens on port 1: a command that was sent would fail with a connection error instead.
        let redis = try RedisClient(url: "redis://127.0.0.1:1")
        defer { redis.close() }
        for command in [
            RedisCommand("BLPOP", "k", "0"), RedisCommand("XREAD", "BLOCK", "0", "STREAMS", "s", "$"),
            RedisCommand("select", "2"), RedisCommand("MULTI"), RedisCommand("WAIT", "1", "0"),
        ] {
            let error = await #expect(throws: RedisError.self) { try await redis.send(command) }
            #expect(error?.code == .requiresDedicatedConnection, "\(command.name)")
        }
        let subscribe = await #expect(throws: RedisError.self) { try await redis.send(RedisCommand("SUBSCRIBE", "c")) }
        #expect(subscribe?.code == .unsupportedCommand)
        for command in [
            RedisCommand("EVALSHA", "0", "0"), RedisCommand("XREAD", "STREAMS", "s", "0"),
            RedisCommand("SET", "k", "v"),
        ] {
            let error = await #expect(throws: RedisError.self) { try await redis.send(command) }
            #expect(error?.isConnectionFailure == true, "\(command.name) was sent: \(String(describing: error))")
        }
    }
}
