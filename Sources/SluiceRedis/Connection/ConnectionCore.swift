import CHiredis
import DequeModule
import Logging

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The machinery behind ``RedisConnection``: a queue shared with callers, and an I/O thread that
/// owns the socket.
///
/// The I/O thread connects without blocking (connect, TLS handshake, `AUTH`, `SELECT`, all in its
/// poll loop), so commands submitted meanwhile wait in ``waiting`` and count that time against
/// their deadlines: one whose deadline passes before the connection is ready fails with
/// ``RedisError/Code/timeout`` and is never written, and a cancelled caller's command is skipped.
///
/// With Redis Sentinel (``RedisConfiguration/sentinel``) each connection attempt first asks the
/// ``SentinelResolver`` for the primary's address and checks with `ROLE` that the server it reaches
/// is a primary. While a fail-over is under way, failed attempts are repeated (after the backoff)
/// for as long as waiting commands have time left, so a command that was never sent reaches the new
/// primary. A `-READONLY` reply (the primary was turned into a replica) stops new writes on the
/// connection, lets the replies already due arrive, then reconnects; on a shared connection the
/// refused command (it did not run) is sent again on the new one, and when the sentinels name a new
/// primary the connection moves the same way. A dedicated connection may hold state a new one would
/// not (`MULTI`), so there the caller gets the `-READONLY` error, and it is not moved while in use
/// (``RedisClient/withConnection(deadline:_:)`` skips pooled ones left on an old primary).
/// Commands written before a connection was lost may have run and are never sent twice: their
/// callers get the connection's error.
///
/// A caller alone on an idle connection makes its round trip itself (``roundTripAlone(_:_:)``,
/// ``RedisConfiguration/loneCallerReplyWait``): while the I/O thread sleeps with nothing in flight,
/// it lends the transport, and the caller that takes it writes its command, waits in `poll` for the
/// reply and gives the transport back, with its command when the reply did not come in time.
///
/// `@unchecked Sendable` because the two halves are guarded differently, and the compiler cannot
/// see it: `shared` is behind a `Mutex`; the transport, the queues and the backoff state are
/// touched only by the I/O thread (`run()` and what it calls), never by callers, except the
/// transport by the one caller it is lent to (``Shared/lent``), while the I/O thread keeps off it.
final class ConnectionCore: TaskExecutor, @unchecked Sendable {
    typealias Reply = Result<RedisValue, RedisError>

    struct Submission {
        var bytes: [UInt8]
        var slot: ReplySlot
        var deadline: UInt64
    }

    struct Shared {
        var queue: [Submission] = []
        /// Tasks that asked to run on this connection's I/O thread (``RedisConnection/executor``).
        var jobs: [UnownedJob] = []
        /// The I/O thread is (about to be) blocked in `poll` and must be woken for new work.
        var ioThreadPolling = false
        /// A wake-up byte is already on its way.
        var wakePending = false
        var closed = false
        var connected = false
        /// The sentinels' answer to connection attempt `attempt`, for the I/O thread to take.
        var resolved: (attempt: Int, result: Result<RedisConfiguration.Endpoint, RedisError>)?
        /// The server of the ready connection, if any.
        var connectedTo: RedisConfiguration.Endpoint?
        /// The I/O thread sleeps with nothing in flight and lends the transport to a lone caller.
        var lendable = false
        /// A lone caller holds the transport: the I/O thread does not touch it.
        var lent = false
        /// The I/O thread woke while the transport was lent and waits for it back.
        var awaitingReturn = false
        /// What a lone caller gave back with the transport, for the I/O thread to take.
        var handedBack: HandBack?
        /// Lone round trips that ended with their reply since the I/O thread last looked.
        var loneRoundTrips = 0
        /// Lone round trips that ended with their reply, in all (for tests).
        var loneRoundTripsInAll = 0
    }

    /// A lone round trip that did not end with the caller: its command when the reply was not read
    /// in time (the I/O thread reads it), and the error that ended the connection, if one did.
    struct HandBack {
        var submission: Submission?
        /// A batch's replies read so far.
        var replies: [Reply]
        var failure: RedisError?
    }

    /// Where the I/O thread stands with the socket.
    private enum Phase {
        /// No socket.
        case idle
        /// Waiting for the sentinels to name the primary (connection attempt number `attempt`).
        case resolving(attempt: Int)
        /// Waiting for the socket to connect to `addresses[index]`.
        case connecting(addresses: [SocketAddress], index: Int)
        /// TLS handshake in progress.
        case handshaking
        /// Waiting for the replies to the setup commands (`AUTH`, `SELECT`, or a `PING` over TLS).
        case settingUp(commands: [String], answered: Int)
        case ready
        /// The server answered `-READONLY` (no longer the primary): nothing more is written, the
        /// replies already due are read, then the connection is replaced.
        case draining
    }

    let configuration: RedisConfiguration
    private let shared = SluiceMutex(Shared())
    private let wakeReadFD: Int32
    private let wakeWriteFD: Int32
    private let commandTimeoutNanos: UInt64
    private let tls: TLSContext?
    /// Names the primary on each connection attempt with Redis Sentinel; `nil` otherwise.
    private let resolver: SentinelResolver?
    /// Other callers share the connection, so it holds no state of theirs (see ``RedisConnection/isShared``).
    private let isShared: Bool
    /// ``RedisConfiguration/loneCallerReplyWait``.
    private let loneCallerWaitNanos: UInt64

