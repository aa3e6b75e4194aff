extension RedisClient {
    /// Whether the server is a node of a Redis Cluster (asked with `CLUSTER INFO` on the first command).
    public func isCluster() async throws(RedisError) -> Bool {
        if case .cluster = try await router.mode() { return true }
        return false
    }

    /// The primaries commands go to: `host:port` of each on a cluster, in the slot map's order; the one
    /// server's endpoint otherwise (with Sentinel, the primary the sentinels named last, once known).
    public func primaries() async throws(RedisError) -> [String] {
        switch try await router.mode() {
        case .cluster(let cluster): return cluster.primaryAddresses
        case .single:
            var endpoint = configuration.endpoint
            if let sentinel {
                if let known = sentinel.lastKnownPrimary {
                    endpoint = known
                } else {
                    endpoint = try await sentinel.primary().get()
                }
            }
            switch endpoint {
            case .tcp(let host, let port): return [NodeAddress(host: host, port: port).description]
            case .unixSocket(let path): return [path]
            }
        }
    }

    /// Sends `command` to every primary of a cluster (at once) and returns their replies in the order of
    /// ``primaries()``; on a single server, its one reply. For commands about a server rather than keys:
    /// `INFO commandstats`, `CONFIG RESETSTAT`, `FUNCTION LIST`, `DBSIZE`. Fails when any primary fails.
    public func sendToEveryPrimary(_ command: RedisCommand) async throws(RedisError) -> [RedisValue] {
        switch try await router.mode() {
        case .single: return [try await router.seed.send(command)]
        case .cluster(let cluster): return try await cluster.sendToEveryPrimary(command)
        }
    }

    /// Every key that matches `pattern` (`SCAN … MATCH`), on every primary of a cluster: a scan of one node
    /// would see only the keys of its slots. Keys may repeat when they move while the scan runs; the result
    /// holds each once.
    public func scanKeys(matching pattern: String, type: String? = nil) async throws(RedisError) -> [String] {
        try await scanKeys(matching: pattern, type: type, mostCallsPerNode: .max).keys
    }

    /// As ``scanKeys(matching:type:)``, with bounded work: at most `mostCallsPerNode` `SCAN` calls (of up to 1,000
    /// keys each) on each primary. `complete` is false when a primary's scan stopped there.
    public func scanKeys(
        matching pattern: String, type: String? = nil, mostCallsPerNode: Int
    ) async throws(RedisError) -> (keys: [String], complete: Bool) {
        let connections: [RedisConnection]
        switch try await router.mode() {
        case .single: connections = [router.seed]
        case .cluster(let cluster): connections = try await cluster.primaryConnections()
        }
        var found: Set<String> = []
        var keys: [String] = []
        var complete = true
        for connection in connections {
            var cursor = "0"
            var calls = 0
            repeat {
                var arguments: [RedisArgument] = [
                    RedisArgument(cursor), "MATCH", RedisArgument(pattern), "COUNT", 1000,
                ]
                if let type { arguments += ["TYPE", RedisArgument(type)] }
                let reply = try await connection.send(RedisCommand("SCAN", arguments))
                guard let parts = reply.array, parts.count == 2, let next = parts[0].string else {
                    throw RedisError(.unexpectedReply, "SCAN replied unexpectedly", command: "SCAN")
                }
                cursor = next
                calls += 1
                for key in parts[1].array ?? [] {
                    if let key = key.string, found.insert(key).inserted { keys.append(key) }
                }
            } while cursor != "0" && calls < max(1, mostCallsPerNode)
            if cursor != "0" { complete = false }
        }
        return (keys, complete)
    }

    /// Runs `body` with a connection of its own to the server, or on a cluster to the primary that serves
    /// `routingKey` (for a blocking read of that key: `BLPOP`, `XREAD`). Otherwise as ``withConnection(deadline:_:)``.
    /// A redirect the body meets (the slot moved meanwhile) is thrown as it is, and the slot map is read again.
    public func withConnection<Result: Sendable>(
        routingKey: RedisArgument, deadline: ContinuousClock.Instant? = nil,
        _ body: (RedisConnection) async throws -> Result
    ) async throws -> Result {
        do {
            return try await withConnection(pool: dedicatedPool(routingKey: routingKey), deadline: deadline, body)
        } catch let error as RedisError {
            router.clusterIfKnown?.noteRedirect(error)
            throw error
        }
    }
}
