/// What one response says about one rate-limited resource. Each value is nil when the provider did not say, or
/// said something malformed.
public struct ResourceObservation: Sendable, Hashable {
    /// The most the caller may use per window, as the provider states it (for example 10,000 requests or
    /// 2,000,000 tokens per minute).
    public var limit: Int?

    /// How much is left in the current window.
    ///
    /// Anthropic rounds this to the nearest thousand (so `0` may mean a few hundred tokens are left); the value is
    /// kept as the provider sent it.
    public var remaining: Int?

    /// How long until the window is refilled: fully for OpenAI and Anthropic, "additional quota" for IETF fields,
    /// the end of the window for GitHub-style epochs. Zero when the provider named a time that has already passed.
    public var resetAfter: Duration?

    public init(limit: Int? = nil, remaining: Int? = nil, resetAfter: Duration? = nil) {
        self.limit = limit
        self.remaining = remaining
        self.resetAfter = resetAfter
    }
}
