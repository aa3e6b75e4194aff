import Foundation
import SluiceRedis

#if canImport(Glibc)
    import Glibc
#endif

/// A real Redis Cluster of a test's own (three primaries with one replica each by default), for the tests
/// that kill a primary or move a slot: `redis-server --cluster-enabled yes` on free loopback ports, joined by
/// `redis-cli --cluster create`, stopped when the test is done. Nodes live in `${TMPDIR}/sluice-test-*`, so
/// scripts/test.sh sweeps them even when a test process dies.
final class RedisCluster: @unchecked Sendable {
    struct Node: Sendable {
        let port: Int
        let busPort: Int
        let directory: URL
        var pid: pid_t
        var address: String { "127.0.0.1:\(port)" }
    }

    private(set) var nodes: [Node] = []
    let nodeTimeout: Duration

    /// A live node's URL (any node will do for a client).
    var url: String {
        let live = nodes.first { $0.pid > 0 }
        return "redis://" + (live?.address ?? "127.0.0.1:1")
    }

    /// Starts the nodes and joins them; returns once every node sees all slots served and every replica in sync.
    static func start(
        primaries: Int = 3, replicasPerPrimary: Int = 1, nodeTimeout: Duration = .milliseconds(1500)
    ) async throws -> RedisCluster {
        let cluster = RedisCluster(nodeTimeout: nodeTimeout)
        do {
            try await cluster.launch(count: primaries * (1 + replicasPerPrimary), replicas: replicasPerPrimary)
        } catch {
            cluster.stop()
            throw error
        }
        return cluster
    }

    private init(nodeTimeout: Duration) {
        self.nodeTimeout = nodeTimeout
    }

    private func launch(count: Int, replicas: Int) async throws {
        var used: Set<Int> = []
        for _ in 0..<count {
            var port = try RedisServer.freePort()
            while used.contains(port) { port = try RedisServer.freePort() }
            used.insert(port)
            var bus = try RedisServer.freePort()
            while used.contains(bus) { bus = try RedisServer.freePort() }
            used.insert(bus)
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
                "sluice-test-cluster-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let pid = try Self.spawnNode(port: port, busPort: bus, directory: directory, nodeTimeout: nodeTimeout)
            nodes.append(Node(port: port, busPort: bus, directory: directory, pid: pid))
        }
        for node in nodes { try await Self.waitUntilAnswering(node.port) }
        let create = try ChildProcess.spawn(
            try RedisServer.which("redis-cli").path,
            ["redis-cli", "--cluster", "create"] + nodes.map(\.address) + [
                "--cluster-replicas", String(replicas), "--cluster-yes",
            ])
        let status = await Self.exitStatus(create)
        guard status == 0 else { throw RedisError(.connect, "redis-cli --cluster create exited with \(status)") }
        try await waitUntilHealthy(timeout: .seconds(30))
    }

    private static func spawnNode(port: Int, busPort: Int, directory: URL, nodeTimeout: Duration) throws -> pid_t {
        let timeoutMillis = Int(nodeTimeout / .milliseconds(1))
        return try ChildProcess.spawn(
            try RedisServer.which("redis-server").path,
            [
                "redis-server", "--port", String(port), "--cluster-port", String(busPort), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", directory.path,
                "--pidfile", directory.appendingPathComponent("redis.pid").path,
                "--cluster-enabled", "yes", "--cluster-config-file",
                directory.appendingPathComponent("nodes.conf").path,
                "--cluster-node-timeout", String(timeoutMillis),
            ])
    }

    private static func waitUntilAnswering(_ port: Int) async throws {
        for _ in 0..<200 {
            if RedisServer.canConnect(port: port) { return }
            try await Task.sleep(for: .milliseconds(25))
        }
        throw RedisError(.connect, "cluster node on port \(port) did not start")
    }

