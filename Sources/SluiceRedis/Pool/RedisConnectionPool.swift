import Synchronization

/// A small pool of dedicated connections, opened lazily up to a maximum.
///
/// A caller that finds every connection busy waits for one to be released. Connections reconnect
/// by themselves after failures, so a connection that saw an error goes back to the pool as it is.
final class RedisConnectionPool: Sendable {
    private struct State {
        var idle: [RedisConnection] = []
        var open = 0
        var waiters: [CheckedContinuation<RedisConnection, any Error>] = []
        var closed = false
    }

    private let configuration: RedisConfiguration
    private let maximumConnections: Int
    private let state = Mutex(State())

    init(configuration: RedisConfiguration, maximumConnections: Int) {
        self.configuration = configuration
        self.maximumConnections = max(1, maximumConnections)
    }

    func acquire() async throws -> RedisConnection {
        enum Next { case use(RedisConnection), open, wait, closed }
        let next = state.withLock { state -> Next in
            if state.closed { return .closed }
            if let connection = state.idle.popLast() { return .use(connection) }
            if state.open < maximumConnections {
                state.open += 1
                return .open
            }
            return .wait
        }
        switch next {
        case .use(let connection): return connection
        case .closed: throw RedisError(.closed, "the connection pool was closed")
        case .open:
            do {
                return try RedisConnection(configuration: configuration)
            } catch {
                // The slot is free again; a caller already waiting for it would otherwise wait for
                // a release that may never come, so it learns of the failure too.
                let waiter = state.withLock { state in
                    state.open -= 1
                    return state.waiters.isEmpty ? nil : state.waiters.removeFirst()
                }
                waiter?.resume(throwing: error)
                throw error
            }
        case .wait:
            return try await withCheckedThrowingContinuation { continuation in
                let closed = state.withLock { state -> Bool in
                    if state.closed { return true }
                    if let connection = state.idle.popLast() {
                        continuation.resume(returning: connection)
                    } else {
                        state.waiters.append(continuation)
                    }
                    return false
                }
                if closed { continuation.resume(throwing: RedisError(.closed, "the connection pool was closed")) }
            }
        }
    }

    func release(_ connection: RedisConnection) {
        let waiter = state.withLock { state -> CheckedContinuation<RedisConnection, any Error>? in
            if state.closed {
                connection.close()
                return nil
            }
            if !state.waiters.isEmpty { return state.waiters.removeFirst() }
            state.idle.append(connection)
            return nil
        }
        waiter?.resume(returning: connection)
    }

    /// Closes a connection that may be left in a state the next borrower must not inherit (a
    /// `MULTI` or a blocking read cut short by an error) and frees its slot.
    func discard(_ connection: RedisConnection) {
        connection.close()
        state.withLock { $0.open -= 1 }
    }

    func close() {
        let (idle, waiters) = state.withLock { state in
            state.closed = true
            defer {
                state.idle = []
                state.waiters = []
            }
            return (state.idle, state.waiters)
        }
        idle.forEach { $0.close() }
        waiters.forEach { $0.resume(throwing: RedisError(.closed, "the connection pool was closed")) }
    }
}
