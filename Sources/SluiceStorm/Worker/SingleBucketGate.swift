import Sluice

/// Mode `single-bucket`, the common setup: one fleet-wide token bucket in Redis in front of the provider, sized at
/// the provider's stated token limit (rate and burst), charged each attempt's estimate (prompt + max_tokens) and
/// never refunded. A caller the bucket refuses sleeps the bucket's retry-after and asks again until its deadline.
/// Failures are retried up to five attempts with exponential backoff and full jitter, honouring retry-after.
///
/// It uses Sluice's own limiter with a one-scope path, so the difference to the `sluice` mode is exactly what
/// the hierarchy, the trees and the backpressure add.
struct SingleBucketGate: CallGate {
    let limiter: Limiter
    let loop: RetryLoop

    init(assignment: WorkerAssignment) throws {
        let provider = assignment.scenario.provider
        let spec = "tokens: bucket rate=\(Int(provider.tokensPerSecond))/s burst=\(provider.tokensPerWindow)"
        let limiter = try Limiter(url: assignment.redisURL, configuration: .init(defaults: ["global": spec]))
        let path = try ScopePath("global=\(assignment.runID)")
        self.limiter = limiter
        loop = RetryLoop(
            maxAttempts: 5,
            admit: { call in
                var refusals = 0
                while call.remainingMs > 0 {
                    do {
                        let decision = try await limiter.decide(path, cost: ["tokens": Int64(call.shape.estimate)])
                        if decision.allowed { return .init(admitted: true, refusals: refusals) }
                        refusals += 1
                        let pause = decision.retryAfter + .milliseconds(Int.random(in: 1...20))
                        try await Task.sleep(for: pause)
                    } catch is CancellationError {
                        return .init(admitted: false, refusals: refusals)
                    } catch {
                        WorkerLog.once("single-bucket decision failed: \(error)")
                        try? await Task.sleep(for: .milliseconds(50))
                    }
                }
                return .init(admitted: false, refusals: refusals)
            },
            delay: { result, attempt in
                let backoff = Double.random(in: 0...min(8_000, 250 * pow2(attempt - 1)))
                return .milliseconds(Int(max(result.retryAfterMs ?? 0, backoff)))
            })
    }

    func perform(_ call: CallTicket, attempt: @escaping @Sendable (Int) async -> AttemptResult) async -> GateConclusion
    {
        await loop.run(call, attempt: attempt)
    }

    func shutdown() async { limiter.close() }
}

/// 2 to the power `exponent` (0 for a negative one), as a Double.
func pow2(_ exponent: Int) -> Double {
    exponent < 0 ? 0 : Double(1 << min(exponent, 30))
}
