import SluiceRedis

/// What the ``Reconciler`` knows about one partition's provider, as `sluice status` prints it.
public struct ReconcilerStatus: Sendable, Hashable {
    /// One resource the provider reports on.
    public struct Resource: Sendable, Hashable {
        /// The quota resource (`tokens`, `requests`, ...; `*` for the cut of a 429 that named none;
        /// `#concurrency` for the share of concurrency slots that overloads cut).
        public var name: String
        /// The provider's stated limit per ``window``, once a response has stated one.
        public var statedLimit: Int64?
        /// The period of the stated limit.
        public var window: Duration
        /// A different stated limit seen once, accepted when a second observation agrees.
        public var pendingLimit: Int64?
        /// The share of the stated limit the fleet may use now: the safety factor, times what the last cut left
        /// as it climbs back (1 when fully recovered).
        public var safetyFactor: Double
        /// What the last cut left of the ceiling, climbing back to 1.
        public var share: Double
        /// The effective ceiling per ``window`` now: stated limit x safety factor (climbing, after the provider
        /// raised its limit) x share; nil without a stated limit. The configured buckets cap it too.
        public var ceiling: Double?
        /// The lowest remaining the provider reported (projected from its send time), and when its request was sent.
        public var lastRemaining: (amount: Int64, sentAt: Int64)?

        public static func == (lhs: Resource, rhs: Resource) -> Bool {
            lhs.name == rhs.name && lhs.statedLimit == rhs.statedLimit && lhs.window == rhs.window
                && lhs.pendingLimit == rhs.pendingLimit && lhs.safetyFactor == rhs.safetyFactor
                && lhs.share == rhs.share && lhs.ceiling == rhs.ceiling
                && lhs.lastRemaining?.amount == rhs.lastRemaining?.amount
                && lhs.lastRemaining?.sentAt == rhs.lastRemaining?.sentAt
        }

        public func hash(into hasher: inout Hasher) {
            hasher.combine(name)
            hasher.combine(share)
        }
    }

    /// The partition's root scope.
    public var root: Scope
    /// Redis' time when read (ms since 1970).
    public var now: Int64
    /// Until when admissions are paused (ms since 1970), or nil.
    public var pausedUntil: Int64?
    /// When the ceiling was last cut (ms since 1970), or nil.
    public var lastCut: Int64?
    /// How many congestion events cut the ceiling while the state lived.
    public var cuts: Int64
    public var resources: [Resource]

    init?(reply: RedisValue, root: Scope) {
        guard let items = reply.array, items.count >= 5, let now = items[0].integer, let until = items[1].integer,
            let lastCut = items[2].integer, let cuts = items[3].integer, let count = items[4].integer,
            count >= 0, items.count == 5 + 10 * Int(count)
        else { return nil }
        self.root = root
        self.now = now
        self.pausedUntil = until > 0 ? until : nil
        self.lastCut = lastCut > 0 ? lastCut : nil
        self.cuts = cuts
        self.resources = []
        for k in 0..<Int(count) {
            let at = 5 + 10 * k
            guard let name = items[at].string, let stated = items[at + 1].integer, let window = items[at + 2].integer,
                let pending = items[at + 3].integer, let safety = items[at + 5].string.flatMap(Double.init),
                let share = items[at + 6].string.flatMap(Double.init), let ceilingText = items[at + 7].string,
                let remaining = items[at + 8].integer, let sentAt = items[at + 9].integer
            else { return nil }
            resources.append(
                Resource(
                    name: name, statedLimit: stated > 0 ? stated : nil, window: .milliseconds(window),
                    pendingLimit: pending > 0 ? pending : nil, safetyFactor: safety, share: share,
                    ceiling: Double(ceilingText), lastRemaining: remaining >= 0 ? (remaining, sentAt) : nil))
        }
    }
}
