import Foundation
import SluiceRedis

#if canImport(Glibc)
    import Glibc
#endif

/// A real Redis Sentinel setup of a test's own: a primary, a replica and three sentinels (quorum 2), each a
/// `redis-server` process on a free loopback port (the sentinels run `redis-server sentinel.conf --sentinel`),
/// with no persistence, stopped by pid when the test is done; with `tls`, every process serves TLS only (the
/// replica and the sentinels reach the primary over TLS too). Each sentinel's directory is
/// `${TMPDIR}/sluice-test-sentinel-*` with its `redis.pid`, so scripts/test.sh sweeps them even when a test
/// process dies.
final class RedisSentinelSetup: @unchecked Sendable {
    /// The name the sentinels monitor the primary under.
    let primaryName: String
    let primary: RedisServer
    let replica: RedisServer
    /// The password of every process (the primary's and replica's `requirepass`/`masterauth`, the sentinels'
    /// `requirepass`, `sentinel-pass` and `auth-pass`), if any.
    let password: String?
    /// The TLS every process serves, if any.
    let tls: RedisServer.TLS?
    private(set) var sentinelPorts: [Int] = []
    private var sentinelPids: [pid_t] = []
    private var directories: [URL] = []

    /// `redis-sentinel://` (`rediss-sentinel://` trusting the test CA, with `tls`) with every sentinel, for
    /// `primaryName` (or another name).
    func url(primaryName name: String? = nil) -> String {
        (tls == nil ? "redis-sentinel://" : "rediss-sentinel://")
            + sentinelPorts.map { "127.0.0.1:\($0)" }.joined(separator: ",")
            + (tls.map { "?tls-ca-cert-file=\($0.caCertificateFile)" } ?? "") + "#" + (name ?? primaryName)
    }

    /// How the setup's own helpers reach one of its processes.
    private func configuration(port: Int) throws -> RedisConfiguration {
        var configuration = RedisConfiguration(endpoint: .tcp(host: "127.0.0.1", port: port), password: password)
        if let tls { configuration.tls = RedisConfiguration.TLS(caCertificateFile: tls.caCertificateFile) }
        return configuration
    }

    /// Starts everything; returns once every sentinel names the primary and knows the replica and the other
    /// sentinels, and the replica is in sync (so that `SENTINEL FAILOVER` can pick it).
    static func start(
        primaryName: String = "sluice-primary", password: String? = nil, tls: RedisServer.TLS? = nil
    ) async throws -> RedisSentinelSetup {
        let auth =
            (password.map { ["--requirepass", $0, "--masterauth", $0] } ?? [])
            + (tls == nil ? [] : ["--tls-replication", "yes"])
        let primary = try RedisServer(arguments: auth, tls: tls)
        let replica = try RedisServer(arguments: auth + ["--replicaof", "127.0.0.1", String(primary.port)], tls: tls)
        let setup = try RedisSentinelSetup(
            primaryName: primaryName, password: password, tls: tls, primary: primary, replica: replica)
        do {
            try setup.launchSentinels(count: 3)
            try await setup.waitUntilAgreed(on: primary.port, replicas: 1)
        } catch {
            setup.stop()
            throw error
        }
        return setup
    }

    private init(
        primaryName: String, password: String?, tls: RedisServer.TLS?, primary: RedisServer, replica: RedisServer
    ) throws {
        self.primaryName = primaryName
        self.password = password
        self.tls = tls
        self.primary = primary
        self.replica = replica
    }

