/// One logical LLM call of an agent, as the worker saw it from wanting to make it to its final result (all its
/// attempts, admission waits and backoffs included). Times are seconds of run time.
public struct CallRecord: Codable, Sendable, Hashable {
    public var tenant: String
    public var group: String
    public var role: String
    public var tree: String
    public var start: Double
    public var end: Double
    public var outcome: CallEnding
    public var attempts: Int
    /// 429s the provider answered this call with.
    public var provider429s: Int
    /// 5xx answers and timeouts.
    public var providerErrors: Int
    /// Tokens the provider served for it (prompt + completion), 0 unless it succeeded.
    public var tokens: Int
    /// What the call asked for up front (prompt + max_tokens).
    public var estimate: Int
    /// Time spent waiting for admission and in backoff, in ms.
    public var waitedMs: Double
    /// Why the limiter refused it, when it did.
    public var refusal: String?
    /// How many times the limiter refused it (each refused ask of the single bucket; the refusal of Sluice that
    /// ended it). Provider 429s are in ``provider429s``.
    public var refusals: Int

    public var latencyMs: Double { (end - start) * 1000 }
}

/// How a logical call ended.
public enum CallEnding: String, Codable, Sendable, Hashable {
    /// The provider served it.
    case ok
    /// The limiter refused it at once as overloaded (queue too deep, wait beyond the deadline, breaker open).
    case shed
    /// The tree's budget or loop guard refused it.
    case budget
    /// The tree's deadline passed before it could be served.
    case deadline
    /// It failed at the provider and the retries gave up (or were refused).
    case failed
    /// The run ended while it was still going.
    case cancelled
}

/// One line of a worker's records file.
public enum WorkerLine: Codable, Sendable {
    case call(CallRecord)
    /// Queue gauge for one bin of ``ProviderRecorder/binSeconds``: the most calls waiting (for admission or a
    /// retry) and the most in flight at the provider during it.
    case queue(bin: Int, waiting: Int, inFlight: Int)
    /// The worker finished its run; `error` says why not cleanly.
    case done(error: String?)
}
