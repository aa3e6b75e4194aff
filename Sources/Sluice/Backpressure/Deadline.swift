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
