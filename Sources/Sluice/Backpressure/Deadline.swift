import SluiceRedis

/// Runs `operation` against `deadline` as a structured race: when the deadline passes first, the
/// operation is cancelled and awaited, and the caller gets `onTimeout()`'s error once it has
/// stopped. Nothing the operation does outlives the call, so what it took can be given back safely
/// afterwards.
///
/// - A caller already cancelled, or a deadline already passed, never starts the operation
///   (`CancellationError` / `onTimeout()`).
/// - A caller cancelled while the operation runs cancels the operation; its result or error is
///   what the caller gets.
/// - An operation that still returns a value after the deadline (it finished before it noticed the
///   cancellation) returns that value: its effects happened, and dropping its result would leak
///   whatever it took. One that throws after the deadline throws `onTimeout()`.
///
/// The caller returns no later than the deadline only when the operation honours cancellation
/// promptly; an operation that ignores it holds the caller until it finishes.
func withDeadline<T: Sendable, C: Clock>(
    _ deadline: C.Instant,
    clock: C,
    onTimeout: @escaping @Sendable () -> any Error,
    _ operation: @escaping @Sendable () async throws -> T
) async throws -> T where C.Duration == Duration {
    try Task.checkCancellation()
    if clock.now >= deadline { throw onTimeout() }
    return try await withThrowingTaskGroup(of: DeadlineRacer<T>.self) { group in
        group.addTask {
            do { return .finished(.success(try await operation())) } catch { return .finished(.failure(error)) }
        }
        group.addTask {
            do {
                try await clock.sleep(until: deadline, tolerance: nil)
                return .deadlinePassed
            } catch {
                return .timerStopped  // the operation finished, or the caller was cancelled
            }
        }
        var timedOut = false
        while let racer = try await group.next() {
            switch racer {
            case .finished(let result):
                group.cancelAll()
                if timedOut, case .failure = result { throw onTimeout() }
                return try result.get()
            case .deadlinePassed:
                timedOut = true
                group.cancelAll()  // then wait for the operation to stop
            case .timerStopped:
                continue
            }
        }
        preconditionFailure("the operation's task always reports")
    }
}

/// ``withDeadline(_:clock:onTimeout:_:)`` on the continuous clock.
func withDeadline<T: Sendable>(
    _ deadline: ContinuousClock.Instant,
    onTimeout: @escaping @Sendable () -> any Error,
    _ operation: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withDeadline(deadline, clock: ContinuousClock(), onTimeout: onTimeout, operation)
}

private enum DeadlineRacer<T: Sendable>: Sendable {
    case finished(Result<T, any Error>)
    case deadlinePassed
    case timerStopped
}

/// Runs `operation` in a task of its own and returns at `deadline` or at the caller's cancellation,
/// whichever comes first, leaving the operation cancelled but possibly still running behind it.
///
/// Only for operations whose late completion is harmless — Redis steps. A caller already cancelled, or a
/// deadline already passed, never starts the operation.
///
/// `shielded`: for bookkeeping that must happen even when its caller gives up (it gives back what a call
/// took). The caller's cancellation neither ends the wait nor reaches the operation, and the operation is
/// not cancelled at the deadline either: it goes on in the background, within its own deadline. It always
/// starts, also when `deadline` already passed (the caller then gets `onTimeout()` at once).
///
/// `awaitingReply`: for a step that takes something the caller must give back (an admission: a lease, a place, a
/// charge). The caller's cancellation neither ends the wait nor reaches the operation, so the caller learns what
/// the step took; the deadline still ends the wait and cancels the operation (a command not yet written is then
/// never written), and a step whose deadline passed never starts.
///
/// The deadline costs an entry of ``DeadlineTimer/shared`` (no task, no dispatch timer): this runs around
/// every Redis step of a provider call.
func withDeadlineAbandoning<T: Sendable>(
    _ deadline: ContinuousClock.Instant,
    shielded: Bool = false,
    awaitingReply: Bool = false,
    onTimeout: @escaping @Sendable () -> any Error,
    _ operation: @escaping @Sendable () async throws -> T
) async throws -> T {
    if awaitingReply && !shielded {
        if ContinuousClock.now >= deadline { throw onTimeout() }
        let race = AbandoningRace<T>(cancelsOperation: true)
        return try await withCheckedThrowingContinuation { continuation in
            race.start(continuation, deadline: deadline, onTimeout: onTimeout, operation)
        }
    }
    if shielded {
        if ContinuousClock.now >= deadline {  // too late to wait for it, not to do it
            Task { _ = try? await operation() }
            throw onTimeout()
        }
        let race = AbandoningRace<T>(cancelsOperation: false)
        return try await withCheckedThrowingContinuation { continuation in
            race.start(continuation, deadline: deadline, onTimeout: onTimeout, operation)
        }
    }
    try Task.checkCancellation()
    if ContinuousClock.now >= deadline { throw onTimeout() }
    let race = AbandoningRace<T>(cancelsOperation: true)
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { continuation in
            // A cancellation between the check above and here is kept by the race and resumes at once.
            race.start(continuation, deadline: deadline, onTimeout: onTimeout, operation)
        }
    } onCancel: {
        race.finish(.failure(CancellationError()))
    }
}

