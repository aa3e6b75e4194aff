/// The limits of one request tree, recorded in Redis when the tree is opened and enforced
/// fleet-wide for every node of it, on every host. `nil` means unlimited.
public struct TreeLimits: Sendable, Hashable {
    /// A hard, non-refilling budget per resource for the whole tree (`["tokens": 200_000,
    /// "usd_micros": 5_000_000]`): each call reserves its estimate and settles its actual usage.
    public var budgets: [String: Int]
    /// The deepest a node may be (the root is at depth 0).
    public var maxDepth: Int?
    /// The most children one node may start.
    public var maxChildren: Int?
    /// The most calls in flight in the whole tree at once.
    public var maxInFlight: Int?
    /// The most times one tool may be called with the same argument fingerprint; the next call is
    /// refused (a looping agent).
    public var loopGuard: Int?
    /// How long the tree may run; calls after it are refused.
    public var deadline: Duration?
    /// How long the state of a tree without a deadline is kept.
    public var lifetime: Duration

    /// Creates limits; everything unlimited by default.
    public init(
        budgets: [String: Int] = [:], maxDepth: Int? = nil, maxChildren: Int? = nil, maxInFlight: Int? = nil,
        loopGuard: Int? = nil, deadline: Duration? = nil, lifetime: Duration = .seconds(86_400)
    ) {
        self.budgets = budgets
        self.maxDepth = maxDepth
        self.maxChildren = maxChildren
        self.maxInFlight = maxInFlight
        self.loopGuard = loopGuard
        self.deadline = deadline
        self.lifetime = lifetime
    }

    func validate() throws(BackpressureError) {
        for (resource, budget) in budgets {
            guard ResourceName.isValid(resource) else {
                throw BackpressureError(.invalidArgument, "invalid resource name \"\(resource)\"")
            }
            guard budget >= 0 else { throw BackpressureError(.invalidArgument, "the \(resource) budget is negative") }
        }
        for (name, value) in [
            ("max depth", maxDepth), ("max children", maxChildren), ("max in flight", maxInFlight),
            ("loop guard", loopGuard),
        ] {
            if let value, value < 1 { throw BackpressureError(.invalidArgument, "\(name) must be at least 1") }
        }
        if let deadline, deadline <= .zero {
            throw BackpressureError(.invalidArgument, "the deadline must be positive")
        }
    }
}

/// Resource names: `[A-Za-z_][A-Za-z0-9_]*`, at most 64 characters (`tokens`, `usd_micros`).
enum ResourceName {
    static func isValid(_ name: String) -> Bool {
        guard let first = name.utf8.first, name.utf8.count <= 64 else { return false }
        func letter(_ byte: UInt8) -> Bool {
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
                || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || byte == UInt8(ascii: "_")
        }
        return letter(first)
            && name.utf8.allSatisfy { letter($0) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }
    }

    static func validate(_ costs: [String: Int]) throws(BackpressureError) {
        for (resource, amount) in costs {
            guard isValid(resource) else {
                throw BackpressureError(.invalidArgument, "invalid resource name \"\(resource)\"")
            }
            guard amount >= 0 && amount < 1 << 50 else {
                throw BackpressureError(.invalidArgument, "the \(resource) amount \(amount) is out of range")
            }
        }
    }
}
