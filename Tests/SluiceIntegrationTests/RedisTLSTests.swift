import Foundation
import SluiceRedis
import Testing

/// `rediss://` against TLS redis-servers of the tests' own, with certificates made by `openssl`
/// for the run: the right CA, another CA, a certificate for another host, mutual TLS.
@Suite("Redis over TLS", .serialized)
struct RedisTLSTests {
    private func client(
        _ url: String, ca: String?, certificate: String? = nil, key: String? = nil, serverName: String? = nil,
        connectTimeout: Duration = .seconds(5)
    ) throws -> RedisClient {
        var configuration = try RedisConfiguration(url: url)
        configuration.tls?.caCertificateFile = ca
        configuration.tls?.certificateFile = certificate
        configuration.tls?.keyFile = key
        configuration.tls?.serverName = serverName
        configuration.connectTimeout = connectTimeout
        configuration.commandTimeout = .seconds(20)
        return try RedisClient(configuration: configuration)
    }

    private func failure(_ redis: RedisClient) async -> RedisError? {
        do {
            _ = try await redis.send("PING")
            return nil
        } catch {
            return error
        }
    }

    @Test("Verified against the given CA, by IP address and by host name (SNI); pipelining and large replies work")
    func trustedServer() async throws {
        let certificates = try await TestCertificates.shared()
        let server = try RedisServer(arguments: ["--requirepass", "tls-secret"], tls: certificates.server())
        defer { server.stop() }

        let byAddress = try client(
            "rediss://:tls-secret@127.0.0.1:\(server.port)/1", ca: certificates.caCertificate)
        defer { byAddress.close() }
        #expect(try await byAddress.send("PING") == .simpleString("PONG"))
        #expect(try await byAddress.send("CLIENT", "INFO").string?.contains("db=1") == true)

        // `localhost` resolves to ::1 first on most machines, where nothing listens: the next address is tried.
        let byName = try client("rediss://:tls-secret@localhost:\(server.port)", ca: certificates.caCertificate)
        defer { byName.close() }
        let key = RedisArgument(TestRedis.uniquePrefix() + "big")
        let big = RedisArgument(bytes: (0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7) })
        _ = try await byName.send("SET", key, big, "PX", 60000)
        #expect(try await byName.send("GET", key) == .bulkString(big.bytes))

        let mismatches = try await withThrowingTaskGroup(of: Int.self) { group in
            for caller in 0..<200 {
                group.addTask {
                    var wrong = 0
                    for round in 0..<10 {
                        let text = "caller-\(caller)-\(round)"
                        if try await byName.send("ECHO", RedisArgument(text)).string != text { wrong += 1 }
                    }
                    return wrong
                }
            }
            return try await group.reduce(0, +)
        }
        #expect(mismatches == 0)
    }

    @Test("A certificate from another CA is refused as untrusted, before anything is sent")
    func untrustedCertificate() async throws {
        let certificates = try await TestCertificates.shared()
        let server = try RedisServer(tls: certificates.server())
        defer { server.stop() }
        let redis = try client(server.url, ca: certificates.otherCACertificate)
        defer { redis.close() }
        let error = await failure(redis)
        #expect(error?.code == .tlsUntrustedCertificate, "\(String(describing: error))")

        // The system's roots do not trust the test CA either.
        let systemRoots = try client(server.url, ca: nil)
        defer { systemRoots.close() }
        #expect(await failure(systemRoots)?.code == .tlsUntrustedCertificate)
    }

    @Test("A trusted certificate for another host name is refused as a name mismatch")
    func nameMismatch() async throws {
        let certificates = try await TestCertificates.shared()
        let server = try RedisServer(tls: certificates.server(wrongName: true))
        defer { server.stop() }
        let byAddress = try client(server.url, ca: certificates.caCertificate)
        defer { byAddress.close() }
        let error = await failure(byAddress)
        #expect(error?.code == .tlsNameMismatch, "\(String(describing: error))")

        let byName = try client("rediss://localhost:\(server.port)", ca: certificates.caCertificate)
        defer { byName.close() }
        #expect(await failure(byName)?.code == .tlsNameMismatch)

        // The name the certificate holds, given as the server name, is accepted.
        let named = try client(server.url, ca: certificates.caCertificate, serverName: "elsewhere.test")
        defer { named.close() }
        #expect(try await named.send("PING") == .simpleString("PONG"))
    }

    @Test("Mutual TLS: a server requiring client certificates refuses a client without one and accepts one with it")
    func mutualTLS() async throws {
        let certificates = try await TestCertificates.shared()
        let server = try RedisServer(tls: certificates.server(authClients: "yes"))
        defer { server.stop() }

        let without = try client(server.url, ca: certificates.caCertificate)
        defer { without.close() }
        let error = await failure(without)
        #expect(error?.code == .tlsHandshake, "\(String(describing: error))")

        let with = try client(
            server.url, ca: certificates.caCertificate, certificate: certificates.clientCertificate,
            key: certificates.clientKey)
        defer { with.close() }
        #expect(try await with.send("PING") == .simpleString("PONG"))
    }

    @Test("rediss:// to a plain-text port fails the handshake; unreadable files are configuration errors")
    func plainServerAndBadFiles() async throws {
        let certificates = try await TestCertificates.shared()
        let plain = try RedisServer()
        defer { plain.stop() }
        // The server waits for the end of a line that never comes: the handshake times out.
        let redis = try client(
            "rediss://127.0.0.1:\(plain.port)", ca: certificates.caCertificate, connectTimeout: .milliseconds(500))
        defer { redis.close() }
        let error = await failure(redis)
        #expect(error?.code == .tlsHandshake, "\(String(describing: error))")

        let missing = #expect(throws: RedisError.self) {
            try client("rediss://127.0.0.1:\(plain.port)", ca: certificates.directory.path + "/missing.pem")
        }
        #expect(missing?.code == .tlsConfiguration)
        let mismatched = #expect(throws: RedisError.self) {
            try client(
                "rediss://127.0.0.1:\(plain.port)", ca: certificates.caCertificate,
                certificate: certificates.clientCertificate, key: certificates.serverKey)
        }
        #expect(mismatched?.code == .tlsConfiguration)
    }

    @Test("sluice ping takes --tls-ca-cert-file, --tls-cert-file and --tls-key-file")
    func commandLine() async throws {
        let certificates = try await TestCertificates.shared()
        let server = try RedisServer(
            arguments: ["--requirepass", "cli-secret"], tls: certificates.server(authClients: "yes"))
        defer { server.stop() }
        let url = "rediss://:cli-secret@localhost:\(server.port)"
        let ok = try SluiceBinary.run([
            "ping", "--redis", url, "--tls-ca-cert-file", certificates.caCertificate, "--tls-cert-file",
            certificates.clientCertificate, "--tls-key-file", certificates.clientKey,
        ])
        #expect(ok.status == 0, "\(ok.output)")
        #expect(ok.output.contains("PONG"), "\(ok.output)")
        #expect(!ok.output.contains("cli-secret"), "the password is never printed: \(ok.output)")

        let untrusted = try SluiceBinary.run([
            "ping", "--redis", url, "--tls-ca-cert-file", certificates.otherCACertificate, "--tls-cert-file",
            certificates.clientCertificate, "--tls-key-file", certificates.clientKey,
        ])
        #expect(untrusted.status != 0)
        #expect(untrusted.output.contains("tlsUntrustedCertificate"), "\(untrusted.output)")
    }
}
