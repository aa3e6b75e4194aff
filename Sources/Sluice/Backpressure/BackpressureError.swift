/// Why a call was refused or stopped by Sluice's backpressure: a typed code, a human-readable
/// reason, and when it makes sense to try again.
///
/// Messages name limits and scopes, never payloads or credentials.
public struct BackpressureError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What refused the call. New codes may be added: switch with a `default`.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }

        /// The scope's queue is full: the caller was shed at once instead of waiting.
        public static let overloaded = Code("overloaded")
        /// The caller's or the tree's deadline has passed, or a wait could not end before it.
        public static let deadlineExceeded = Code("deadline-exceeded")
        /// The tree is deeper than its maximum depth.
        public static let treeDepth = Code("tree-depth")
        /// The node already has its maximum number of children.
        public static let treeChildren = Code("tree-children")
        /// The tree already has its maximum number of calls in flight.
        public static let treeInFlight = Code("tree-in-flight")
        /// The tree's budget for a resource would be exceeded.
        public static let treeBudget = Code("tree-budget")
        /// The same tool was called with the same arguments too often in one tree.
        public static let loopGuard = Code("loop-guard")
        /// The dependency's circuit breaker is open (or half-open with every probe slot taken).
        public static let breakerOpen = Code("breaker-open")
        /// The scope's retry budget is spent: no more retries for now.
        public static let retryBudgetExhausted = Code("retry-budget-exhausted")
        /// No concurrency slot became free before the deadline.
        public static let leaseUnavailable = Code("lease-unavailable")
        /// A quota refused the call (see the message for the limit).
        public static let quotaDenied = Code("quota-denied")
        /// Redis is unreachable and the failure policy is to fail closed, or the local fallback
        /// bucket is empty.
        public static let redisUnavailable = Code("redis-unavailable")
        /// An argument was invalid (caught before any I/O).
        public static let invalidArgument = Code("invalid-argument")
        /// Redis answered a step with an error, or with a reply this version does not understand, while it was
        /// reachable (not an outage, so the failure policy does not apply): ``BackpressureError/underlying`` holds
        /// the client's `RedisError` or the quota's ``QuotaError``.
        public static let redisError = Code("redis-error")

        public var description: String { name }
    }

    /// What refused the call.
    public var code: Code
    /// Why, in words.
    public var message: String
    /// When trying again may succeed; `nil` when unknown or never (a spent budget).
    public var retryAfter: Duration?
    /// The error that caused this one, if any: the client's `RedisError` behind ``Code/redisUnavailable``, the
    /// ``QuotaError`` behind ``Code/invalidArgument`` for a bad cost. Not part of equality, which compares
    /// `code`, `message` and `retryAfter`.
    public var underlying: (any Error & Sendable)?

    /// Creates an error.
    public init(
        _ code: Code, _ message: String, retryAfter: Duration? = nil, underlying: (any Error & Sendable)? = nil
    ) {
        self.code = code
        self.message = message
        self.retryAfter = retryAfter
        self.underlying = underlying
    }

    public static func == (lhs: BackpressureError, rhs: BackpressureError) -> Bool {
        lhs.code == rhs.code && lhs.message == rhs.message && lhs.retryAfter == rhs.retryAfter
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(code)
        hasher.combine(message)
        hasher.combine(retryAfter)
    }

    /// Whether Sluice refused the call before it reached the provider (as opposed to the call
    /// itself failing): a degradation hook may then try a cheaper path.
    public var isRefusal: Bool { code != .invalidArgument && code != .redisError }

    public var description: String {
        var text = "Sluice \(code): \(message)"
        if let retryAfter { text += " (retry after \(retryAfter))" }
        return text
    }
}
