import Synchronization

/// Runs `operation` but returns no later than `deadline`: when the deadline passes first, the
/// caller gets `onTimeout()`'s error at once while the operation finishes (cancelled) in the
/// background. Used so that no Redis step can hold a call past its deadline, even when the server
/// is stopped and the client's own command timeout is longer.
func withDeadline<T: Sendable>(
    _ deadline: ContinuousClock.Instant,
    onTimeout: @escaping @Sendable () -> any Error,
    _ operation: @escaping @Sendable () async throws -> T
) async throws -> T {
    if ContinuousClock.now >= deadline { throw onTimeout() }
    let race = DeadlineRace<T>()
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { continuation in
            race.start(continuation)
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

/// The state of one ``withDeadline(_:onTimeout:_:)``: whoever finishes first resumes the caller.
private final class DeadlineRace<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<T, any Error>?
        var finished = false
        var tasks: [Task<Void, Never>] = []
    }
    private let state = Mutex(State())

    func start(_ continuation: CheckedContinuation<T, any Error>) {
        state.withLock { $0.continuation = continuation }
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
            guard !state.finished, let continuation = state.continuation else { return (nil, []) }
            state.finished = true
            state.continuation = nil
            return (continuation, state.tasks)
        }
        guard let continuation else { return }
        tasks.forEach { $0.cancel() }
        continuation.resume(with: result)
    }
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
