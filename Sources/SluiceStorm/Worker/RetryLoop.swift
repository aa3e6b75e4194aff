/// The attempt loop of the modes without Sluice: admit, send, and on a retryable failure wait and try again,
/// up to `maxAttempts`, never past the tree's deadline.
struct RetryLoop: Sendable {
    /// What waiting for admission came to: whether the attempt may go, and how often the limiter said no first.
    struct Admission: Sendable {
        var admitted: Bool
        var refusals: Int

        static let now = Admission(admitted: true, refusals: 0)
    }

    var maxAttempts: Int
    /// Waits for admission before an attempt (the single bucket); not admitted when the deadline passes first.
    var admit: @Sendable (CallTicket) async -> Admission
    /// The pause before attempt `n + 1` after attempt `n` failed with `result`.
    var delay: @Sendable (_ result: AttemptResult, _ attempt: Int) -> Duration

    func run(_ call: CallTicket, attempt: @escaping @Sendable (Int) async -> AttemptResult) async -> GateConclusion {
        var number = 0
        var refusals = 0
        func end(_ outcome: CallEnding) -> GateConclusion { GateConclusion(outcome: outcome, refusals: refusals) }
        while true {
            number += 1
            let admission = await admit(call)
            refusals += admission.refusals
            guard admission.admitted else { return end(.deadline) }
            if Task.isCancelled { return end(.cancelled) }
            let result = await attempt(number)
            if result.succeeded { return end(.ok) }
            guard result.isRetryable, number < maxAttempts else { return end(.failed) }
            let pause = delay(result, number)
            if Double(pause.components.seconds) * 1000 >= call.remainingMs { return end(.deadline) }
            do { try await Task.sleep(for: pause) } catch { return end(.cancelled) }
        }
    }
}
