import CHiredis
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// One connection to Redis, shared by any number of concurrent callers.
///
/// Commands from concurrent callers are pipelined automatically: callers hand their encoded
/// command to the connection's own I/O thread, which writes everything that is waiting in one go
/// and matches the replies to the callers in order. No blocking call ever runs on Swift's
/// cooperative thread pool; callers only suspend.
///
/// Failures are bounded and honest: a command whose reply does not arrive within
/// ``RedisConfiguration/commandTimeout`` fails with ``RedisError/Code/timeout``, and so does
/// every command queued behind it, because the connection is dropped (its replies can no longer be
/// matched). The next command reconnects. After a failed connection attempt, the connection backs
/// off (``RedisConfiguration/reconnectBackoff``) and fails commands at once with
/// ``RedisError/Code/unavailable`` until the next attempt is due.
public final class RedisConnection: Sendable {
    private let core: ConnectionCore

    public var configuration: RedisConfiguration { core.configuration }

    public init(configuration: RedisConfiguration) throws(RedisError) {
        core = try ConnectionCore(configuration: configuration)
        core.start()
    }

    deinit {
        core.close()
    }

    /// Sends one command and waits for its reply. A server error reply is thrown as a
    /// ``RedisError`` with code ``RedisError/Code/server``.
    public func send(_ command: RedisCommand) async throws(RedisError) -> RedisValue {
        if command.breaksReplyOrder { throw Self.unsupported(command) }
        let result: Result<RedisValue, RedisError> = await withUnsafeContinuation { continuation in
            core.submit(command, continuation)
        }
        return try result.get()
    }

    /// Sends several commands back to back (one write) and returns their replies in order. A
    /// server error reply is returned as ``RedisValue/error(_:)`` in its place rather than thrown,
    /// so one refused command does not hide the others' replies; connection failures are thrown.
    public func pipeline(_ commands: [RedisCommand]) async throws(RedisError) -> [RedisValue] {
        guard !commands.isEmpty else { return [] }
        if let bad = commands.first(where: \.breaksReplyOrder) { throw Self.unsupported(bad) }
        let results: [Result<RedisValue, RedisError>] = await withUnsafeContinuation { continuation in
            core.submitBatch(commands, continuation)
        }
        var values: [RedisValue] = []
        values.reserveCapacity(results.count)
        for result in results {
            switch result {
            case .success(let value): values.append(value)
            case .failure(let error) where error.code == .server: values.append(.error(error.message))
            case .failure(let error): throw error
            }
        }
        return values
    }

    private static func unsupported(_ command: RedisCommand) -> RedisError {
        RedisError(
            .unsupportedCommand, "\(command.name) does not answer with one reply per command; it is not supported",
            command: command.name)
    }

    /// Fails every waiting command with ``RedisError/Code/closed`` and closes the socket.
    /// Later commands fail at once. Calling it twice is harmless.
    public func close() {
        core.close()
    }

    /// This connection's I/O thread as a task executor.
    ///
    /// A task that prefers it (`withTaskExecutorPreference(connection.executor) { ... }` or
    /// `group.addTask(executorPreference: connection.executor)`) resumes on the I/O thread when
    /// its reply arrives, instead of being handed to another thread: a lone caller's round trip
    /// then costs one thread wake-up, as in a C client's event loop. Keep such tasks short and
    /// never block in them: while one runs, the connection does no I/O.
    public var executor: any TaskExecutor { core }

    /// Whether a socket is open right now (for tests and status output).
    public var isConnected: Bool { core.isConnected }
}
