import SluiceRedis

/// The answer to one decision: admitted or not, and why.
public struct Decision: Sendable, Hashable {
    /// Whether the request may proceed (after ``wait``, for a scheduled admission).
    public var allowed: Bool
    /// How long a scheduled admission waits before it proceeds; zero otherwise.
    public var wait: Duration
    /// When denied: how long until the denying limits would allow this cost again (the longest of
    /// them); zero when allowed, and meaningless when ``retryable`` is false.
    public var retryAfter: Duration
    /// False when waiting cannot help: the cost exceeds a burst or window, or a budget without a
    /// period is spent.
    public var retryable: Bool
    /// The first limit (root first) that denied.
    public var deniedBy: LimitStatus?
    /// Every limit on the path that applied to this cost, root first: reported when the decision
    /// was denied, when a shadow limit would have denied, or when asked for (`reportLimits`).
    public var limits: [LimitStatus]
    /// Invalid config values (ignored in favour of less specific ones or the defaults).
    public var warnings: [QuotaWarning]
    /// When Redis decided, in milliseconds since 1970 by Redis' clock (`TIME`): the fleet's
    /// common clock. A request admitted by this decision is sent at `decidedAt + wait`; tell the
    /// ``Reconciler`` so, and its observations compare across hosts whatever their clocks say.
    public var decidedAt: Int64

    /// The shadow limits that would have denied.
    public var wouldDeny: [LimitStatus] { limits.filter { $0.verdict == .wouldDeny } }

    public init(
        allowed: Bool, wait: Duration = .zero, retryAfter: Duration = .zero, retryable: Bool = true,
        deniedBy: LimitStatus? = nil, limits: [LimitStatus] = [], warnings: [QuotaWarning] = [], decidedAt: Int64 = 0
    ) {
        self.allowed = allowed
        self.wait = wait
        self.retryAfter = retryAfter
        self.retryable = retryable
        self.deniedBy = deniedBy
        self.limits = limits
        self.warnings = warnings
        self.decidedAt = decidedAt
    }

    /// When a request admitted now is sent, in Redis' clock: ``decidedAt`` plus ``wait``.
    public var sendsAt: Int64 { decidedAt + wait.milliseconds }
}

/// One limit of a decision: which scope and resource, and how much is left.
public struct LimitStatus: Sendable, Hashable {
    public struct Verdict: Sendable, Hashable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public static let allows = Verdict("allows")
        public static let denies = Verdict("denies")
        /// A shadow limit that would have denied; the decision did not count it.
        public static let wouldDeny = Verdict("would deny")
        public var description: String { name }
    }

    /// The scope's position in the path (0 = the root).
    public var scopeIndex: Int
    public var scope: Scope
    public var resource: String
    public var kind: QuotaLimit.Kind
    /// Whole units left after this decision (rounded down; negative in debt or past a budget).
    public var remaining: Int64
    /// The limit's size: a bucket's burst, a window's limit, a budget's total.
    public var limit: Int64
    public var verdict: Verdict
}

/// A config value Sluice could not use. Decisions never fail because of one; they report it.
public struct QuotaWarning: Sendable, Hashable, CustomStringConvertible {
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        /// A field of the config hash does not parse; the next less specific one (or the default)
        /// applied instead.
        public static let invalidConfig = Code("invalidConfig")
        /// The caller's default spec did not parse (the limiter validates defaults, so this means
        /// the script and this library disagree).
        public static let invalidDefault = Code("invalidDefault")
        public var description: String { name }
    }

    public var code: Code
    public var scopeIndex: Int
    /// The config field (a scope pattern such as `global=openai tenant=*`), or `default`.
    public var field: String
    public var reason: String

    public var description: String { "\(code) at scope \(scopeIndex), field \"\(field)\": \(reason)" }
}

/// How to treat a decision when buckets are busy: batch admissions never draw a bucket below its
/// headroom, so interactive traffic keeps it.
public struct Priority: Sendable, Hashable, CustomStringConvertible {
    let name: String
    let argument: RedisArgument
    private init(_ name: String) {
        self.name = name
        self.argument = RedisArgument(name + " time")
    }
    public static let interactive = Priority("interactive")
    public static let batch = Priority("batch")
    public var description: String { name }
}
