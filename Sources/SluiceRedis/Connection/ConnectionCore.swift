import CHiredis
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The machinery behind ``RedisConnection``: a queue shared with callers, and an I/O thread that
/// owns the hiredis context.
///
/// `@unchecked Sendable` because the two halves are guarded differently, and the compiler cannot
/// see it: `shared` is behind a `Mutex`; the hiredis context, the in-flight list and the backoff
/// state are touched only by the I/O thread (`run()` and what it calls), never by callers.
final class ConnectionCore: TaskExecutor, @unchecked Sendable {
    typealias Reply = Result<RedisValue, RedisError>

    /// A caller waiting for one reply, or for the replies of a batch.
    enum Waiter {
        case single(UnsafeContinuation<Reply, Never>)
        case batch(UnsafeContinuation<[Reply], Never>, count: Int)
    }

    struct Submission {
        var bytes: [UInt8]
        var commandName: String
        var waiter: Waiter
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
    }

    let configuration: RedisConfiguration
    private let shared = Mutex(Shared())
    private let wakeReadFD: Int32
    private let wakeWriteFD: Int32
    private let commandTimeoutNanos: UInt64

    // I/O thread only.
    private var context: UnsafeMutablePointer<redisContext>?
    private var inFlight = InFlightQueue()
    private var batchReplies: [Reply] = []
    private var nextConnectAttempt: UInt64 = 0
    private var currentBackoffNanos: UInt64 = 0
    private var lastConnectError: RedisError?

    init(configuration: RedisConfiguration) throws(RedisError) {
        self.configuration = configuration
        self.commandTimeoutNanos = configuration.commandTimeout.nanoseconds
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else {
            throw RedisError(.io, "could not create the wake-up pipe: \(String(cString: strerror(errno)))")
        }
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        wakeReadFD = fds[0]
        wakeWriteFD = fds[1]
    }

    func start() {
        let unmanaged = Unmanaged.passRetained(self)
        var thread = pthread_t()
        let status = pthread_create(
            &thread, nil,
            { argument in
                #if canImport(Darwin)
                    let core = Unmanaged<ConnectionCore>.fromOpaque(argument).takeRetainedValue()
                #else
                    let core = Unmanaged<ConnectionCore>.fromOpaque(argument!).takeRetainedValue()
                #endif
                core.run()
                return nil
            }, unmanaged.toOpaque())
        precondition(status == 0, "could not start the Redis I/O thread: \(status)")
        pthread_detach(thread)
    }

    var isConnected: Bool { shared.withLock { $0.connected } }

    // MARK: Caller side

    func submit(_ command: RedisCommand, _ continuation: UnsafeContinuation<Reply, Never>) {
        let submission = Submission(
            bytes: command.encoded, commandName: command.name, waiter: .single(continuation),
            deadline: monotonicNanos() &+ commandTimeoutNanos)
        enqueue(CollectionOfOne(submission))
    }

    func submitBatch(_ commands: [RedisCommand], _ continuation: UnsafeContinuation<[Reply], Never>) {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(commands.reduce(0) { $0 + $1.encoded.count })
        for command in commands { bytes.append(contentsOf: command.encoded) }
        let submission = Submission(
            bytes: bytes, commandName: commands.count == 1 ? commands[0].name : "pipeline",
            waiter: .batch(continuation, count: commands.count), deadline: monotonicNanos() &+ commandTimeoutNanos)
        enqueue(CollectionOfOne(submission))
    }

