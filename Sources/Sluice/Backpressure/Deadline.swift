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
/// Only for operations that cannot stop promptly when cancelled and whose late completion is
/// harmless — today, Redis steps: a command already handed to `ConnectionCore` is not given up when
/// its caller is cancelled (issue 11), so ``withDeadline(_:clock:onTimeout:_:)`` would hold a call
/// up to the client's command timeout while the server is stopped. Once the client returns
/// cancelled callers at once, use ``withDeadline(_:clock:onTimeout:_:)`` instead. Like it, a caller
/// already cancelled, or a deadline already passed, never starts the operation.
func withDeadlineAbandoning<T: Sendable>(
    _ deadline: ContinuousClock.Instant,
    onTimeout: @escaping @Sendable () -> any Error,
    _ operation: @escaping @Sendable () async throws -> T
) async throws -> T {
    try Task.checkCancellation()
    if ContinuousClock.now >= deadline { throw onTimeout() }
    let race = AbandoningRace<T>()
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { continuation in
            // A cancellation between the check above and here is kept by the race and resumes at once.
            guard race.start(continuation) else { return }
            let work = Task {
                do { race.finish(.success(try await operation())) } catch { race.finish(.failure(error)) }
            }
            let timer = Task {
                try? await Task.sleep(until: deadline, clock: .continuous)
                if !Task.isCancelled { race.finish(.failure(onTimeout())) }
            }
            race.track([work, timer])
        }
    } onCancel: {
        race.finish(.failure(CancellationError()))
    }
}

/// The state of one ``withDeadlineAbandoning(_:onTimeout:_:)``: whoever finishes first resumes the
/// caller, also when it finishes before the caller's continuation is in place.
private final class AbandoningRace<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<T, any Error>?
        var early: Result<T, any Error>?
        var finished = false
        var tasks: [Task<Void, Never>] = []
    }
    private let state = SluiceMutex(State())

    /// Whether the race goes on; when it already finished, the continuation is resumed at once.
    func start(_ continuation: CheckedContinuation<T, any Error>) -> Bool {
        let early = state.withLock { state -> Result<T, any Error>? in
            if let early = state.early {
                state.early = nil
                return early
            }
            state.continuation = continuation
            return nil
        }
        guard let early else { return true }
        continuation.resume(with: early)
        return false
    }

    func track(_ tasks: [Task<Void, Never>]) {
        let finished = state.withLock { state in
            state.tasks = tasks
            return state.finished
        }
        if finished { tasks.forEach { $0.cancel() } }
    }

    func finish(_ result: Result<T, any Error>) {
        let (continuation, tasks) = state.withLock {
            state -> (CheckedContinuation<T, any Error>?, [Task<Void, Never>]) in
            guard !state.finished else { return (nil, []) }
            state.finished = true
            guard let continuation = state.continuation else {
                state.early = result  // before start: start resumes with it
                return (nil, [])
            }
            state.continuation = nil
            return (continuation, state.tasks)
        }
        tasks.forEach { $0.cancel() }
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
