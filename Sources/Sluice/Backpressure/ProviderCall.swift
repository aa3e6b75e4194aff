/// One provider (or tool) call as ``Backpressure/call(_:degrade:logger:_:)`` sees it: what it is
/// counted against and what it may cost.
public struct ProviderCall: Sendable, Hashable {
    /// The scope whose queue, leases and retry budget count this call (say `openai/gpt-4o`).
    public var scope: String
    /// The dependency whose circuit breaker guards it (default: the scope).
    public var dependency: String
    /// The estimate reserved on the tree's budgets and the quota path (prompt tokens + max output
    /// tokens, micro-dollars, ...); settled with the actual usage afterwards.
    public var estimate: Cost
    /// The quota path to reserve the estimate on, with scheduled admission (`nil`: no quota).
    public var quotaPath: ScopePath?
    /// Fleet-wide concurrency slots of ``scope`` (`nil`: no lease).
    public var concurrency: Int?
    /// The caller's own deadline from now; the tree's deadline applies as well (the earlier wins).
    public var timeout: Duration?
    /// The tool and its arguments (any stable text), for the tree's loop guard.
    public var tool: String?
    /// See ``tool``.
    public var arguments: String?
    /// The most attempts, the first included; retries also need the retry budget.
    public var maxAttempts: Int
    /// Free text for the operation, such as the model to use (a degraded call changes it).
    public var label: String

    /// Describes a call.
    public init(
        scope: String, dependency: String? = nil, estimate: Cost = [:], quotaPath: ScopePath? = nil,
        concurrency: Int? = nil, timeout: Duration? = nil, tool: String? = nil, arguments: String? = nil,
        maxAttempts: Int = 3, label: String = ""
    ) {
        self.scope = scope
        self.dependency = dependency ?? scope
        self.estimate = estimate
        self.quotaPath = quotaPath
        self.concurrency = concurrency
        self.timeout = timeout
        self.tool = tool
        self.arguments = arguments
        self.maxAttempts = maxAttempts
        self.label = label
    }

    func validate() throws(BackpressureError) {
        guard !scope.isEmpty, !dependency.isEmpty else {
            throw BackpressureError(.invalidArgument, "a call needs a scope and a dependency")
        }
        try estimate.checkForCall("a call's estimate")
        guard maxAttempts >= 1 else { throw BackpressureError(.invalidArgument, "max attempts must be at least 1") }
        if let concurrency, concurrency < 1 {
            throw BackpressureError(.invalidArgument, "concurrency must be at least 1")
        }
        if let timeout, timeout <= .zero { throw BackpressureError(.invalidArgument, "the timeout must be positive") }
    }
}