    private func enqueue(_ submissions: CollectionOfOne<Submission>) {
        let (accepted, mustWake) = shared.withLock { state -> (Bool, Bool) in
            if state.closed { return (false, false) }
            state.queue.append(contentsOf: submissions)
            if state.ioThreadPolling && !state.wakePending {
                state.wakePending = true
                return (true, true)
            }
            return (true, false)
        }
        if !accepted {
            for submission in submissions {
                Self.fail(
                    submission.waiter, RedisError(.closed, "the connection was closed", command: submission.commandName)
                )
            }
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

    private func wake() {
        var byte: UInt8 = 1
        _ = write(wakeWriteFD, &byte, 1)
    }

    // MARK: I/O thread

    private func run() {
        var work: [Submission] = []
        var jobs: [UnownedJob] = []
        while true {
            let closed = shared.withLock { state -> Bool in
                swap(&state.queue, &work)
                swap(&state.jobs, &jobs)
                return state.closed
            }
            if !jobs.isEmpty {
                // Tasks that prefer this thread resume here: no hand-off to another thread, and
                // the commands they send are taken by the same loop, right after.
                let executor = asUnownedTaskExecutor()
                for job in jobs { job.runSynchronously(on: executor) }
                jobs.removeAll(keepingCapacity: true)
            }
            if closed {
                shutDown(pendingWork: work)
                return
            }
            if !work.isEmpty {
                accept(work)
                work.removeAll(keepingCapacity: true)
            }
            if context != nil, sluice_context_has_pending_output(context!) != 0 { flush() }
            waitForEvents()
        }
    }

    /// Takes new submissions: connects first when needed, then appends their bytes to the
    /// output buffer and remembers who waits for which reply.
    private func accept(_ work: [Submission]) {
        if context == nil {
            if let error = connectIfDue() {
                for submission in work {
                    var error = error
                    error.command = submission.commandName
                    Self.fail(submission.waiter, error)
                }
                return
            }
        }
        guard let context else { return }
        for submission in work {
            let status = submission.bytes.withUnsafeBufferPointer { buffer in
                buffer.withMemoryRebound(to: CChar.self) { sluice_append(context, $0.baseAddress!, $0.count) }
            }
            if status != REDIS_OK {
                Self.fail(submission.waiter, RedisError(.io, "out of memory", command: submission.commandName))
                continue
            }
            inFlight.append(submission)
        }
    }

    private func flush() {
        guard let context else { return }
        var done: Int32 = 0
        if redisBufferWrite(context, &done) != REDIS_OK {
            dropConnection(failingWith: contextError(context))
        }
    }

    /// Blocks in `poll` until the socket is readable (or writable, with output pending), a caller
    /// wakes the thread, or the oldest in-flight command reaches its deadline.
    /// With work already waiting it only looks (timeout 0), so that a steady stream of new
    /// commands or jobs can never starve reading replies or enforcing deadlines.
    private func waitForEvents() {
        let mayBlock = shared.withLock { state -> Bool in
            if !state.queue.isEmpty || !state.jobs.isEmpty || state.closed { return false }
            state.ioThreadPolling = true
            return true
        }
        var fds: [pollfd] = [pollfd(fd: wakeReadFD, events: Int16(POLLIN), revents: 0)]
        if let context {
            var events = Int16(POLLIN)
            if sluice_context_has_pending_output(context) != 0 { events |= Int16(POLLOUT) }
            fds.append(pollfd(fd: sluice_context_fd(context), events: events, revents: 0))
        }
        var timeoutMillis: Int32 = mayBlock ? -1 : 0
        if mayBlock, let oldest = inFlight.first {
            let now = monotonicNanos()
            timeoutMillis = oldest.deadline <= now ? 0 : Int32(clamping: (oldest.deadline - now + 999_999) / 1_000_000)
        }
        let ready = poll(&fds, nfds_t(fds.count), timeoutMillis)

        if mayBlock {
            shared.withLock { state in
                state.ioThreadPolling = false
                state.wakePending = false
            }
        }
        if ready > 0 && fds[0].revents != 0 { drainWakePipe() }
        if ready > 0, fds.count > 1 {
            let events = fds[1].revents
            if events & Int16(POLLIN | POLLERR | POLLHUP) != 0 { readReplies() }
            if context != nil, events & Int16(POLLOUT) != 0 { flush() }
        }
        expireOverdueCommands()
    }

    private func drainWakePipe() {
        var buffer = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        while withUnsafeMutableBytes(of: &buffer, { read(wakeReadFD, $0.baseAddress, $0.count) }) > 0 {}
    }

    private func readReplies() {
        guard let context else { return }
        if redisBufferRead(context) != REDIS_OK {
            dropConnection(failingWith: contextError(context))
            return
        }
        while true {
            var reply: UnsafeMutablePointer<redisReply>?
            if sluice_next_reply(context, &reply) != REDIS_OK {
                dropConnection(failingWith: contextError(context))
                return
            }
            guard let reply else { return }
            let value = Self.convert(reply)
            sluice_free_reply(reply)
            deliver(value)
            // A reply nobody waited for drops the connection: the context is gone.
            if self.context == nil { return }
        }
    }

    /// Hands one reply to the oldest waiter.
    private func deliver(_ value: RedisValue) {
        guard let head = inFlight.first else {
            // A reply nobody asked for: the stream is out of step, so nothing after it can be trusted.
            dropConnection(failingWith: RedisError(.protocolError, "received a reply no command was waiting for"))
            return
        }
        let reply: Reply
        if case .error(let message) = value {
            reply = .failure(RedisError(.server, message, command: head.commandName))
        } else {
            reply = .success(value)
        }
        switch head.waiter {
        case .single(let continuation):
            _ = inFlight.removeFirst()
            continuation.resume(returning: reply)
        case .batch(let continuation, let count):
            batchReplies.append(reply)
            if batchReplies.count == count {
                _ = inFlight.removeFirst()
                let replies = batchReplies
                batchReplies.removeAll(keepingCapacity: true)
                continuation.resume(returning: replies)
            }
        }
    }

    private func expireOverdueCommands() {
        guard let oldest = inFlight.first, oldest.deadline <= monotonicNanos() else { return }
        let timeout = configuration.commandTimeout
        dropConnection(failingWith: RedisError(.timeout, "no reply within \(timeout)"))
    }

    /// Closes the socket and fails every command that was written or waiting to be written on it.
    private func dropConnection(failingWith error: RedisError) {
        if let context { redisFree(context) }
        context = nil
        shared.withLock { $0.connected = false }
        batchReplies.removeAll()
        while let submission = inFlight.removeFirst() {
            var error = error
            error.command = submission.commandName
            Self.fail(submission.waiter, error)
        }
    }

    private func shutDown(pendingWork: [Submission]) {
        let closedError = RedisError(.closed, "the connection was closed")
        dropConnection(failingWith: closedError)
        for submission in pendingWork {
            var error = closedError
            error.command = submission.commandName
            Self.fail(submission.waiter, error)
        }
        // The wake-up pipe stays open until deinit: a caller may still be about to write to it.
    }

    deinit {
        Glibc.close(wakeReadFD)
        Glibc.close(wakeWriteFD)
    }

    // MARK: Connecting

    /// Connects unless a backoff is running; returns the error to fail the waiting commands with.
    private func connectIfDue() -> RedisError? {
        let now = monotonicNanos()
        if now < nextConnectAttempt, let lastConnectError {
            let waitMillis = (nextConnectAttempt - now) / 1_000_000
            return RedisError(
                .unavailable, "reconnecting in \(waitMillis) ms after: \(lastConnectError.message)")
        }
        switch ConnectionHandshake.open(configuration) {
        case .success(let newContext):
            context = newContext
            currentBackoffNanos = 0
            nextConnectAttempt = 0
            lastConnectError = nil
            shared.withLock { $0.connected = true }
            return nil
        case .failure(let error):
            let backoff = configuration.reconnectBackoff
            currentBackoffNanos =
                currentBackoffNanos == 0
                ? backoff.initial.nanoseconds : min(currentBackoffNanos * 2, backoff.maximum.nanoseconds)
            nextConnectAttempt = monotonicNanos() &+ currentBackoffNanos
            lastConnectError = error
            return error
        }
    }

    private func contextError(_ context: UnsafeMutablePointer<redisContext>) -> RedisError {
        ConnectionHandshake.error(of: context)
    }

    // MARK: Helpers

    private static func fail(_ waiter: Waiter, _ error: RedisError) {
        switch waiter {
        case .single(let continuation): continuation.resume(returning: .failure(error))
        case .batch(let continuation, let count):
            continuation.resume(returning: Array(repeating: .failure(error), count: count))
        }
    }

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

/// A FIFO of in-flight submissions (array plus head index; compacted as it drains).
struct InFlightQueue {
    private var storage: [ConnectionCore.Submission] = []
    private var head = 0

    var first: ConnectionCore.Submission? { head < storage.count ? storage[head] : nil }
    var isEmpty: Bool { head == storage.count }

    mutating func append(_ submission: ConnectionCore.Submission) { storage.append(submission) }

    mutating func removeFirst() -> ConnectionCore.Submission? {
        guard head < storage.count else { return nil }
        let element = storage[head]
        head += 1
        if head == storage.count {
            storage.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 1024 && head * 2 >= storage.count {
            storage.removeFirst(head)
            head = 0
        }
        return element
    }
}

func monotonicNanos() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
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
