/// One connection to Redis, shared by any number of concurrent callers.
///
/// Commands from concurrent callers are pipelined automatically: callers hand their encoded
/// command to the connection's own I/O thread, which writes everything that is waiting in one go
/// and matches the replies to the callers in order. Concurrent callers only suspend. A caller
/// alone on an idle connection instead makes its round trip on its own thread, waiting in `poll`
/// for at most ``RedisConfiguration/loneCallerReplyWait`` (1 ms by default) before the I/O thread
/// takes over: that saves the two thread hand-offs a round trip otherwise costs.
///
/// Nothing it does can raise SIGPIPE in the host process: every write passes `MSG_NOSIGNAL`
/// (`SO_NOSIGPIPE` on Darwin), so a server that closed the connection is an error like any other.
///
/// Failures are bounded and honest: a command whose reply does not arrive within
/// ``RedisConfiguration/commandTimeout`` fails with ``RedisError/Code/timeout``, and so does
/// every command queued behind it, because the connection is dropped (its replies can no longer be
/// matched). The next command reconnects. After a failed connection attempt, the connection backs
/// off (``RedisConfiguration/reconnectBackoff``) and fails commands at once with
/// ``RedisError/Code/unavailable`` until the next attempt is due.
public final class RedisConnection: Sendable {
    private let core: ConnectionCore
    /// Whether other callers share this connection: blocking and connection-state commands are
    /// then refused (``RedisError/Code/requiresDedicatedConnection``).
    let isShared: Bool

    public var configuration: RedisConfiguration { core.configuration }

    /// A connection of its own for one user at a time: every command that answers with one reply
    /// is allowed, blocking ones and `MULTI` included.
    public convenience init(configuration: RedisConfiguration) throws(RedisError) {
        try self.init(configuration: configuration, shared: false)
    }

    /// - Parameter resolver: the client's ``SentinelResolver`` when ``RedisConfiguration/sentinel``
    ///   is set (a connection given none makes its own).
    init(configuration: RedisConfiguration, shared: Bool, resolver: SentinelResolver? = nil) throws(RedisError) {
        core = try ConnectionCore(configuration: configuration, shared: shared, resolver: resolver)
        isShared = shared
        core.start()
    }

    deinit {
        core.close()
    }

    /// Sends one command and waits for its reply. A server error reply is thrown as a
    /// ``RedisError`` with code ``RedisError/Code/server``.
    ///
    /// The reply must arrive within ``RedisConfiguration/commandTimeout``, counted from this call:
    /// time spent connecting counts too, and a command whose deadline passed before the connection
    /// was ready is never written. When the calling task is cancelled, the call returns at once
    /// with ``RedisError/Code/cancelled``; see that code for what happens to the command.
    public func send(_ command: RedisCommand) async throws(RedisError) -> RedisValue {
        try check(command)
        let slot = ReplySlot(command: command.name, replyCount: 1)
        let result: Result<RedisValue, RedisError> = await withTaskCancellationHandler {
            await withUnsafeContinuation { continuation in
                if slot.install(.single(continuation)) { core.submit(command.encoded, slot) }
            }
        } onCancel: {
            slot.cancel()
        }
        return try result.get()
    }

    /// Sends several commands back to back (one write) and returns their replies in order. A
    /// server error reply is returned as ``RedisValue/error(_:)`` in its place rather than thrown,
    /// so one refused command does not hide the others' replies; connection failures are thrown.
    public func pipeline(_ commands: [RedisCommand]) async throws(RedisError) -> [RedisValue] {
        guard !commands.isEmpty else { return [] }
        try check(pipeline: commands)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(commands.reduce(0) { $0 + $1.encoded.count })
        for command in commands { bytes.append(contentsOf: command.encoded) }
        let slot = ReplySlot(
            command: commands.count == 1 ? commands[0].name : "pipeline", replyCount: commands.count)
        let results: [Result<RedisValue, RedisError>] = await withTaskCancellationHandler {
            await withUnsafeContinuation { continuation in
                if slot.install(.batch(continuation)) { core.submit(bytes, slot) }
            }
        } onCancel: {
            slot.cancel()
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

    private func check(pipeline commands: [RedisCommand]) throws(RedisError) {
        try Self.check(pipeline: commands, shared: isShared)
    }

    private func check(_ command: RedisCommand) throws(RedisError) {
        try Self.check(command, shared: isShared)
    }

    /// Checks each command of a pipeline; a `MULTI … EXEC` (or `… DISCARD`) block the pipeline holds whole
    /// is accepted on a shared connection too: its commands are written back to back, so no other
    /// caller's command can fall inside the transaction.
    static func check(pipeline commands: [RedisCommand], shared: Bool) throws(RedisError) {
        var transactionStart: Int?
        var wholeBlocks = Set<Int>()
        for (index, command) in commands.enumerated() {
            switch command.name.uppercased() {
            case "MULTI" where transactionStart == nil:
                transactionStart = index
            case "EXEC", "DISCARD":
                if let start = transactionStart { wholeBlocks.formUnion([start, index]) }
                transactionStart = nil
            default:
                break
            }
        }
        for (index, command) in commands.enumerated() where !wholeBlocks.contains(index) {
            try check(command, shared: shared)
        }
    }

    /// Refuses, before anything is sent, a command that cannot go on this kind of connection.
    static func check(_ command: RedisCommand, shared: Bool) throws(RedisError) {
        switch command.kind {
        case .ordinary: return
        case .withoutOneReply:
            throw RedisError(
                .unsupportedCommand,
                "\(command.name) does not answer with one reply per command; it is not supported",
                command: command.name)
        case .blocking, .connectionState:
            guard shared else { return }
            let why =
                command.kind == .blocking
                ? "blocks its connection" : "changes the state of its connection"
            throw RedisError(
                .requiresDedicatedConnection,
                "\(command.name) \(why), which other callers share; run it on a connection of its own "
                    + "(RedisClient.withConnection); it was not sent",
                command: command.name)
        }
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

    /// How many commands lone callers sent and read the replies of themselves, without the I/O
    /// thread (``RedisConfiguration/loneCallerReplyWait``); for tests.
    package var loneRoundTrips: Int { core.loneRoundTrips }

    /// Whether a socket is open right now (for tests and status output).
    package var isConnected: Bool { core.isConnected }

    /// The server the connection is ready on (with Sentinel, the primary it found), if any.
    var connectedTo: RedisConfiguration.Endpoint? { core.connectedTo }
}
