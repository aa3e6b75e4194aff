/// The connections a cluster client keeps to one node: one shared, automatically pipelined connection for
/// commands and scripts, and a small pool (opened on first use) for callers that need a connection of their
/// own (blocking reads).
final class NodeLink: Sendable {
    let address: NodeAddress
    let connection: RedisConnection
    private let configuration: RedisConfiguration
    private let poolSize: Int
    private let pool = SluiceMutex<DedicatedPool?>(nil)

    /// `template` is the client's configuration; only its endpoint is replaced (a cluster has database 0 only).
    init(address: NodeAddress, template: RedisConfiguration, poolSize: Int) throws(RedisError) {
        var configuration = template
        configuration.endpoint = .tcp(host: address.host, port: address.port)
        configuration.database = 0
        self.address = address
        self.configuration = configuration
        self.poolSize = poolSize
        self.connection = try RedisConnection(configuration: configuration, shared: true)
    }

    /// The node's pool of dedicated connections.
    var dedicated: DedicatedPool {
        pool.withLock { pool in
            if let pool { return pool }
            let made = DedicatedPool(configuration: configuration, maximumConnections: poolSize)
            pool = made
            return made
        }
    }

    func close() {
        connection.close()
        pool.withLock { $0 }?.close()
    }
}