    private func launchSentinels(count: Int) throws {
        let redisServer = try RedisServer.which("redis-server").path
        var used: Set<Int> = [primary.port, replica.port]
        for _ in 0..<count {
            var port = try RedisServer.freePort()
            while used.contains(port) { port = try RedisServer.freePort() }
            used.insert(port)
            let home = FileManager.default.temporaryDirectory.appendingPathComponent(
                "sluice-test-sentinel-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: home, withIntermediateDirectories: true)
            directories.append(home)
            let configuration = home.appendingPathComponent("sentinel.conf")
            // A sentinel rewrites its configuration file, so each gets one of its own.
            let listen =
                tls.map {
                    """
                    port 0
                    tls-port \(port)
                    tls-cert-file \($0.certificateFile)
                    tls-key-file \($0.keyFile)
                    tls-ca-cert-file \($0.caCertificateFile)
                    tls-auth-clients no
                    tls-replication yes
                    """
                } ?? "port \(port)"
            try """
            \(listen)
            bind 127.0.0.1
            daemonize no
            dir \(home.path)
            pidfile \(home.appendingPathComponent("redis.pid").path)
            sentinel monitor \(primaryName) 127.0.0.1 \(primary.port) 2
            sentinel down-after-milliseconds \(primaryName) 2000
            sentinel failover-timeout \(primaryName) 10000
            \(password.map { "requirepass \($0)\nsentinel sentinel-pass \($0)\nsentinel auth-pass \(primaryName) \($0)" } ?? "")

            """.write(to: configuration, atomically: true, encoding: .utf8)
            let pid = try ChildProcess.spawn(redisServer, ["redis-server", configuration.path, "--sentinel"])
            sentinelPids.append(pid)
            sentinelPorts.append(port)
        }
        for port in sentinelPorts {
            var answering = false
            for _ in 0..<600 where !answering {
                answering = RedisServer.canConnect(port: port)
                if !answering { usleep(25_000) }
            }
            guard answering else { throw RedisError(.connect, "the sentinel on port \(port) did not start") }
        }
    }

    /// Sends one command to a sentinel (index into ``sentinelPorts``) on a connection of its own.
    func askSentinel(_ index: Int, _ command: RedisCommand) async throws -> RedisValue {
        let connection = try RedisConnection(configuration: configuration(port: sentinelPorts[index]))
        defer { connection.close() }
        return try await connection.send(command)
    }

    /// The port of the primary sentinel `index` names.
    func primaryPort(accordingTo index: Int) async throws -> Int? {
        let reply = try await askSentinel(
            index, RedisCommand("SENTINEL", "get-master-addr-by-name", RedisArgument(primaryName)))
        return reply.array?.last?.string.flatMap { Int($0) }
    }

    /// Waits (at most 60 s: a loaded machine is slow) until every sentinel names `port` as the primary and
    /// knows `replicas` replicas and the other sentinels, and every replica's link to the primary is up.
    func waitUntilAgreed(on port: Int, replicas: Int) async throws {
        let until = ContinuousClock.now + .seconds(60)
        var last = ""
        while ContinuousClock.now < until {
            var agreed = true
            for index in sentinelPorts.indices {
                guard
                    let reply = try? await askSentinel(
                        index, RedisCommand("SENTINEL", "MASTER", RedisArgument(primaryName))),
                    let fields = reply.array
                else {
                    agreed = false
                    break
                }
                var info: [String: String] = [:]
                for pair in stride(from: 0, to: fields.count - 1, by: 2) {
                    if let key = fields[pair].string { info[key] = fields[pair + 1].string }
                }
                last =
                    "sentinel \(index): \(info["port"] ?? "?") slaves \(info["num-slaves"] ?? "?")"
                    + " sentinels \(info["num-other-sentinels"] ?? "?") flags \(info["flags"] ?? "?")"
                if info["port"] != String(port) || Int(info["num-slaves"] ?? "") != replicas
                    || Int(info["num-other-sentinels"] ?? "") != sentinelPorts.count - 1 || info["flags"] != "master"
                {
                    agreed = false
                    break
                }
            }
            if agreed {
                let candidates = [self.primary, self.replica].filter { $0.port != port }
                for server in candidates {
                    let connection = try RedisConnection(configuration: configuration(port: server.port))
                    defer { connection.close() }
                    let info = try? await connection.send(RedisCommand("INFO", "replication"))
                    if info?.string?.contains("master_link_status:up") != true { agreed = false }
                }
            }
            if agreed { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw RedisError(.unavailable, "the sentinels did not agree on the primary on port \(port): \(last)")
    }

    /// `SENTINEL FAILOVER`: the replica becomes the primary (without asking the other sentinels).
    func failover() async throws {
        _ = try await askSentinel(0, RedisCommand("SENTINEL", "FAILOVER", RedisArgument(primaryName)))
    }

    func stop() {
        for pid in sentinelPids {
            kill(pid, SIGKILL)
            ChildProcess.reap(pid)
        }
        sentinelPids = []
        primary.stop()
        replica.stop()
        for directory in directories { try? FileManager.default.removeItem(at: directory) }
        directories = []
    }

    deinit { stop() }
}
