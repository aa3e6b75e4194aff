/// Mode `none`: no limiter at all. Every attempt goes straight to the provider; failures (429, 5xx, timeouts) are
/// retried after a fixed 100 ms (±50% jitter), up to five attempts, with the provider's retry-after ignored —
/// what a naive client does.
struct DirectGate: CallGate {
    let loop = RetryLoop(
        maxAttempts: 5, admit: { _ in .now }, delay: { _, _ in .milliseconds(Int.random(in: 50...150)) })

    func perform(_ call: CallTicket, attempt: @escaping @Sendable (Int) async -> AttemptResult) async -> GateConclusion
    {
        await loop.run(call, attempt: attempt)
    }
}
