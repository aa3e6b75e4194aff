/// Exponential backoff with full jitter: before retry `n` (0-based), sleep a uniformly random time
/// in `0 ... min(maximum, initial × 2ⁿ)`, but at least the provider's retry-after when it gave one;
/// give up when the pause would end past the caller's deadline.
public struct RetryBackoff: Sendable, Hashable {
    /// The cap of the first pause.
    public var initial: Duration
    /// The largest cap.
    public var maximum: Duration

    /// Creates a backoff; the defaults suit LLM providers (100 ms doubling to 20 s).
    public init(initial: Duration = .milliseconds(100), maximum: Duration = .seconds(20)) {
        self.initial = max(.zero, initial)
        self.maximum = max(self.initial, maximum)
    }

    /// The cap of retry `attempt` (0-based): `min(maximum, initial × 2^attempt)`.
    public func cap(attempt: Int) -> Duration {
        let factor = Double(1 << min(max(0, attempt), 40))
        let seconds = min(maximum / .seconds(1), initial / .seconds(1) * factor)
        return .nanoseconds(Int64(seconds * 1e9))
    }

    /// A random pause before retry `attempt`: full jitter, at least `retryAfter`.
    public func delay<Generator: RandomNumberGenerator>(
        attempt: Int, retryAfter: Duration? = nil, using generator: inout Generator
    ) -> Duration {
        let cap = cap(attempt: attempt) / .nanoseconds(1)
        let jittered = Duration.nanoseconds(Int64(Double.random(in: 0...1, using: &generator) * cap))
        return max(jittered, retryAfter ?? .zero)
    }

    /// A random pause before retry `attempt`, from the system's generator.
    public func delay(attempt: Int, retryAfter: Duration? = nil) -> Duration {
        var generator = SystemRandomNumberGenerator()
        return delay(attempt: attempt, retryAfter: retryAfter, using: &generator)
    }

    /// The pause before retry `attempt`, or `nil` when it would end after `deadline` (stop
    /// retrying: the caller would not be there to see the answer).
    public func delay(
        attempt: Int, retryAfter: Duration?, deadline: ContinuousClock.Instant?, now: ContinuousClock.Instant = .now
    ) -> Duration? {
        let pause = delay(attempt: attempt, retryAfter: retryAfter)
        if let deadline, now + pause >= deadline { return nil }
        return pause
    }
}