/// The state of one ``withDeadlineAbandoning(_:shielded:onTimeout:_:)``: whoever finishes first (the
/// operation, the deadline, the caller's cancellation) resumes the caller, also when it finishes before the
/// caller's continuation is in place.
private final class AbandoningRace<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<T, any Error>?
        var early: Result<T, any Error>?
        var finished = false
        var operation: Task<Void, Never>?
        var timer: DeadlineTimer.Entry?
    }
    private let state = SluiceMutex(State())
    /// Whether the operation is cancelled when the race ends without it (not for shielded bookkeeping).
    private let cancelsOperation: Bool

    init(cancelsOperation: Bool) { self.cancelsOperation = cancelsOperation }

    /// Starts the operation and the deadline, unless the race already finished (cancelled before it started):
    /// then it resumes the continuation at once.
    func start(
        _ continuation: CheckedContinuation<T, any Error>, deadline: ContinuousClock.Instant,
        onTimeout: @escaping @Sendable () -> any Error, _ operation: @escaping @Sendable () async throws -> T
    ) {
        let early = state.withLock { state -> Result<T, any Error>? in
            if let early = state.early {
                state.early = nil
                return early
            }
            state.continuation = continuation
            return nil
        }
        if let early {
            continuation.resume(with: early)
            return
        }
        let work = Task {
            do { self.finish(.success(try await operation())) } catch { self.finish(.failure(error)) }
        }
        let timer = DeadlineTimer.shared.schedule(at: deadline) { self.finish(.failure(onTimeout())) }
        let finished = state.withLock { state in
            if !state.finished { (state.operation, state.timer) = (work, timer) }
            return state.finished
        }
        if finished {  // the operation (or the deadline) won before the race knew them
            timer.cancel()
            if cancelsOperation { work.cancel() }
        }
    }

    func finish(_ result: Result<T, any Error>) {
        let (continuation, operation, timer) = state.withLock {
            state -> (CheckedContinuation<T, any Error>?, Task<Void, Never>?, DeadlineTimer.Entry?) in
            guard !state.finished else { return (nil, nil, nil) }
            state.finished = true
            defer { (state.operation, state.timer) = (nil, nil) }
            guard let continuation = state.continuation else {
                state.early = result  // before start: start resumes with it
                return (nil, nil, nil)
            }
            state.continuation = nil
            return (continuation, state.operation, state.timer)
        }
        timer?.cancel()
        if cancelsOperation { operation?.cancel() }
        continuation?.resume(with: result)
    }
}

/// Runs `body` to its end even when the calling task is cancelled: for cleanup that gives back
/// what an operation took (a lease, a queue slot, a tree slot, a reservation) once the operation
/// has stopped. The caller waits for `body`, which is never left running behind it.
///
/// `body` runs in a task of its own, which inherits the caller's task-local values and priority but
/// not its cancellation, so a cancelled caller's Redis steps still run. Cancellation can no longer
/// stop `body`: bound it with a deadline of its own.
///
/// ```swift
/// let outcome = try await withDeadline(deadline, onTimeout: { timeoutError }) { try await operation() }
/// // ... on every path out, once the operation has stopped:
/// await withCancellationShield {
///     _ = try? await health.perform(deadline: .now + stepTimeout) { try await pool.release(lease) }
/// }
/// ```
func withCancellationShield<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await Task { try await body() }.value
}

/// ``withCancellationShield(_:)`` for a body that does not throw.
func withCancellationShield<T: Sendable>(_ body: @escaping @Sendable () async -> T) async -> T {
    await Task { await body() }.value
}

extension ContinuousClock.Instant {
    /// The earlier of two optional instants.
    static func earliest(_ a: Self?, _ b: Self?) -> Self? {
        switch (a, b) {
        case (let a?, let b?): return Swift.min(a, b)
        case (let a?, nil): return a
        case (nil, let b): return b
        }
    }
}
