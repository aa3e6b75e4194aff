/// The limits of one request tree, recorded in Redis when the tree is opened and enforced
/// fleet-wide for every node of it, on every host. `nil` means unlimited.
public struct TreeLimits: Sendable, Hashable {
    /// A hard, non-refilling budget per resource for the whole tree (`["tokens": 200_000,
    /// "usd_micros": 5_000_000]`): each call reserves its estimate and settles its actual usage.
    public var budgets: Cost
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
        budgets: Cost = [:], maxDepth: Int? = nil, maxChildren: Int? = nil, maxInFlight: Int? = nil,
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
        try budgets.checkForCall("a tree's budgets")
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

extension TreeLimits {
    /// The limits as a started tree's first call records them (decide.lua's ninth tree argument, and the
    /// `Sluice-Tree` header's last field): "<deadline at ms> <lifetime ms> <max depth> <max children>
    /// <max in flight> <loop guard>", then "<resource> <budget>" pairs; 0 stands for unlimited.
    func recordText(deadlineMilliseconds: Int64?) -> String {
        var words = [
            String(deadlineMilliseconds ?? 0), String(RequestTrees.milliseconds(lifetime)), String(maxDepth ?? 0),
            String(maxChildren ?? 0), String(maxInFlight ?? 0), String(loopGuard ?? 0),
        ]
        for (resource, budget) in budgets.amounts.sorted(by: { $0.key < $1.key }) {
            words += [resource, String(budget)]
        }
        return words.joined(separator: " ")
    }

    /// Limits read back from ``recordText(deadlineMilliseconds:)`` (the deadline stays with the context); `nil`
    /// for anything else.
    init?(recordText text: String) {
        let words = text.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
        guard words.count >= 6, words.count % 2 == 0, words.count <= 6 + 2 * 64 else { return nil }
        var numbers: [Int] = []
        for word in words.prefix(6) {
            guard let value = Int(word), value >= 0, value <= 1_000_000_000_000_000 else { return nil }
            numbers.append(value)
        }
        guard numbers[1] >= 1 else { return nil }
        var budgets: [String: Int64] = [:]
        for index in stride(from: 6, to: words.count, by: 2) {
            guard let budget = Int64(words[index + 1]), budget >= 0 else { return nil }
            budgets[words[index]] = budget
        }
        func limit(_ value: Int) -> Int? { value > 0 ? value : nil }
        self.init(
            budgets: Cost(budgets), maxDepth: limit(numbers[2]), maxChildren: limit(numbers[3]),
            maxInFlight: limit(numbers[4]), loopGuard: limit(numbers[5]),
            lifetime: .milliseconds(max(1, numbers[1])))
        do { try validate() } catch { return nil }
    }
}

extension Cost {
    /// Checks the cost for a tree or a provider call, where an empty cost is allowed, and says what is wrong as a
    /// ``BackpressureError`` (the quota's own error is kept as its `underlying` error).
    func checkForCall(_ what: String) throws(BackpressureError) {
        do {
            _ = try sortedValidAmounts()
        } catch {
            throw BackpressureError(.invalidArgument, "\(what): \(error.message)", underlying: error)
        }
    }
}
