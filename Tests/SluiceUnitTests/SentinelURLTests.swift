import SluiceRedis
import Testing

@Suite("Redis Sentinel URLs, without a server")
struct SentinelURLTests {
    @Test("redis-sentinel:// in Lettuce's form: sentinels, default port 26379, database, credentials, name")
    func sentinelURLs() throws {
        let full = try RedisConfiguration(
            url: "redis-sentinel://agent:p%40ss@s1.internal:26380,s2.internal,[::1]:26381/3#my%20primary")
        let sentinel = try #require(full.sentinel)
        #expect(sentinel.primaryName == "my primary")
        #expect(
            sentinel.sentinels == [
                .tcp(host: "s1.internal", port: 26380), .tcp(host: "s2.internal", port: 26379),
                .tcp(host: "::1", port: 26381),
            ])
        // The credentials and the database are the primary's; the sentinels have none unless given.
        #expect(full.username == "agent" && full.password == "p@ss" && full.database == 3)
        #expect(sentinel.username == nil && sentinel.password == nil)
        #expect(full.tls == nil)

        let single = try RedisConfiguration(url: "redis-sentinel://127.0.0.1:26379#mymaster")
        #expect(single.sentinel?.sentinels == [.tcp(host: "127.0.0.1", port: 26379)])
        #expect(single.sentinel?.primaryName == "mymaster")
        #expect(single.database == 0 && single.password == nil)

        let withSentinelAuth = try RedisConfiguration(
            url: "redis-sentinel://:primary-pw@h:1?sentinel-username=watch&sentinel-password=s%26pw#p")
        #expect(withSentinelAuth.password == "primary-pw")
        #expect(withSentinelAuth.sentinel?.username == "watch" && withSentinelAuth.sentinel?.password == "s&pw")

        let tls = try RedisConfiguration(url: "rediss-sentinel://h1:1,h2:2?tls-ca-cert-file=/etc/ca.pem#p")
        #expect(tls.tls?.caCertificateFile == "/etc/ca.pem")
        #expect(tls.sentinel?.sentinels.count == 2)

        // Plain URLs have no sentinel.
        #expect(try RedisConfiguration(url: "redis://h:1").sentinel == nil)
    }

    @Test("A sentinel URL without a primary name, or with a bad address, is a typed error")
    func invalidSentinelURLs() {
        for url in [
            "redis-sentinel://h:26379", "redis-sentinel://h:26379#", "redis-sentinel://h:notaport#p",
            "redis-sentinel://h1:1,,h2:2#p", "redis-sentinel://h:1/abc#p", "redis-sentinel://h:0#p",
        ] {
            let error = #expect(throws: RedisError.self, "\(url)") { try RedisConfiguration(url: url) }
            #expect(error?.code == .invalidURL, "\(url)")
        }
    }

    @Test("No password (the primary's or the sentinels') in any description; the redacted URL reads back")
    func noSecretInSentinelDescriptions() throws {
        let configuration = try RedisConfiguration(
            url: "redis-sentinel://agent:hunter2-secret@s1:26380,s2:26381/2?sentinel-password=hunter2-too#prim")
        var dumped = ""
        dump(configuration, to: &dumped)
        var sentinelDumped = ""
        dump(configuration.sentinel, to: &sentinelDumped)
        for text in [
            "\(configuration)", String(reflecting: configuration), dumped, configuration.redactedURL,
            "\(configuration.sentinel as Any)", String(reflecting: configuration.sentinel), sentinelDumped,
        ] {
            #expect(!text.contains("hunter2"), "\(text)")
        }
        #expect(
            configuration.redactedURL == "redis-sentinel://agent:***@s1:26380,s2:26381/2?sentinel-password=***#prim")
        let back = try RedisConfiguration(url: configuration.redactedURL)
        #expect(back.sentinel?.sentinels == configuration.sentinel?.sentinels)
        #expect(back.sentinel?.primaryName == "prim" && back.username == "agent" && back.database == 2)
    }

    @Test("An unknown primary name is a setting to fix, not an outage")
    func unknownPrimaryIsNotAConnectionFailure() {
        #expect(!RedisError(.unknownPrimary, "no primary named x").isConnectionFailure)
        #expect(RedisError.Code.unknownPrimary.description == "unknownPrimary")
    }
}