    // I/O thread only.
    private var phase = Phase.idle
    private var transport: Transport?
    /// The deadline of the connection attempt under way.
    private var connectDeadline: UInt64 = 0
    /// Commands submitted while connecting, not written yet.
    private var waiting = Deque<Submission>()
    /// Commands written, waiting for their replies, in order.
    private var inFlight = Deque<Submission>()
    private var batchReplies: [Reply] = []
    private var nextConnectAttempt: UInt64 = 0
    private var currentBackoffNanos: UInt64 = 0
    private var lastConnectError: RedisError?
    /// The server connected to: the configured endpoint, or the primary the sentinels named.
    private var endpoint: RedisConfiguration.Endpoint
    private var connectAttempts = 0
    /// The resolver's ``SentinelResolver/generation`` last looked at.
    private var seenGeneration = 0
    /// The last failed attempt may succeed when repeated (Sentinel: a fail-over under way), so
    /// waiting commands wait for the next attempt instead of failing with it.
    private var retryAfterBackoff = false
    /// Whether this connection was ready once: a later `ready` is a reconnect (logged and counted).
    private var wasReady = false
    /// Failed connection attempts since the connection was last ready (logged at `debug` after the first).
    private var failedAttempts = 0
    /// Passes of the run loop in a row that each wrote one command to an idle connection.
    private var lonePasses = 0
    /// How many lone passes in a row make the I/O thread lend the transport; doubled (up to
    /// ``maximumPassesBeforeLending``) each time a lone caller's wait runs out, reset when one ends well.
    private var passesBeforeLending = ConnectionCore.initialPassesBeforeLending
    private static let initialPassesBeforeLending = 8
    private static let maximumPassesBeforeLending = 4096
    /// A cancelled lone caller returns when its wait ends: it is never longer than this.
    private static let longestLoneCallerWait: UInt64 = 10_000_000

    /// - Parameter resolver: the client's resolver when ``RedisConfiguration/sentinel`` is set
    ///   (shared by its connections); a connection of its own makes one when it is not given.
    init(configuration: RedisConfiguration, shared: Bool, resolver: SentinelResolver? = nil) throws(RedisError) {
        self.configuration = configuration
        self.isShared = shared
        self.commandTimeoutNanos = configuration.commandTimeout.nanoseconds
        self.loneCallerWaitNanos = min(configuration.loneCallerReplyWait.nanoseconds, Self.longestLoneCallerWait)
        self.endpoint = configuration.endpoint
        if configuration.sentinel != nil {
            self.resolver = resolver ?? SentinelResolver(configuration: configuration)
        } else {
            self.resolver = nil
        }
        if let settings = configuration.tls {
            if configuration.sentinel == nil, case .unixSocket = configuration.endpoint {
                throw RedisError(.tlsConfiguration, "TLS over a unix socket is not supported")
            }
            tls = try TLSContext(settings)
        } else {
            tls = nil
        }
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else {
            throw RedisError(.io, "could not create the wake-up pipe: \(Platform.describe(errno: errno))")
        }
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        wakeReadFD = fds[0]
        wakeWriteFD = fds[1]
    }

    func start() {
        Platform.startThread { [self] in run() }
    }

    var isConnected: Bool { shared.withLock { $0.connected } }

    /// The server the connection is ready on, if any.
    var connectedTo: RedisConfiguration.Endpoint? { shared.withLock { $0.connectedTo } }

    /// How many commands lone callers sent and read the replies of themselves (``roundTripAlone(_:_:)``).
    var loneRoundTrips: Int { shared.withLock { $0.loneRoundTripsInAll } }

    // MARK: Caller side

    /// Queues a command (or a batch's commands, encoded back to back) for `slot`, whose
    /// continuation is installed already.
    func submit(_ bytes: [UInt8], _ slot: ReplySlot) {
        if loneCallerWaitNanos > 0, roundTripAlone(bytes, slot) { return }
        let submission = Submission(bytes: bytes, slot: slot, deadline: monotonicNanos() &+ commandTimeoutNanos)
        let (accepted, mustWake) = shared.withLock { state -> (Bool, Bool) in
            if state.closed { return (false, false) }
            state.queue.append(submission)
            if state.ioThreadPolling && !state.wakePending {
                state.wakePending = true
                return (true, true)
            }
            return (true, false)
        }
        if !accepted {
            slot.fail(RedisError(.closed, "the connection was closed"))
            return
        }
        if mustWake { wake() }
    }

