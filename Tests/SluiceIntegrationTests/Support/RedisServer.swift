import Foundation
import SluiceRedis

#if canImport(Glibc)
    import Glibc
#endif

/// A real `redis-server` process of a test's own, for the tests that stop, kill or configure a
/// server: on a free loopback port, with no persistence, stopped when the test is done.
final class RedisServer: @unchecked Sendable {
    let port: Int
    let directory: URL
    private(set) var pid: pid_t = 0
    private let extraArguments: [String]
    /// The TLS settings it serves with, on `port` only (plain TCP is off; the unix socket stays plain).
    let tls: TLS?

    /// A TLS server's files and how it treats client certificates.
    struct TLS {
        var certificateFile: String
        var keyFile: String
        /// The CA that client certificates must chain to.
        var caCertificateFile: String
        /// `no`, `optional` or `yes` (redis-server's `tls-auth-clients`).
        var authClients = "no"
    }

    var url: String { tls == nil ? "redis://127.0.0.1:\(port)" : "rediss://127.0.0.1:\(port)" }

    init(arguments: [String] = [], port: Int? = nil, tls: TLS? = nil) throws {
        self.port = try port ?? Self.freePort()
        self.directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "sluice-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        self.extraArguments = arguments
        self.tls = tls
        try launch()
    }

    private func launch() throws {
        var ports = ["--port", String(port)]
        if let tls {
            ports = [
                "--port", "0", "--tls-port", String(port), "--tls-cert-file", tls.certificateFile,
                "--tls-key-file", tls.keyFile, "--tls-ca-cert-file", tls.caCertificateFile,
                "--tls-auth-clients", tls.authClients,
            ]
        }
        let arguments =
            ["redis-server"] + ports
            + [
                "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", directory.path, "--pidfile", directory.appendingPathComponent("redis.pid").path,
                "--unixsocket", unixSocketPath, "--unixsocketperm", "700",
            ] + extraArguments
        pid = try ChildProcess.spawn(try Self.which("redis-server").path, arguments)
        try waitUntilAnswering()
    }

    var unixSocketPath: String { directory.appendingPathComponent("redis.sock").path }

    /// Polls the port until the server accepts connections (at most 15 s: a loaded machine is slow to start it).
    private func waitUntilAnswering() throws {
        for _ in 0..<600 {
            if Self.canConnect(port: port) { return }
            usleep(25_000)
        }
        throw RedisError(.connect, "redis-server on port \(port) did not start")
    }

    func pause() { kill(pid, SIGSTOP) }
    func resume() { kill(pid, SIGCONT) }

    func kill9() {
        guard pid > 0 else { return }
        // No SIGCONT first: a stopped server must die without answering what it was sent.
        kill(pid, SIGKILL)
        ChildProcess.reap(pid)
        pid = 0
    }

    /// Starts the server again on the same port, after `kill9()`.
    func restart() throws {
        try launch()
    }

    func stop() {
        kill9()
        try? FileManager.default.removeItem(at: directory)
    }

    deinit { stop() }

    static func which(_ name: String) throws -> URL {
        for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let candidate = URL(fileURLWithPath: String(directory)).appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        throw RedisError(.connect, "\(name) is not on PATH (scripts/install-deps.sh installs it)")
    }

    /// A loopback port nothing is bound to, below the kernel's ephemeral range (`ip_local_port_range`, from 32768 by
    /// default): a port inside it, even one free a moment ago, can become the local end of some outgoing connection
    /// before redis-server binds it, which then fails with "Address already in use" (scripts/redis.sh does the same).
    static func freePort() throws -> Int {
        let ranges = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8)) ?? ""
        let firstEphemeral = ranges.split(whereSeparator: \.isWhitespace).first.flatMap { Int($0) } ?? 32768
        let upper = max(firstEphemeral, 11000)
        for _ in 0..<200 {
            let port = Int.random(in: 10000..<upper)
            if bindable(port) { return port }
        }
        throw RedisError(.io, "no free port below \(upper)")
    }

    private static func bindable(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }

    static func canConnect(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }
}

/// Spawning and reaping child processes with `posix_spawn`, with a clean signal mask: the test
/// runner's threads block signals that a child would otherwise inherit.
enum ChildProcess {
    static func spawn(_ path: String, _ arguments: [String], environment: [String: String]? = nil) throws -> pid_t {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        posix_spawnattr_setsigmask(&attributes, &emptyMask)
        var defaults = sigset_t()
        sigfillset(&defaults)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)

        let environmentLines = (environment ?? ProcessInfo.processInfo.environment).map { "\($0.key)=\($0.value)" }
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        var envp: [UnsafeMutablePointer<CChar>?] = environmentLines.map { strdup($0) } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let status = posix_spawn(&pid, path, &actions, &attributes, &argv, &envp)
        guard status == 0 else {
            throw RedisError(.io, "could not start \(path): \(String(cString: strerror(status)))")
        }
        return pid
    }

    /// Waits for a child to exit and returns its exit status (or 128 + signal).
    @discardableResult
    static func reap(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        if status & 0x7f == 0 { return (status >> 8) & 0xff }
        return 128 + (status & 0x7f)
    }
}

/// The shared server of the test run: `REDIS_URL`, else the docker-compose default; inside a test that runs
/// on the cluster as well (``OnEveryServer``), `REDIS_CLUSTER_URL` for its second run.
enum TestRedis {
    /// The server of the test that is running, when it is not `REDIS_URL` (set by ``OnEveryServer``).
    @TaskLocal static var current: String?

    static var url: String {
        current ?? ProcessInfo.processInfo.environment["REDIS_URL"] ?? "redis://127.0.0.1:6379"
    }

    /// The shared Redis Cluster of the test run (`REDIS_CLUSTER_URL`: any node), when there is one.
    static var clusterURL: String? {
        guard let url = ProcessInfo.processInfo.environment["REDIS_CLUSTER_URL"], !url.isEmpty else { return nil }
        return url
    }

    /// Whether the running test is on the cluster.
    static var onCluster: Bool { current != nil && current == clusterURL }

    static func client(commandTimeout: Duration = .seconds(5)) throws -> RedisClient {
        var configuration = try RedisConfiguration(url: url)
        configuration.commandTimeout = commandTimeout
        return try RedisClient(configuration: configuration)
    }

    /// A key prefix unique to one test, so tests can share the server.
    static func uniquePrefix(_ test: String = #function) -> String {
        "sluice-test:\(test.prefix { $0 != "(" }):\(UUID().uuidString.prefix(8)):"
    }
}
