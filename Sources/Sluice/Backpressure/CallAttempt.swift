/// What the operation passed to ``Backpressure/call(_:degrade:logger:_:)`` learns about its attempt.
public struct CallAttempt: Sendable {
    /// The call being made: the primary one, or the one the degradation hook chose.
    public let call: ProviderCall
    /// 1 for the first attempt, 2 for the first retry, ...
    public let number: Int
    /// When the caller stops waiting; the operation is cancelled then.
    public let deadline: ContinuousClock.Instant
    /// Whether this attempt is a half-open probe of the dependency's breaker.
    public let isProbe: Bool
    /// Whether Redis was unreachable and the failure policy let the call through unchecked or on
    /// the local fallback bucket.
    public let degraded: Bool
    /// The request tree the call counts against.
    public let tree: TreeContext?
    /// When this attempt starts in Redis' clock (ms since 1970): the quota admission's time, plus the time spent
    /// since on this host. Nil without a quota path (or when Redis was unreachable). Hand it to
    /// ``Reconciler/record(_:path:sentAt:admittedAt:)`` with the attempt's response.
    public let sentAt: Int64?
    /// When the quota admitted the call in Redis' clock (ms since 1970, ``Decision/decidedAt``): the moment its
    /// buckets and windows were charged, the same for every attempt. Nil without a quota path (or when Redis was
    /// unreachable). An independent record of admissions (the chaos soak's ledger) checks the limits against it.
    public let admittedAt: Int64?
}

/// What a successful operation returns: its value and what it actually used.
public struct CallOutcome<Value: Sendable>: Sendable {
    /// The operation's result.
    public var value: Value
    /// The actual usage per resource (`["tokens": 2718]`), settled instead of the estimate.
    public var usage: Cost
    /// What the provider's response said about its limits; with a ``Reconciler``, ``Backpressure`` merges it.
    public var observation: ProviderObservation?

    /// An outcome.
    public init(_ value: Value, usage: Cost = [:], observation: ProviderObservation? = nil) {
        self.value = value
        self.usage = usage
        self.observation = observation
    }
}

/// The result of ``Backpressure/call(_:degrade:logger:_:)``.
public struct CallResult<Value: Sendable>: Sendable {
    /// The operation's value.
    public var value: Value
    /// The usage that was settled.
    public var usage: Cost
    /// How many attempts it took.
    public var attempts: Int
    /// The call that succeeded (the degradation hook's when it fell back).
    public var call: ProviderCall
    /// Whether the degradation hook supplied the call that ran.
    public var fellBack: Bool
    /// Whether Redis was unreachable and the failure policy decided.
    public var degraded: Bool
}

/// Thrown by an operation to tell ``Backpressure`` what kind of failure it was.
public struct ProviderFailure: Error, Sendable, Hashable, CustomStringConvertible {
    /// Whether another attempt may succeed (a 429, a 503, a timeout).
    public var retryable: Bool
    /// The provider's retry-after, honoured by the backoff.
    public var retryAfter: Duration?
    /// Whether it counts as a failure for the dependency's breaker (overload and server errors
    /// do; a client error such as a bad request does not).
    public var countsAgainstBreaker: Bool
    /// What the failed call used anyway (settled instead of the estimate; unnamed resources: 0).
    public var usage: Cost
    /// What happened, in words.
    public var message: String
    /// What the provider's response said about its limits; with a ``Reconciler``, ``Backpressure`` merges it.
    public var observation: ProviderObservation?

    /// A failure.
    public init(
        _ message: String, retryable: Bool = true, retryAfter: Duration? = nil, countsAgainstBreaker: Bool = true,
        usage: Cost = [:], observation: ProviderObservation? = nil
    ) {
        self.message = message
        self.retryable = retryable
        self.retryAfter = retryAfter
        self.countsAgainstBreaker = countsAgainstBreaker
        self.usage = usage
        self.observation = observation
    }

    /// The failure a provider's response describes: a 429 (quota) or an overload (5xx, 529, a timeout) may be
    /// retried after its retry-after, and only overloads count against the breaker; a do-not-retry response is
    /// final.
    public init(_ observation: ProviderObservation, usage: Cost = [:]) {
        let status = observation.status.map { "HTTP \($0)" } ?? "no response"
        self.init(
            "\(status) (\(observation.responseClass))",
            retryable: observation.responseClass == .quota || observation.responseClass == .overload,
            retryAfter: observation.retryAfter, countsAgainstBreaker: observation.responseClass == .overload,
            usage: usage, observation: observation)
    }

    public var description: String { "provider failure: \(message)" }
}
