import DequeModule

/// The connection pool's bookkeeping as a pure state machine: no I/O, no locks, no clock of its own.
///
/// Every event — a caller asks for a connection, a caller gives one back or throws it away, an
/// opening connection arrives or fails, a waiter's deadline passes or its task is cancelled, the
/// pool closes — is one method that changes the state and returns what the owner must do: hand a
/// connection to a waiter, fail a waiter, open or close a connection. The owner
/// (``ConnectionPool``) runs those actions outside its lock. Because the state machine does
/// nothing by itself, every interleaving of these events is a plain unit test.
///
/// The invariants, which every method keeps:
/// - `idle + leased + opening <= maximumConnections` (the slots);
/// - nobody waits while a connection is idle;
/// - no waiter is stranded: whenever callers wait, as many connections are opening as there are
///   waiters, up to the free slots, so a discarded connection or a failed open always leads to a
///   new open or a hand-over — a wake-up is never lost.
struct PoolStateMachine<Connection, Instant: Comparable> {
    typealias RequestID = Int
    typealias ConnectionID = Int

    /// Why a waiter gets no connection.
    enum Failure {
        /// The pool was closed.
        case closed
        /// Its deadline passed first.
        case timeout
        /// Its task was cancelled.
        case cancelled
        /// The connection opened for it could not be opened.
        case openFailed(any Error)
    }

    /// What the owner must do after an event, in this order: hand over, fail, close, open.
    struct Actions {
        /// Connections for waiting callers: resume the request with the connection.
        var handOver: [(request: RequestID, connection: ConnectionID, value: Connection)] = []
        /// Waiting callers that get no connection: resume the request with the failure.
        var fail: [(request: RequestID, failure: Failure)] = []
        /// Connections to close (the pool no longer counts them).
        var close: [Connection] = []
        /// Connections to open; report each with ``opened(_:_:)`` or ``openFailed(_:_:)``.
        var open: [ConnectionID] = []

        var isEmpty: Bool { handOver.isEmpty && fail.isEmpty && close.isEmpty && open.isEmpty }
    }

    /// The answer to ``lease(_:deadline:now:)``.
    enum LeaseResult {
        /// A connection at once.
        case leased(ConnectionID, Connection)
        /// Refused at once.
        case failed(Failure)
        /// The caller waits: it gets its connection or its failure later, through an ``Actions``.
        case waiting
    }

    struct Waiter {
        var request: RequestID
        var deadline: Instant?
    }

    let maximumConnections: Int
    private(set) var idle: [(id: ConnectionID, value: Connection)] = []
    private(set) var leased: Set<ConnectionID> = []
    private(set) var opening: Set<ConnectionID> = []
    private(set) var waiters: Deque<Waiter> = []
    private(set) var isClosed = false
    private var nextConnectionID = 0

    init(maximumConnections: Int) {
        self.maximumConnections = max(1, maximumConnections)
    }

    /// The slots in use: idle, leased and opening connections.
    var slotsInUse: Int { idle.count + leased.count + opening.count }

    // MARK: Events

    /// A caller asks for a connection. It gets an idle one at once; otherwise it waits (first come,
    /// first served) and, when a slot is free, a connection is opened for it.
    mutating func lease(
        _ request: RequestID, deadline: Instant?, now: Instant
    ) -> (LeaseResult, Actions) {
        if isClosed { return (.failed(.closed), Actions()) }
        if let deadline, deadline <= now { return (.failed(.timeout), Actions()) }
        if let connection = idle.popLast() {
            leased.insert(connection.id)
            return (.leased(connection.id, connection.value), Actions())
        }
        waiters.append(Waiter(request: request, deadline: deadline))
        var actions = Actions()
        openForWaiters(&actions)
        return (.waiting, actions)
    }

    /// A caller gives its connection back: the first waiter gets it, or it becomes idle. A
    /// connection the pool does not count as leased (given back twice) is ignored.
    mutating func release(_ connection: ConnectionID, _ value: Connection) -> Actions {
        guard leased.remove(connection) != nil else { return Actions() }
        var actions = Actions()
        if isClosed {
            actions.close.append(value)
        } else {
            offer(connection, value, &actions)
        }
        return actions
    }

    /// A caller throws its connection away (it may be left mid-`MULTI` or mid-blocking read): it is
    /// closed, its slot is free, and a waiter that needs that slot gets a new connection opened.
    mutating func discard(_ connection: ConnectionID, _ value: Connection) -> Actions {
        guard leased.remove(connection) != nil else { return Actions() }
        var actions = Actions()
        actions.close.append(value)
        openForWaiters(&actions)
        return actions
    }

    /// A connection the pool asked for is open.
    mutating func opened(_ connection: ConnectionID, _ value: Connection) -> Actions {
        var actions = Actions()
        guard opening.remove(connection) != nil, !isClosed else {
            actions.close.append(value)
            return actions
        }
        offer(connection, value, &actions)
        return actions
    }

    /// A connection the pool asked for could not be opened: the first waiter learns why (rather
    /// than waiting for a release that may never come), and the others get another try.
    mutating func openFailed(_ connection: ConnectionID, _ error: any Error) -> Actions {
        guard opening.remove(connection) != nil else { return Actions() }
        var actions = Actions()
        if !waiters.isEmpty {
            actions.fail.append((waiters.removeFirst().request, .openFailed(error)))
        }
        openForWaiters(&actions)
        return actions
    }

    /// A waiter's deadline passed. Nothing happens when it was already served.
    mutating func timedOut(_ request: RequestID) -> Actions {
        remove(request, .timeout)
    }

    /// A waiter's task was cancelled. Nothing happens when it was already served.
    mutating func cancelled(_ request: RequestID) -> Actions {
        remove(request, .cancelled)
    }

    /// Closes the pool: waiters fail, idle connections close, leased and opening ones close when
    /// they come back. Later leases fail at once.
    mutating func close() -> Actions {
        var actions = Actions()
        guard !isClosed else { return actions }
        isClosed = true
        actions.fail = waiters.map { ($0.request, .closed) }
        waiters = []
        actions.close = idle.map(\.value)
        idle = []
        return actions
    }

    // MARK: Rules shared by the events

    /// Gives a free connection to the first waiter, or keeps it idle.
    private mutating func offer(_ connection: ConnectionID, _ value: Connection, _ actions: inout Actions) {
        if waiters.isEmpty {
            idle.append((connection, value))
        } else {
            leased.insert(connection)
            actions.handOver.append((waiters.removeFirst().request, connection, value))
        }
    }

    /// Opens connections for waiters that no opening connection will serve, as far as the slots allow.
    private mutating func openForWaiters(_ actions: inout Actions) {
        guard !isClosed else { return }
        while waiters.count > opening.count, slotsInUse < maximumConnections {
            let id = nextConnectionID
            nextConnectionID += 1
            opening.insert(id)
            actions.open.append(id)
        }
    }

    private mutating func remove(_ request: RequestID, _ failure: Failure) -> Actions {
        var actions = Actions()
        if let index = waiters.firstIndex(where: { $0.request == request }) {
            waiters.remove(at: index)
            actions.fail.append((request, failure))
        }
        return actions
    }
}
