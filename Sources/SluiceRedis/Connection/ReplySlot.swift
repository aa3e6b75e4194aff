/// Where one caller waits for its reply (or a batch's replies), answered exactly once: by the
/// I/O thread with the replies or an error, or by the caller's cancellation, whichever comes first.
///
/// A cancelled caller returns at once; its command stays in the connection's queue so that the
/// replies stay in step: not written yet, it is skipped; already written, its reply is read and
/// dropped.
final class ReplySlot: Sendable {
    typealias Reply = Result<RedisValue, RedisError>

    enum Continuation {
        case single(UnsafeContinuation<Reply, Never>)
        case batch(UnsafeContinuation<[Reply], Never>)
    }

    private enum State {
        case unset
        case waiting(Continuation)
        case cancelled
        case answered
    }

    /// The command's name, for errors.
    let command: String
    /// How many replies answer it (1, or the batch's size).
    let replyCount: Int
    private let state = SluiceMutex(State.unset)

    init(command: String, replyCount: Int) {
        self.command = command
        self.replyCount = replyCount
    }

    /// Installs the caller's continuation. When the caller was cancelled already, resumes it with
    /// ``RedisError/Code/cancelled`` at once and returns false: the command must not be sent.
    func install(_ continuation: Continuation) -> Bool {
        let installed = state.withLock { state -> Bool in
            guard case .unset = state else { return false }
            state = .waiting(continuation)
            return true
        }
        if !installed { Self.resume(continuation, .failure(cancellation), count: replyCount) }
        return installed
    }

    /// Whether the caller has its answer already (it was cancelled): its command need not be sent.
    var isAnswered: Bool {
        state.withLock { state in
            switch state {
            case .cancelled, .answered: return true
            case .unset, .waiting: return false
            }
        }
    }

    func cancel() {
        let continuation = state.withLock { state -> Continuation? in
            switch state {
            case .unset:
                state = .cancelled
                return nil
            case .waiting(let continuation):
                state = .cancelled
                return continuation
            case .cancelled, .answered:
                return nil
            }
        }
        if let continuation { Self.resume(continuation, .failure(cancellation), count: replyCount) }
    }

    /// Answers a single command (or a batch, with the same result for each of its commands).
    func answer(_ reply: Reply) {
        if let continuation = take() { Self.resume(continuation, reply, count: replyCount) }
    }

    /// Answers a batch.
    func answer(_ replies: [Reply]) {
        guard let continuation = take() else { return }
        switch continuation {
        case .single(let single): single.resume(returning: replies.first ?? .success(.null))
        case .batch(let batch): batch.resume(returning: replies)
        }
    }

    func fail(_ error: RedisError) {
        var error = error
        error.command = command
        answer(.failure(error))
    }

    private func take() -> Continuation? {
        state.withLock { state -> Continuation? in
            guard case .waiting(let continuation) = state else { return nil }
            state = .answered
            return continuation
        }
    }

    private var cancellation: RedisError {
        RedisError(.cancelled, "the caller was cancelled", command: command)
    }

    private static func resume(_ continuation: Continuation, _ reply: Reply, count: Int) {
        switch continuation {
        case .single(let single): single.resume(returning: reply)
        case .batch(let batch): batch.resume(returning: Array(repeating: reply, count: count))
        }
    }
}