    /// Runs a job of a task that prefers this connection's I/O thread. After the connection is
    /// closed, jobs run on the global executor instead, so that no task is left suspended.
    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let (accepted, mustWake) = shared.withLock { state -> (Bool, Bool) in
            if state.closed { return (false, false) }
            state.jobs.append(job)
            if state.ioThreadPolling && !state.wakePending {
                state.wakePending = true
                return (true, true)
            }
            return (true, false)
        }
        if !accepted {
            globalConcurrentExecutor.enqueue(job)
            return
        }
        if mustWake { wake() }
    }

    func close() {
        let mustWake = shared.withLock { state -> Bool in
            if state.closed { return false }
            state.closed = true
            return true
        }
        if mustWake { wake() }
    }

    /// Makes the round trip on the caller's thread when the I/O thread lends the transport (see
    /// ``RedisConfiguration/loneCallerReplyWait``): writes the command, waits in `poll` for its
    /// replies, answers `slot` and gives the transport back. When the wait runs out first, or
    /// the connection fails, the command goes back with the transport and the I/O thread carries
    /// on from there, as if it had written it. Returns false, having done nothing, when the
    /// transport is not lent (another caller has it, commands are queued, or none is idle).
    private func roundTripAlone(_ bytes: [UInt8], _ slot: ReplySlot) -> Bool {
        let borrowed = shared.withLock { state -> Bool in
            guard state.lendable, !state.lent, !state.closed, state.queue.isEmpty else { return false }
            state.lent = true
            return true
        }
        guard borrowed else { return false }
        if slot.isAnswered {
            // Cancelled since it installed its continuation: the command is not sent.
            let mustWake = shared.withLock { state -> Bool in
                state.lent = false
                return state.awaitingReturn
            }
            if mustWake { wake() }
            return true
        }
        // Lent: the I/O thread set `transport` before it made the transport lendable, under the
        // lock, and leaves both alone until it is given back.
        guard let transport = self.transport else {
            // Never lent without one; should it happen, the command goes the usual way.
            let mustWake = shared.withLock { state -> Bool in
                state.lent = false
                state.lendable = false
                return state.awaitingReturn
            }
            if mustWake { wake() }
            return false
        }
        let now = monotonicNanos()
        let deadline = now &+ commandTimeoutNanos
        let waitEnd = min(now &+ loneCallerWaitNanos, deadline)
        var replies: [Reply] = []
        var failure: RedisError?
        do throws(RedisError) {
            transport.append(bytes)
            try transport.flush()
            while true {
                // Reading over TLS may have made the session write (a key update): it goes out now.
                if transport.hasPendingOutput { try transport.flush() }
                if transport.hasPendingOutput { break }
                while replies.count < slot.replyCount, let value = try transport.nextReply() {
                    replies.append(Self.reply(to: slot, value))
                }
                if replies.count == slot.replyCount { break }
                let now = monotonicNanos()
                // A cancelled caller stops waiting (its reply is read and dropped by the I/O thread).
                if now >= waitEnd || slot.isAnswered { break }
                var socket = pollfd(fd: transport.fd, events: Int16(POLLIN), revents: 0)
                // In slices of 1 ms (`poll` counts whole milliseconds), so that a cancellation is seen.
                let ready = poll(&socket, 1, 1)
                if ready > 0, try transport.receive() {
                    while replies.count < slot.replyCount, let value = try transport.nextReply() {
                        replies.append(Self.reply(to: slot, value))
                    }
                    throw RedisError(.endOfFile, "the server closed the connection")
                }
            }
        } catch {
            failure = error
        }
        let answered = replies.count == slot.replyCount
        var handBack: HandBack?
        if !answered {
            handBack = HandBack(
                submission: Submission(bytes: [], slot: slot, deadline: deadline), replies: replies, failure: failure)
        } else if let failure {
            handBack = HandBack(submission: nil, replies: [], failure: failure)
        }
        let mustWake = shared.withLock { state -> Bool in
            state.lent = false
            guard let handBack else {
                state.loneRoundTrips += 1
                state.loneRoundTripsInAll += 1
                return state.awaitingReturn
            }
            // Not lendable again before the I/O thread has taken the command back: the next
            // caller would read its reply.
            state.lendable = false
            state.handedBack = handBack
            if state.awaitingReturn { return true }
            if state.ioThreadPolling && !state.wakePending {
                state.wakePending = true
                return true
            }
            return false
        }
        if mustWake { wake() }
        if answered {
            if slot.replyCount == 1 {
                slot.answer(replies[0])
            } else {
                slot.answer(replies)
            }
        }
        return true
    }

    private func wake() {
        var byte: UInt8 = 1
        _ = write(wakeWriteFD, &byte, 1)
    }

    // MARK: I/O thread

    private func run() {
        var work: [Submission] = []
        var jobs: [UnownedJob] = []
        while true {
            let (closed, resolved) = shared.withLock { state in
                swap(&state.queue, &work)
                swap(&state.jobs, &jobs)
                defer { state.resolved = nil }
                return (state.closed, state.resolved)
            }
            if !jobs.isEmpty {
                // Tasks that prefer this thread resume here: no hand-off to another thread, and
                // the commands they send are taken by the same loop, right after.
                let executor = asUnownedTaskExecutor()
                for job in jobs { job.runSynchronously(on: executor) }
                jobs.removeAll(keepingCapacity: true)
                // What they sent goes out in this pass, not after a needless non-blocking `poll`.
                shared.withLock { state in
                    work.append(contentsOf: state.queue)
                    state.queue.removeAll(keepingCapacity: true)
                }
            }
            if closed {
                shutDown(pendingWork: work)
                return
            }
            if let resolved { primaryResolved(attempt: resolved.attempt, resolved.result) }
            if let resolver, resolver.generation != seenGeneration { primaryMayHaveChanged(resolver) }
            if !work.isEmpty {
                if case .ready = phase, work.count == 1, inFlight.isEmpty {
                    lonePasses += 1
                } else {
                    lonePasses = 0
                }
                for submission in work { accept(submission) }
                work.removeAll(keepingCapacity: true)
            }
            if isWriting, let transport, transport.hasPendingOutput { flush() }
            waitForEvents()
        }
    }

    /// Whether written commands are on their way: ready, or draining after `-READONLY`.
    private var isWriting: Bool {
        switch phase {
        case .ready, .draining: return true
        case .idle, .resolving, .connecting, .handshaking, .settingUp: return false
        }
    }

    /// Takes one new submission: writes it on a ready connection, or keeps it until the connection
    /// is ready (starting to connect when none is under way).
    private func accept(_ submission: Submission) {
        switch phase {
        case .ready:
            writeOut(submission)
        case .resolving, .connecting, .handshaking, .settingUp, .draining:
            waiting.append(submission)
        case .idle:
            if submission.slot.isAnswered { return }
            if retryAfterBackoff {
                // The next attempt is due at `nextConnectAttempt` (the poll loop starts it); the
                // command waits for it, within its own deadline.
                waiting.append(submission)
                return
            }
            let now = monotonicNanos()
            if now < nextConnectAttempt, let lastConnectError, lastConnectError.code == .unknownPrimary {
                submission.slot.fail(lastConnectError)
                return
            }
            if now < nextConnectAttempt, let lastConnectError {
                let waitMillis = (nextConnectAttempt - now) / 1_000_000
                submission.slot.fail(
                    RedisError(.unavailable, "reconnecting in \(waitMillis) ms after: \(lastConnectError.message)"))
                return
            }
            waiting.append(submission)
            startConnecting()
        }
    }

    /// Writes a submission unless its caller was cancelled or its deadline has passed.
    private func writeOut(_ submission: Submission) {
        if submission.slot.isAnswered { return }
        if submission.deadline <= monotonicNanos() {
            submission.slot.fail(
                RedisError(.timeout, "the deadline (\(configuration.commandTimeout)) passed before it could be sent"))
            return
        }
        transport!.append(submission.bytes)
        // The bytes are in the output buffer now; the queue keeps who waits, and until when (and,
        // with Sentinel, the bytes, to send again after a `-READONLY`).
        inFlight.append(
            Submission(
                bytes: resolver == nil ? [] : submission.bytes, slot: submission.slot, deadline: submission.deadline))
    }

    private func flush() {
        do throws(RedisError) {
            try transport?.flush()
        } catch {
            connectionFailed(error)
        }
    }

    /// Blocks in `poll` until the socket is ready, a caller wakes the thread, or a deadline passes
    /// (the oldest in-flight or waiting command's, or the connection attempt's). With work already
    /// waiting it only looks (timeout 0), so that a steady stream of new commands or jobs can never
    /// starve reading replies or enforcing deadlines.
    ///
    /// With nothing in flight after a run of lone commands, it lends the transport while it sleeps
    /// (``roundTripAlone(_:_:)``) and watches the socket only for the server's end of it.
    private func waitForEvents() {
        let lend = mayLend
        let mayBlock = shared.withLock { state -> Bool in
            if !state.queue.isEmpty || !state.jobs.isEmpty || state.closed || state.resolved != nil { return false }
            state.ioThreadPolling = true
            state.lendable = lend
            return true
        }
        var fds: [pollfd] = [pollfd(fd: wakeReadFD, events: Int16(POLLIN), revents: 0)]
        if let transport {
            var events: Int16
            if case .connecting = phase {
                events = Int16(POLLOUT)
            } else if lend && mayBlock {
                // The borrower reads the replies; a `POLLIN` here would wake this thread for each.
                events = sluice_poll_peer_closed()
            } else {
                events = Int16(POLLIN)
                if transport.hasPendingOutput { events |= Int16(POLLOUT) }
            }
            fds.append(pollfd(fd: transport.fd, events: events, revents: 0))
        }
        var timeoutMillis: Int32 = mayBlock ? -1 : 0
        if mayBlock, let deadline = nextDeadline() {
            let now = monotonicNanos()
            timeoutMillis = deadline <= now ? 0 : Int32(clamping: (deadline - now + 999_999) / 1_000_000)
        }
        let ready = poll(&fds, nfds_t(fds.count), timeoutMillis)

        if mayBlock {
            let (stillLent, handedBack, loneRoundTrips) = shared.withLock { state in
                state.ioThreadPolling = false
                state.wakePending = false
                state.lendable = false
                if state.lent {
                    state.awaitingReturn = true
                    return (true, HandBack?.none, 0)
                }
                defer {
                    state.handedBack = nil
                    state.loneRoundTrips = 0
                }
                return (false, state.handedBack, state.loneRoundTrips)
            }
            if loneRoundTrips > 0 { passesBeforeLending = Self.initialPassesBeforeLending }
            if stillLent {
                // What the poll saw of the socket is stale by the time the transport is back.
                awaitTransport()
                return
            }
            if let handedBack { takeBack(handedBack) }
        }
        if ready > 0 && fds[0].revents != 0 { drainWakePipe() }
        if ready > 0, fds.count > 1, fds[1].revents != 0 { socketEvent(fds[1].revents) }
        expireOverdue()
        if case .idle = phase, retryAfterBackoff, !waiting.isEmpty, nextConnectAttempt <= monotonicNanos() {
            startConnecting()
        }
    }

    /// Whether the transport may be lent while this thread sleeps: a run of lone commands, and
    /// nothing written, waiting or half read.
    private var mayLend: Bool {
        // Without a "peer closed" poll event this thread could not see the server end a lent connection.
        guard loneCallerWaitNanos > 0, sluice_poll_peer_closed() != 0, lonePasses >= passesBeforeLending,
            resolver == nil, case .ready = phase,
            inFlight.isEmpty, waiting.isEmpty, batchReplies.isEmpty, let transport, !transport.hasPendingOutput
        else { return false }
        return true
    }

    /// Another caller (or `close`) came while a lone caller holds the transport: sleeps until it
    /// is given back, then takes what came with it. The borrower's wait is bounded, so this is too.
    private func awaitTransport() {
        lonePasses = 0
        while true {
            drainWakePipe()
            let returned = shared.withLock { state -> (HandBack?, Int)? in
                guard !state.lent else { return nil }
                state.awaitingReturn = false
                defer {
                    state.handedBack = nil
                    state.loneRoundTrips = 0
                }
                return (state.handedBack, state.loneRoundTrips)
            }
            if let returned {
                if returned.1 > 0 { passesBeforeLending = Self.initialPassesBeforeLending }
                if let handedBack = returned.0 { takeBack(handedBack) }
                return
            }
            var wakeUp = pollfd(fd: wakeReadFD, events: Int16(POLLIN), revents: 0)
            _ = poll(&wakeUp, 1, -1)
        }
    }

    /// Takes over what a lone caller could not finish: its command's replies are read here, as if
    /// this thread had written it; a failure ends the connection as one seen here would.
    private func takeBack(_ handedBack: HandBack) {
        if let submission = handedBack.submission {
            inFlight.append(submission)
            batchReplies = handedBack.replies
            lonePasses = 0
            if handedBack.failure == nil {
                // The reply took longer than the wait: lend again only after twice as many lone commands.
                passesBeforeLending = min(passesBeforeLending * 2, Self.maximumPassesBeforeLending)
            }
        }
        if let failure = handedBack.failure { connectionFailed(failure) }
    }

    private func nextDeadline() -> UInt64? {
        var deadline = inFlight.first?.deadline
        if let head = waiting.first?.deadline { deadline = min(deadline ?? head, head) }
        switch phase {
        case .resolving, .connecting, .handshaking, .settingUp:
            deadline = min(deadline ?? connectDeadline, connectDeadline)
        case .idle:
            if retryAfterBackoff && !waiting.isEmpty {
                deadline = min(deadline ?? nextConnectAttempt, nextConnectAttempt)
            }
        case .ready, .draining: break
        }
        return deadline
    }

    private func socketEvent(_ events: Int16) {
        guard let transport else { return }
        do throws(RedisError) {
            switch phase {
            case .idle, .resolving: return
            case .connecting(let addresses, let index):
                let error = sluice_connect_result(transport.fd)
                if error == 0 {
                    try socketConnected()
                } else {
                    try connectNextAddress(addresses, after: index, failure: error)
                }
            case .handshaking:
                if events & Int16(POLLIN | POLLERR | POLLHUP) != 0, try transport.receive() {
                    throw RedisError(.endOfFile, "the server closed the connection during the TLS handshake")
                }
                if try transport.continueHandshake() {
                    try beginSetup()
                } else {
                    try transport.flush()
                }
            case .settingUp, .ready, .draining:
                if events & (Int16(POLLIN | POLLERR | POLLHUP) | sluice_poll_peer_closed()) != 0 {
                    let closed = try transport.receive()
                    // Replies that arrived complete before the server closed still reach their callers.
                    try readReplies()
                    if closed { throw RedisError(.endOfFile, "the server closed the connection") }
                }
                if self.transport != nil, events & Int16(POLLOUT) != 0 { try self.transport?.flush() }
                finishDraining()
            }
        } catch {
            connectionFailed(error)
        }
    }

    private func drainWakePipe() {
        var buffer = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        // One read takes every byte in practice (one is written per wake-up); a full buffer means
        // there may be more.
        while withUnsafeMutableBytes(of: &buffer, { read(wakeReadFD, $0.baseAddress, $0.count) })
            == MemoryLayout.size(ofValue: buffer)
        {}
    }

    private func readReplies() throws(RedisError) {
        while let transport, let value = try transport.nextReply() {
            if isWriting {
                try deliver(value)
            } else {
                try setupReplied(value)
            }
        }
    }

    /// Hands one reply to the oldest waiter.
    private func deliver(_ value: RedisValue) throws(RedisError) {
        guard let head = inFlight.first else {
            // A reply nobody asked for: the stream is out of step, so nothing after it can be trusted.
            throw RedisError(.protocolError, "received a reply no command was waiting for")
        }
        if resolver != nil, case .error(let message) = value, message.hasPrefix("READONLY"), noLongerPrimary(head) {
            return
        }
        let reply = Self.reply(to: head.slot, value)
        if head.slot.replyCount == 1 {
            _ = inFlight.popFirst()
            head.slot.answer(reply)
        } else {
            batchReplies.append(reply)
            if batchReplies.count == head.slot.replyCount {
                _ = inFlight.popFirst()
                let replies = batchReplies
                batchReplies.removeAll(keepingCapacity: true)
                head.slot.answer(replies)
            }
        }
    }

    /// A reply as its caller gets it: an error reply is a ``RedisError/Code/server`` failure.
    private static func reply(to slot: ReplySlot, _ value: RedisValue) -> Reply {
        if case .error(let message) = value { return .failure(RedisError(.server, message, command: slot.command)) }
        return .success(value)
    }

    /// A `-READONLY` reply with Sentinel: the server was turned into a replica. The command did not
    /// run, so a single command waits to be sent again on the next connection (returns true); no
    /// more commands are written here, and the connection is replaced once the replies already due
    /// have arrived. A batch gets its replies as they are (some of its commands may have run).
    private func noLongerPrimary(_ head: Submission) -> Bool {
        if case .ready = phase {
            phase = .draining
            configuration.observability.logger.warning(
                "Redis primary became a replica (READONLY); following the fail-over to the primary the sentinels name")
        }
        guard isShared, head.slot.replyCount == 1, batchReplies.isEmpty else { return false }
        _ = inFlight.popFirst()
        if !head.slot.isAnswered { waiting.append(head) }
        return true
    }

    /// The sentinels answered a lookup: when they name another primary than the one connected to
    /// (a fail-over), nothing more is written here and the connection is replaced once the replies
    /// already due have arrived.
    private func primaryMayHaveChanged(_ resolver: SentinelResolver) {
        seenGeneration = resolver.generation
        guard isShared, case .ready = phase, let primary = resolver.lastKnownPrimary, primary != endpoint else {
            return
        }
        configuration.observability.logger.warning(
            "Redis fail-over: the sentinels name another primary; moving to it",
            metadata: ["redis.primary": "\(primary)"])
        phase = .draining
        finishDraining()
    }

    /// Ends a drain once every reply due has arrived: the connection is closed and the waiting
    /// commands go out on a new one, to the primary the sentinels name now.
    private func finishDraining() {
        guard case .draining = phase, inFlight.isEmpty else { return }
        transport = nil
        phase = .idle
        shared.withLock { state in
            state.connected = false
            state.connectedTo = nil
        }
        if !waiting.isEmpty { startConnecting() }
    }

    /// Fails the commands that waited past their deadline. A written one drops the connection (a
    /// late reply could not be told from the next one); one still waiting for the connection is
    /// failed and never written; a connection attempt past its deadline is given up.
    private func expireOverdue() {
        let now = monotonicNanos()
        if let oldest = inFlight.first, oldest.deadline <= now {
            connectionFailed(RedisError(.timeout, "no reply within \(configuration.commandTimeout)"))
        }
        while let head = waiting.first, head.deadline <= now || head.slot.isAnswered {
            _ = waiting.popFirst()
            var message =
                "no connection within the command's deadline (\(configuration.commandTimeout)); it was not sent"
            if retryAfterBackoff, let lastConnectError { message += " (last attempt: \(lastConnectError.message))" }
            head.slot.fail(RedisError(.timeout, message))
        }
        guard connectDeadline <= now else { return }
        switch phase {
        case .resolving:
            connectionFailed(
                RedisError(
                    .unavailable,
                    "the sentinels did not name the primary '\(configuration.sentinel?.primaryName ?? "")' "
                        + "within \(configuration.connectTimeout)"),
                fromSentinels: true)
        case .connecting, .settingUp:
            connectionFailed(
                RedisError(.connect, "\(endpointDescription): could not connect within \(configuration.connectTimeout)")
            )
        case .handshaking:
            connectionFailed(
                RedisError(
                    .tlsHandshake,
                    "\(endpointDescription): no TLS handshake within \(configuration.connectTimeout) "
                        + "(does the port speak TLS?)"))
        case .idle, .ready, .draining: break
        }
    }

    /// Closes the socket and fails every command written on it or waiting for it. After a failed
    /// connection attempt, the next one waits for the backoff.
    private func connectionFailed(_ error: RedisError, fromSentinels: Bool = false) {
        var error = error
        retryAfterBackoff = false
        var wasDraining = false
        switch phase {
        case .idle: return
        case .ready:
            let observability = configuration.observability
            observability.connectionLosses.increment()
            observability.logger.warning(
                "Redis connection lost; the next command reconnects",
                metadata: ["redis.error": "\(error.code)", "redis.reason": "\(error.message)"])
        case .draining: wasDraining = true
        case .resolving, .connecting, .handshaking, .settingUp:
            if tls != nil, case .settingUp = phase, error.code == .endOfFile || error.message.hasPrefix("TLS") {
                // TLS 1.3 ends the handshake before the server has checked the client's
                // certificate: a refusal shows up here, on the first reply.
                error = RedisError(
                    .tlsHandshake,
                    "the server ended the TLS session during setup (a client certificate required or "
                        + "refused?): \(error.message)")
            }
            let backoff = configuration.reconnectBackoff
            currentBackoffNanos =
                currentBackoffNanos == 0
                ? backoff.initial.nanoseconds : min(currentBackoffNanos * 2, backoff.maximum.nanoseconds)
            nextConnectAttempt = monotonicNanos() &+ currentBackoffNanos
            lastConnectError = error
            // With Sentinel, a primary that refuses connections or turns out to be a replica is
            // most likely a fail-over under way: ask the sentinels again after the backoff.
            retryAfterBackoff = resolver != nil && !fromSentinels && error.isConnectionFailure
            failedAttempts += 1
            let logger = configuration.observability.logger
            let metadata: Logger.Metadata = [
                "redis.error": "\(error.code)", "redis.reason": "\(error.message)",
                "redis.backoff_ms": "\(currentBackoffNanos / 1_000_000)",
            ]
            if failedAttempts == 1 && wasReady {
                logger.warning("Redis reconnect failed; backing off", metadata: metadata)
            } else if failedAttempts == 1 {
                logger.warning("Redis connect failed; backing off", metadata: metadata)
            } else {
                logger.debug("Redis connect failed again; backing off", metadata: metadata)
            }
        }
        transport = nil
        phase = .idle
        shared.withLock { state in
            state.connected = false
            state.connectedTo = nil
        }
        batchReplies.removeAll()
        while let submission = inFlight.popFirst() { submission.slot.fail(error) }
        if retryAfterBackoff { return }  // the waiting commands wait for the next attempt
        if wasDraining && !waiting.isEmpty {
            // Commands held back after a `-READONLY` were not run: they go to the new primary.
            startConnecting()
            return
        }
        while let submission = waiting.popFirst() { submission.slot.fail(error) }
    }

    private func shutDown(pendingWork: [Submission]) {
        let closedError = RedisError(.closed, "the connection was closed")
        transport = nil
        phase = .idle
        shared.withLock { state in
            state.connected = false
            state.connectedTo = nil
        }
        while let submission = inFlight.popFirst() { submission.slot.fail(closedError) }
        while let submission = waiting.popFirst() { submission.slot.fail(closedError) }
        for submission in pendingWork { submission.slot.fail(closedError) }
        // The wake-up pipe stays open until deinit: a caller may still be about to write to it.
    }

    deinit {
        Platform.closeDescriptor(wakeReadFD)
        Platform.closeDescriptor(wakeWriteFD)
    }

    // MARK: Connecting

    private var endpointDescription: String { ConnectionHandshake.describe(endpoint) }

    /// Starts a connection attempt; the poll loop carries it on. With Sentinel, the sentinels are
    /// asked for the primary first (off this thread; the answer comes back through ``Shared``).
    private func startConnecting() {
        connectDeadline = monotonicNanos() &+ configuration.connectTimeout.nanoseconds
        retryAfterBackoff = false
        guard let resolver else {
            connect(to: configuration.endpoint)
            return
        }
        connectAttempts += 1
        let attempt = connectAttempts
        phase = .resolving(attempt: attempt)
        Task { [self] in
            let result = await resolver.primary()
            let mustWake = shared.withLock { state -> Bool in
                state.resolved = (attempt, result)
                if state.ioThreadPolling && !state.wakePending {
                    state.wakePending = true
                    return true
                }
                return false
            }
            if mustWake { wake() }
        }
    }

    /// The sentinels answered attempt `attempt` (ignored when that attempt was given up meanwhile).
    private func primaryResolved(attempt: Int, _ result: Result<RedisConfiguration.Endpoint, RedisError>) {
        guard case .resolving(let current) = phase, current == attempt else { return }
        switch result {
        case .success(let primary):
            endpoint = primary
            connect(to: primary)
        case .failure(let error):
            connectionFailed(error, fromSentinels: true)
        }
    }

    private func connect(to endpoint: RedisConfiguration.Endpoint) {
        phase = .connecting(addresses: [], index: 0)
        do throws(RedisError) {
            switch endpoint {
            case .tcp:
                let addresses = try ConnectionHandshake.resolve(endpoint)
                try connectNextAddress(addresses, after: -1, failure: 0)
            case .unixSocket(let path):
                var fd: Int32 = -1
                let result = sluice_connect_unix(path, &fd)
                guard result >= 0 else {
                    throw RedisError(.connect, "\(path): \(Platform.describe(errno: sluice_errno()))")
                }
                transport = try Transport(fd: fd, tls: nil, serverName: "")
                phase = .connecting(addresses: [], index: 0)
                if result == 0 { try socketConnected() }
            }
        } catch {
            connectionFailed(error)
        }
    }

    /// Tries the address after `index` (the previous one failed with errno `failure`).
    private func connectNextAddress(_ addresses: [SocketAddress], after index: Int, failure: Int32) throws(RedisError) {
        transport = nil
        var lastFailure = failure
        var next = index + 1
        while next < addresses.count {
            var fd: Int32 = -1
            let result = addresses[next].withSockaddr { sluice_connect($0, $1, &fd) }
            if result >= 0 {
                transport = try Transport(fd: fd, tls: tls, serverName: serverName)
                phase = .connecting(addresses: addresses, index: next)
                if result == 0 { try socketConnected() }
                return
            }
            lastFailure = sluice_errno()
            next += 1
        }
        throw RedisError(.connect, "\(endpointDescription): \(Platform.describe(errno: lastFailure))")
    }

    private var serverName: String {
        if let name = configuration.tls?.serverName { return name }
        if case .tcp(let host, _) = endpoint { return host }
        return ""
    }

    private func socketConnected() throws(RedisError) {
        guard let transport else { return }
        if tls != nil {
            phase = .handshaking
            if try transport.continueHandshake() {
                try beginSetup()
            } else {
                try transport.flush()
            }
        } else {
            try beginSetup()
        }
    }

    /// Sends `AUTH` and `SELECT` when configured, and over TLS at least a `PING`: TLS 1.3 lets the
    /// server refuse a client certificate only after the handshake, and that refusal must fail the
    /// connection attempt, not the first caller's command.
    private func beginSetup() throws(RedisError) {
        var commands = ConnectionHandshake.setupCommands(configuration)
        if resolver != nil { commands.append(RedisCommand("ROLE")) }
        if commands.isEmpty && tls != nil { commands = [RedisCommand("PING")] }
        if commands.isEmpty {
            becomeReady()
            return
        }
        for command in commands { transport!.append(command.encoded) }
        phase = .settingUp(commands: commands.map(\.name), answered: 0)
        try transport!.flush()
    }

    private func setupReplied(_ value: RedisValue) throws(RedisError) {
        guard case .settingUp(let commands, let answered) = phase else { return }
        let name = commands[answered]
        if case .error(let message) = value {
            // NOAUTH: the server wants a password the configuration does not give.
            let code: RedisError.Code = name == "AUTH" || message.hasPrefix("NOAUTH") ? .authentication : .server
            // Not a connection failure to retry at once: the server refused the settings.
            throw RedisError(code, message, command: name)
        }
        if name == "ROLE", value.array?.first?.string != "master" {
            let role = value.array?.first?.string ?? "unknown"
            throw RedisError(
                .connect,
                "\(endpointDescription) is a \(role), not the primary '\(configuration.sentinel?.primaryName ?? "")' "
                    + "(a fail-over under way?)")
        }
        if answered + 1 < commands.count {
            phase = .settingUp(commands: commands, answered: answered + 1)
        } else {
            becomeReady()
        }
    }

    private func becomeReady() {
        phase = .ready
        let observability = configuration.observability
        if wasReady {
            observability.reconnects.increment()
            observability.logger.info(
                "Redis connection re-established", metadata: ["redis.failed_attempts": "\(failedAttempts)"])
        } else if failedAttempts > 0 {
            observability.logger.info(
                "Redis connection established", metadata: ["redis.failed_attempts": "\(failedAttempts)"])
        } else {
            observability.logger.debug("Redis connection established")
        }
        wasReady = true
        failedAttempts = 0
        currentBackoffNanos = 0
        nextConnectAttempt = 0
        lastConnectError = nil
        shared.withLock { [endpoint] state in
            state.connected = true
            state.connectedTo = endpoint
        }
        while let submission = waiting.popFirst() { writeOut(submission) }
        flush()
    }

    // MARK: Helpers

    /// Copies hiredis' reply tree into a Swift value; the caller frees the C reply right after.
    static func convert(_ reply: UnsafeMutablePointer<redisReply>) -> RedisValue {
        let r = reply.pointee
        switch r.type {
        case REDIS_REPLY_STRING:
            return .bulkString(r.str == nil ? [] : Array(UnsafeRawBufferPointer(start: r.str, count: r.len)))
        case REDIS_REPLY_STATUS:
            return .simpleString(Self.text(r))
        case REDIS_REPLY_ERROR:
            return .error(Self.text(r))
        case REDIS_REPLY_INTEGER:
            return .integer(Int64(r.integer))
        case REDIS_REPLY_ARRAY:
            var elements: [RedisValue] = []
            elements.reserveCapacity(r.elements)
            for index in 0..<r.elements {
                elements.append(convert(sluice_reply_element(reply, index)))
            }
            return .array(elements)
        default:
            return .null
        }
    }

    private static func text(_ reply: redisReply) -> String {
        guard let str = reply.str else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: str, count: reply.len), as: UTF8.self)
    }
}

extension Duration {
    var nanoseconds: UInt64 {
        let (seconds, attoseconds) = components
        guard seconds >= 0 else { return 0 }
        // Saturates: a duration of centuries means "no limit", not an overflow.
        let (whole, overflow) = UInt64(seconds).multipliedReportingOverflow(by: 1_000_000_000)
        if overflow || whole > UInt64.max / 2 { return UInt64.max / 2 }
        return whole + UInt64(attoseconds / 1_000_000_000)
    }
}