    /// Polls a child with `WNOHANG` (a blocking `waitpid` would stall a thread of the shared pool).
    private static func exitStatus(_ pid: pid_t) async -> Int32 {
        var status: Int32 = 0
        while true {
            let reaped = waitpid(pid, &status, WNOHANG)
            if reaped == pid { break }
            if reaped == -1 && errno != EINTR { return -1 }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    /// A plain connection to one node (no cluster routing): for administration and for looking.
    func connection(_ port: Int, commandTimeout: Duration = .seconds(5)) throws -> RedisConnection {
        var configuration = RedisConfiguration(endpoint: .tcp(host: "127.0.0.1", port: port))
        configuration.commandTimeout = commandTimeout
        return try RedisConnection(configuration: configuration)
    }

    /// Sends one command to one node and closes the connection.
    @discardableResult
    func send(_ port: Int, _ name: String, _ arguments: RedisArgument...) async throws -> RedisValue {
        let connection = try connection(port)
        defer { connection.close() }
        return try await connection.send(RedisCommand(name, arguments))
    }

    /// Waits until every live node reports `cluster_state:ok` with all 16384 slots served, and every live
    /// replica's link to its primary is up.
    func waitUntilHealthy(timeout: Duration) async throws {
        let end = ContinuousClock.now + timeout
        var last = ""
        while ContinuousClock.now < end {
            if let problem = await healthProblem() {
                last = problem
                try await Task.sleep(for: .milliseconds(100))
            } else {
                return
            }
        }
        throw RedisError(.timeout, "the cluster did not become healthy: \(last)")
    }

    private func healthProblem() async -> String? {
        for node in nodes where node.pid > 0 {
            guard let info = try? await send(node.port, "CLUSTER", "INFO").string else {
                return "node \(node.port) does not answer"
            }
            if !info.contains("cluster_state:ok") || !info.contains("cluster_slots_ok:16384") {
                return "node \(node.port): \(info.prefix(80))"
            }
            guard let replication = try? await send(node.port, "INFO", "replication").string else {
                return "node \(node.port) does not answer INFO"
            }
            if replication.contains("role:slave") && !replication.contains("master_link_status:up") {
                return "replica \(node.port) is not in sync"
            }
        }
        return nil
    }

    /// The port of the primary that serves `slot`, as a live node sees it.
    func primaryPort(forSlot slot: Int) async throws -> Int {
        for node in nodes where node.pid > 0 {
            guard let reply = try? await send(node.port, "CLUSTER", "SLOTS"), let ranges = reply.array else { continue }
            for range in ranges {
                guard let parts = range.array, parts.count >= 3, let low = parts[0].integer,
                    let high = parts[1].integer,
                    let primary = parts[2].array, primary.count >= 2, let port = primary[1].integer
                else { continue }
                if (low...high).contains(Int64(slot)) { return Int(port) }
            }
        }
        throw RedisError(.unavailable, "no live node knows who serves slot \(slot)")
    }

    /// The ports of the primaries that serve slots now, as a live node sees it.
    func primaryPorts() async throws -> [Int] {
        for node in nodes where node.pid > 0 {
            guard let reply = try? await send(node.port, "CLUSTER", "SLOTS"), let ranges = reply.array else { continue }
            let ports = ranges.compactMap { range -> Int? in
                guard let parts = range.array, parts.count >= 3, let primary = parts[2].array, primary.count >= 2
                else { return nil }
                return primary[1].integer.map(Int.init)
            }
            return Set(ports).sorted()
        }
        throw RedisError(.unavailable, "no live node answers CLUSTER SLOTS")
    }

    /// The node id of the node on `port`.
    func nodeID(_ port: Int) async throws -> String {
        guard let id = try await send(port, "CLUSTER", "MYID").string else {
            throw RedisError(.protocolError, "CLUSTER MYID gave no id")
        }
        return id
    }

    /// SIGKILL one node (no SIGCONT, no goodbye): its replica takes over after the node timeout.
    func kill9(port: Int) {
        guard let index = nodes.firstIndex(where: { $0.port == port }), nodes[index].pid > 0 else { return }
        kill(nodes[index].pid, SIGKILL)
        ChildProcess.reap(nodes[index].pid)
        nodes[index].pid = 0
    }

    /// Moves one slot with its keys from its primary to the primary on `target`, the way `redis-cli --cluster
    /// reshard` does: `SETSLOT IMPORTING` on the target, `SETSLOT MIGRATING` on the source, `MIGRATE … KEYS` in
    /// batches, then `SETSLOT NODE` on both. `pause` runs between the steps so that callers can run meanwhile.
    func migrate(slot: Int, to target: Int, pause: Duration = .zero) async throws {
        let source = try await primaryPort(forSlot: slot)
        guard source != target else { return }
        let sourceID = try await nodeID(source)
        let targetID = try await nodeID(target)
        try await send(target, "CLUSTER", "SETSLOT", RedisArgument(slot), "IMPORTING", RedisArgument(sourceID))
        try await send(source, "CLUSTER", "SETSLOT", RedisArgument(slot), "MIGRATING", RedisArgument(targetID))
        try await Task.sleep(for: pause)
        while true {
            let keys = try await send(source, "CLUSTER", "GETKEYSINSLOT", RedisArgument(slot), 10).array ?? []
            if keys.isEmpty { break }
            var arguments: [RedisArgument] = ["127.0.0.1", RedisArgument(target), "", 0, 5000, "KEYS"]
            arguments += keys.compactMap(\.bytes).map { RedisArgument(bytes: $0) }
            let connection = try connection(source)
            defer { connection.close() }
            _ = try await connection.send(RedisCommand("MIGRATE", arguments))
            try await Task.sleep(for: pause)
        }
        try await send(target, "CLUSTER", "SETSLOT", RedisArgument(slot), "NODE", RedisArgument(targetID))
        try await send(source, "CLUSTER", "SETSLOT", RedisArgument(slot), "NODE", RedisArgument(targetID))
        for node in nodes where node.pid > 0 && node.port != source && node.port != target {
            _ = try? await send(node.port, "CLUSTER", "SETSLOT", RedisArgument(slot), "NODE", RedisArgument(targetID))
        }
    }

    /// Kills every node and removes their directories. Calling it twice is harmless.
    func stop() {
        for index in nodes.indices where nodes[index].pid > 0 {
            kill(nodes[index].pid, SIGKILL)
            ChildProcess.reap(nodes[index].pid)
            nodes[index].pid = 0
        }
        for node in nodes { try? FileManager.default.removeItem(at: node.directory) }
    }

    deinit { stop() }
}
