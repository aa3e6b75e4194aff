import Synchronization

/// Where a ``RedisClient`` sends its commands: to its one server, or — when the server turns out to be a node
/// of a Redis Cluster — through a ``ClusterRouter`` to the primary that serves each command's keys.
///
/// Which of the two is found on the first command, with `CLUSTER INFO` on the connection the client was given:
/// a server that refuses it (cluster support disabled, or an ACL without `CLUSTER`) is a single server. A
/// connection failure while asking leaves the question open for the next command.
final class CommandRouter: Sendable {
    enum Mode: Sendable {
        case single
        case cluster(ClusterRouter)
    }

    private struct State {
        var mode: Mode?
        var detecting = false
        var waiters: [UnsafeContinuation<Void, Never>] = []
        var closed = false
    }

    /// The connections the client was given, shared by every caller; the mode is found on the first.
    private let sharedConnections: [RedisConnection]
    private let nextShared = Atomic<Int>(0)
    private let configuration: RedisConfiguration
    private let poolSize: Int
    private let state = SluiceMutex(State())

    init(sharedConnections: [RedisConnection], configuration: RedisConfiguration, poolSize: Int) {
        precondition(!sharedConnections.isEmpty, "a router needs a connection")
        self.sharedConnections = sharedConnections
        self.configuration = configuration
        self.poolSize = poolSize
    }

    /// The first connection the client was given (it asks whether the server is a cluster).
    var seed: RedisConnection { sharedConnections[0] }

    /// A single server's shared connection for the next command: in turn when there are several.
    var shared: RedisConnection {
        if sharedConnections.count == 1 { return sharedConnections[0] }
        let turn = nextShared.wrappingAdd(1, ordering: .relaxed).oldValue
        return sharedConnections[Int(UInt(bitPattern: turn) % UInt(sharedConnections.count))]
    }

    /// The mode, found on first use; callers arriving while it is being found wait for that answer.
    func mode() async throws(RedisError) -> Mode {
        while true {
            enum Next {
                case use(Mode)
                case detect
                case wait
            }
            let next = state.withLock { state -> Next in
                if let mode = state.mode { return .use(mode) }
                if state.detecting { return .wait }
                state.detecting = true
                return .detect
            }
            switch next {
            case .use(let mode):
                return mode
            case .wait:
                await withUnsafeContinuation { continuation in
                    let ready = state.withLock { state -> Bool in
                        if !state.detecting { return true }
                        state.waiters.append(continuation)
                        return false
                    }
                    if ready { continuation.resume() }
                }
            case .detect:
                let result: Result<Mode, RedisError>
                do {
                    result = .success(try await detect())
                } catch {
                    result = .failure(error)
                }
                let (waiters, closed) = state.withLock { state in
                    state.detecting = false
                    if case .success(let mode) = result { state.mode = mode }
                    defer { state.waiters = [] }
                    return (state.waiters, state.closed)
                }
                waiters.forEach { $0.resume() }
                if closed, case .success(.cluster(let router)) = result { router.close() }
                return try result.get()
            }
        }
    }

    private func detect() async throws(RedisError) -> Mode {
        // The sentinels name one primary: Redis Sentinel and Redis Cluster do not go together.
        if configuration.sentinel != nil { return .single }
        do {
            let info = try await seed.send(RedisCommand("CLUSTER", "INFO"))
            guard info.string?.contains("cluster_state:") == true else { return .single }
        } catch  where error.code == .server {
            return .single
        }
        let router = ClusterRouter(seed: seed, configuration: configuration, poolSize: poolSize)
        do {
            try await router.start()
        } catch {
            router.close()
            throw error
        }
        return .cluster(router)
    }

    /// The cluster router, once the mode is known to be a cluster (no I/O).
    var clusterIfKnown: ClusterRouter? {
        state.withLock { state in
            if case .cluster(let router) = state.mode { return router }
            return nil
        }
    }

    func close() {
        let router = state.withLock { state -> ClusterRouter? in
            state.closed = true
            if case .cluster(let router) = state.mode { return router }
            return nil
        }
        router?.close()
        for connection in sharedConnections { connection.close() }
    }

    // MARK: Sending

    /// The mode, for a command: an error while finding it names the command.
    private func mode(for name: String) async throws(RedisError) -> Mode {
        do {
            return try await mode()
        } catch {
            var error = error
            error.command = name
            throw error
        }
    }

    // Both refuse what a shared connection cannot take before anything else, finding the mode included: the
    // answer must not depend on whether a server answers.
    func send(_ command: RedisCommand) async throws(RedisError) -> RedisValue {
        try RedisConnection.check(command, shared: true)
        switch try await mode(for: command.name) {
        case .single: return try await shared.send(command)
        case .cluster(let router): return try await router.send(command)
        }
    }

    func pipeline(_ commands: [RedisCommand]) async throws(RedisError) -> [RedisValue] {
        try RedisConnection.check(pipeline: commands, shared: true)
        switch try await mode(for: commands.count == 1 ? commands[0].name : "pipeline") {
        case .single: return try await shared.pipeline(commands)
        case .cluster(let router): return try await router.pipeline(commands)
        }
    }
}
