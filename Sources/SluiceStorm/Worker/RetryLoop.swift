/// The attempt loop of the modes without Sluice: admit, send, and on a retryable failure wait and try again,
/// up to `maxAttempts`, never past the tree's deadline.
struct RetryLoop: Sendable {
    var maxAttempts: Int
    /// Waits for admission before an attempt (the single bucket); returns false when the deadline passes first.
    var admit: @Sendable (CallTicket) async -> Bool
    /// The pause before attempt `n + 1` after attempt `n` failed with `result`.
    var delay: @Sendable (_ result: AttemptResult, _ attempt: Int) -> Duration

    func run(_ call: CallTicket, attempt: @escaping @Sendable (Int) async -> AttemptResult) async -> GateConclusion {
        var number = 0
        while true {
            number += 1
            guard await admit(call) else { return GateConclusion(outcome: .deadline) }
            if Task.isCancelled { return GateConclusion(outcome: .cancelled) }
            let result = await attempt(number)
            if result.succeeded { return .ok }
            guard result.isRetryable, number < maxAttempts else { return GateConclusion(outcome: .failed) }
            let pause = delay(result, number)
            if Double(pause.components.seconds) * 1000 >= call.remainingMs { return GateConclusion(outcome: .deadline) }
            do { try await Task.sleep(for: pause) } catch { return GateConclusion(outcome: .cancelled) }
        }
    }
}
