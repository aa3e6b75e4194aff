/// A small pool of dedicated connections, opened on demand up to a maximum: the I/O around
/// ``PoolStateMachine``, which decides everything.
///
/// A caller that finds every connection busy waits, first come first served, until one is given
/// back or opened for it, its deadline passes (``RedisError/Code/timeout``), its task is cancelled
/// (`CancellationError`) or the pool closes (``RedisError/Code/closed``). A discarded connection or a
/// failed open frees its slot for the next waiter, so no waiter is left behind.
///
/// Generic over the connection and the clock so that its waits, timeouts and cancellations are
/// tested without a server and without real time; ``RedisClient`` uses it with ``RedisConnection``
/// and the continuous clock.
final class ConnectionPool<Connection: Sendable, PoolClock: Clock>: Sendable
where PoolClock.Duration == Duration {
    /// A connection lent to a caller; give it back with ``release(_:)`` or ``discard(_:)``.
    struct Lease: Sendable {
        let id: Int
        let connection: Connection
    }

    private typealias Machine = PoolStateMachine<Connection, PoolClock.Instant>

    private struct State {
        var machine: Machine
        var continuations: [Int: CheckedContinuation<Lease, any Error>] = [:]
        var timers: [Int: Task<Void, Never>] = [:]
        var nextRequest = 0
    }

    /// What to do outside the lock after an event.
    private struct Work {
        var resume: [(CheckedContinuation<Lease, any Error>, Result<Lease, any Error>)] = []
        var timers: [Task<Void, Never>] = []
        var close: [Connection] = []
        var open: [Int] = []
    }

    private let state: SluiceMutex<State>
    private let clock: PoolClock
    private let openConnection: @Sendable () async throws -> Connection
    private let closeConnection: @Sendable (Connection) -> Void

    /// - Parameters:
    ///   - open: opens a connection (run in a task of its own; its error goes to a waiter).
    ///   - close: closes a connection the pool no longer keeps.
    init(
        maximumConnections: Int, clock: PoolClock, open: @escaping @Sendable () async throws -> Connection,
        close: @escaping @Sendable (Connection) -> Void
    ) {
        self.state = SluiceMutex(State(machine: Machine(maximumConnections: maximumConnections)))
        self.clock = clock
        self.openConnection = open
        self.closeConnection = close
    }

    /// A connection of the caller's own, waiting until `deadline` (`nil`: no limit) when all are busy.
    func lease(deadline: PoolClock.Instant?) async throws -> Lease {
        let request = state.withLock { state in
            defer { state.nextRequest += 1 }
            return state.nextRequest
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                var immediate: Result<Lease, any Error>?
                let work = update { state in
                    // Checked under the lock that `onCancel` takes too: a cancellation that came
                    // before the request was queued is seen here, one that comes after finds it queued.
                    if Task.isCancelled {
                        immediate = .failure(CancellationError())
                        return Machine.Actions()
                    }
                    let (result, actions) = state.machine.lease(request, deadline: deadline, now: clock.now)
                    switch result {
                    case .leased(let id, let connection):
                        immediate = .success(Lease(id: id, connection: connection))
                    case .failed(let failure):
                        immediate = .failure(Self.error(failure))
                    case .waiting:
                        state.continuations[request] = continuation
                        if let deadline { state.timers[request] = timer(for: request, at: deadline) }
                    }
                    return actions
                }
                if let immediate { continuation.resume(with: immediate) }
                perform(work)
            }
        } onCancel: {
            perform(update { $0.machine.cancelled(request) })
        }
    }

    /// Gives a connection back for the next caller.
    func release(_ lease: Lease) {
        perform(update { $0.machine.release(lease.id, lease.connection) })
    }

    /// Closes a connection that may be left in a state the next borrower must not inherit (a
    /// `MULTI` or a blocking read cut short by an error) and frees its slot.
    func discard(_ lease: Lease) {
        perform(update { $0.machine.discard(lease.id, lease.connection) })
    }

    /// Fails every waiter and closes the idle connections; leased ones close when they come back.
    func close() {
        perform(update { $0.machine.close() })
    }

    /// The slots in use and the callers waiting (for tests and status output).
    var usage: (slots: Int, waiting: Int) {
        state.withLock { ($0.machine.slotsInUse, $0.machine.waiters.count) }
    }

    // MARK: Running the state machine's actions

    /// Runs one event under the lock and collects what its actions need done outside it.
    private func update(_ event: (inout State) -> Machine.Actions) -> Work {
        state.withLock { state in
            let actions = event(&state)
            var work = Work()
            for (request, id, connection) in actions.handOver {
                if let timer = state.timers.removeValue(forKey: request) { work.timers.append(timer) }
                guard let continuation = state.continuations.removeValue(forKey: request) else { continue }
                work.resume.append((continuation, .success(Lease(id: id, connection: connection))))
            }
            for (request, failure) in actions.fail {
                if let timer = state.timers.removeValue(forKey: request) { work.timers.append(timer) }
                guard let continuation = state.continuations.removeValue(forKey: request) else { continue }
                work.resume.append((continuation, .failure(Self.error(failure))))
            }
            work.close = actions.close
            work.open = actions.open
            return work
        }
    }

    private func perform(_ work: Work) {
        for timer in work.timers { timer.cancel() }
        for (continuation, result) in work.resume { continuation.resume(with: result) }
        for connection in work.close { closeConnection(connection) }
        for id in work.open {
            Task {
                do {
                    let connection = try await openConnection()
                    perform(update { $0.machine.opened(id, connection) })
                } catch {
                    perform(update { $0.machine.openFailed(id, error) })
                }
            }
        }
    }

    private func timer(for request: Int, at deadline: PoolClock.Instant) -> Task<Void, Never> {
        Task { [clock] in
            do {
                try await clock.sleep(until: deadline, tolerance: nil)
            } catch {
                return  // served or cancelled first
            }
            perform(update { $0.machine.timedOut(request) })
        }
    }

    private static func error(_ failure: Machine.Failure) -> any Error {
        switch failure {
        case .closed: RedisError(.closed, "the connection pool was closed")
        case .timeout: RedisError(.timeout, "no pooled connection became free before the deadline")
        case .cancelled: CancellationError()
        case .openFailed(let error): error
        }
    }
}

/// Dedicated connections to one server (a cluster client keeps one such pool per primary).
typealias DedicatedPool = ConnectionPool<RedisConnection, ContinuousClock>

extension ConnectionPool where Connection == RedisConnection, PoolClock == ContinuousClock {
    /// Opens up to `maximumConnections` connections to `configuration`'s server, each a caller's own
    /// (with Sentinel, to the primary `resolver` names when each connects).
    convenience init(configuration: RedisConfiguration, maximumConnections: Int, resolver: SentinelResolver? = nil) {
        self.init(
            maximumConnections: maximumConnections, clock: .continuous,
            open: { try RedisConnection(configuration: configuration, shared: false, resolver: resolver) },
            close: { $0.close() })
    }
}
