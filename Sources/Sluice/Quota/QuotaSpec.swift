/// The limits of one scope (or scope pattern), per resource, in the text form operators write
/// into the config hash and callers give as defaults:
///
///     tokens: bucket rate=90000/min burst=5000; requests: window 100/min; budget 5000 period=d
///
/// A clause without `<resource>:` continues the previous clause's resource. `tokens: none` says
/// "no tokens limit here" (it overrides a less specific pattern or a default). The grammar is in
/// <doc:QuotaConfiguration>; this parser and the one in `lua/lib/spec.lua` accept exactly the same
/// texts, and the tests hold them to it.
public struct QuotaSpec: Sendable, Hashable, CustomStringConvertible {
    /// One resource's limits, in the order written; empty with `none`.
    public struct Entry: Sendable, Hashable {
        public var resource: String
        public var limits: [QuotaLimit]
        public init(resource: String, limits: [QuotaLimit]) {
            self.resource = resource
            self.limits = limits
        }
    }

    public var entries: [Entry]

    /// The most limits one spec may hold, all resources together: a decision checks every limit on
    /// its path in one script, which blocks Redis while it runs. `lua/decide.lua` ignores (and
    /// reports) a longer spec an operator wrote by hand.
    public static let maximumLimits = 32

    /// How many limits the spec holds, all resources together.
    public var limitCount: Int { entries.reduce(0) { $0 + $1.limits.count } }

    public init(entries: [Entry] = []) { self.entries = entries }

    public init(parsing text: String) throws(QuotaError) {
        self = try QuotaSpecParser.parse(text)
    }

    /// The limits for `resource`: nil when the spec does not name it, `[]` for `none`.
    public func limits(for resource: String) -> [QuotaLimit]? {
        entries.first { $0.resource == resource }?.limits
    }

    /// Adds `limit` for `resource`, replacing a limit of the same kind (for windows: of the same
    /// length) and a `none`.
    public mutating func set(_ limit: QuotaLimit, for resource: String) {
        guard let index = entries.firstIndex(where: { $0.resource == resource }) else {
            entries.append(Entry(resource: resource, limits: [limit]))
            return
        }
        entries[index].limits.removeAll { $0.tag == limit.tag }
        entries[index].limits.append(limit)
    }

    /// Removes everything said about `resource`.
    public mutating func remove(resource: String) {
        entries.removeAll { $0.resource == resource }
    }

    /// The canonical text: `tokens: bucket rate=90000/min burst=5000; requests: window 100/min`.
    public var description: String {
        entries.map { entry in
            "\(entry.resource): "
                + (entry.limits.isEmpty ? "none" : entry.limits.map(\.description).joined(separator: "; "))
        }.joined(separator: "; ")
    }
}

/// One limit on one resource of one scope.
public struct QuotaLimit: Sendable, Hashable, CustomStringConvertible {
    public struct Kind: Sendable, Hashable, CustomStringConvertible {
        public let name: String
        private init(_ name: String) { self.name = name }
        /// A token bucket: `rate` per interval, `burst` at most, `debt` deep at most for scheduled
        /// admissions; with a `ceiling`, HTB-style borrowing above the rate.
        public static let bucket = Kind("bucket")
        /// A sliding window: at most `rate.amount` per `rate.interval`; exact (a log) for up to 100,
        /// else the two-window approximation.
        public static let window = Kind("window")
        /// A total that does not refill, optionally reset every calendar `period`.
        public static let budget = Kind("budget")
        /// Not a configured limit: the ``Reconciler`` paused the partition after the provider answered
        /// 429, and no admission passes until the provider's retry-after (a scheduled admission whose
        /// max wait covers the pause waits it out). Reported on the root scope, resource `*`.
        public static let pause = Kind("pause")
        /// Not a configured limit: a call inside a request tree (decided with its quota path, see
        /// ``TreeCall``) came after the tree's deadline. ``LimitStatus/limit`` is the deadline in ms
        /// since 1970 (Redis' clock), ``LimitStatus/remaining`` how long before now it passed (<= 0).
        public static let treeDeadline = Kind("tree-deadline")
        /// Not a configured limit: the call's node is deeper than the tree's max depth (the limit).
        public static let treeDepth = Kind("tree-depth")
        /// Not a configured limit: the tree's loop guard, the most identical calls of one tool.
        public static let loopGuard = Kind("loop-guard")
        /// Not a configured limit: the tree's budget of the resource cannot cover the cost
        /// (remaining: what is left of it, spent or reserved by the tree's other calls).
        public static let treeBudget = Kind("tree-budget")
        /// Not a configured limit: the tree already has its max calls in flight.
        public static let treeInFlight = Kind("tree-in-flight")
        /// Not a configured limit, and never reported to callers: the decision went to a partition's own keys
        /// after `quota set --shards` split it. The ``Limiter`` reads the layout again and decides on the
        /// tenant's shard.
        static let resharded = Kind("resharded")
        public var description: String { name }
    }

    public var kind: Kind
    /// Bucket: the refill rate. Window: the limit and the window's length.
    public var rate: Rate?
    /// Budget: the total.
    public var total: Int64?
    public var burst: Int64?
    public var debt: Int64?
    public var ceiling: Rate?
    /// Percent of the bucket's burst kept for admissions within their guarantee (0-100).
    public var headroom: Int64?
    /// Window: true forces the exact log (limit 100 at most), false the approximation, nil chooses.
    public var exact: Bool?
    /// Budget: `s`, `min`, `h`, `d`, `w` (Monday, UTC) or `mo` (calendar month, UTC).
    public var period: String?
    /// Budget without a period: how long an idle total is kept, e.g. `7d` (the default).
    public var ttl: String?
    /// Computed and counted as would-deny, never denies.
    public var shadow: Bool

    public init(
        kind: Kind, rate: Rate? = nil, total: Int64? = nil, burst: Int64? = nil, debt: Int64? = nil,
        ceiling: Rate? = nil,
        headroom: Int64? = nil, exact: Bool? = nil, period: String? = nil, ttl: String? = nil, shadow: Bool = false
    ) {
        self.kind = kind
        self.rate = rate
        self.total = total
        self.burst = burst
        self.debt = debt
        self.ceiling = ceiling
        self.headroom = headroom
        self.exact = exact
        self.period = period
        self.ttl = ttl
        self.shadow = shadow
    }

    /// The state record's tag suffix: one bucket and one budget per resource, one window per length.
    var tag: String {
        switch kind {
        case .bucket: return "/b"
        case .budget: return "/g"
        default: return "/w\(rate?.milliseconds ?? 0)"
        }
    }

    /// The clause's text, canonical: the kind, its main value, then the options that are set.
    public var description: String {
        var words = [kind.name]
        switch kind {
        case .bucket: words.append("rate=\(rate?.description ?? "?")")
        case .window: words.append(rate?.description ?? "?")
        default: words.append(String(total ?? 0))
        }
        if let burst { words.append("burst=\(burst)") }
        if let debt { words.append("debt=\(debt)") }
        if let ceiling { words.append("ceiling=\(ceiling)") }
        if let headroom { words.append("headroom=\(headroom)") }
        if let exact { words.append(exact ? "exact" : "approx") }
        if let period { words.append("period=\(period)") }
        if let ttl { words.append("ttl=\(ttl)") }
        if shadow { words.append("shadow") }
        return words.joined(separator: " ")
    }
}

/// An amount per interval: `90000/min`, `100/10s`, `1/d`.
public struct Rate: Sendable, Hashable, CustomStringConvertible {
    public var amount: Int64
    public var multiple: Int64
    /// `s`, `min`, `h` or `d`.
    public var unit: String

    public init(amount: Int64, multiple: Int64 = 1, unit: String) throws(QuotaError) {
        guard let unitMilliseconds = Rate.units[unit] else {
            throw QuotaError(.invalidDuration, "a unit is s, min, h or d")
        }
        guard amount > 0, amount <= Cost.maximumAmount, multiple > 0, multiple <= 1_000_000 else {
            throw QuotaError(.invalidDuration, "a rate is N/UNIT or N/KUNIT with N and K positive")
        }
        _ = unitMilliseconds
        self.amount = amount
        self.multiple = multiple
        self.unit = unit
    }

    /// Parses `N/UNIT` or `N/KUNIT`.
    public init(parsing text: String) throws(QuotaError) {
        guard let parts = QuotaSpecParser.rateParts(text) else {
            throw QuotaError(.invalidDuration, "a rate is N/UNIT, UNIT s, min, h or d (e.g. 90000/min, 100/10s)")
        }
        try self.init(amount: parts.amount, multiple: parts.multiple, unit: parts.unit)
    }

    static let units: [String: Int64] = ["s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000]

    public var milliseconds: Int64 { multiple * (Rate.units[unit] ?? 0) }
    public var description: String { "\(amount)/\(multiple == 1 ? "" : String(multiple))\(unit)" }
}

/// The parser shared by ``QuotaSpec`` and the CLI; mirrors `parse` in `lua/decide.lua` rule by rule.
enum QuotaSpecParser {
    static let options: [String: Set<String>] = [
        "bucket": ["rate", "burst", "debt", "ceiling", "headroom", "shadow"],
        "window": ["limit", "exact", "approx", "shadow"],
        "budget": ["total", "period", "ttl", "shadow"],
    ]
    static let main = ["bucket": "rate", "window": "limit", "budget": "total"]
    static let periods: Set<String> = ["s", "min", "h", "d", "w", "mo"]

    static func parse(_ text: String) throws(QuotaError) -> QuotaSpec {
        var entries: [QuotaSpec.Entry] = []
        var none: Set<String> = []
        var resource: String?
        var clause: [String: Value]?
        var count = 0
        func fail(_ reason: String) -> QuotaError { QuotaError(.invalidSpec, reason) }

        func finish() throws(QuotaError) {
            defer { clause = nil }
            guard let open = clause, let resource, let index = entries.firstIndex(where: { $0.resource == resource })
            else {
                return
            }
            if case .text(let kind) = open["kind"], kind == "none" {
                if !entries[index].limits.isEmpty { throw fail("\(resource): none and limits at once") }
                none.insert(resource)
                if open.count > 1 { throw fail("none takes no options") }
                return
            }
            if none.contains(resource) { throw fail("\(resource): none and limits at once") }
            let limit = try compile(open)
            if entries[index].limits.contains(where: { $0.tag == limit.tag }) {
                throw fail("two \(resource) \(limit.kind) limits alike")
            }
            entries[index].limits.append(limit)
            count += 1
            if count > QuotaSpec.maximumLimits {
                throw QuotaError(.tooManyLimits, "a spec holds at most \(QuotaSpec.maximumLimits) limits")
            }
        }

        for (word, separator) in words(text) {
            var word = word
            if clause == nil, let colon = word.firstIndex(of: ":"), isResourceName(word[..<colon]) {
                let name = String(word[..<colon])
                word = String(word[word.index(after: colon)...])
                if entries.contains(where: { $0.resource == name }) { throw fail("\(name) given twice") }
                if name.utf8.count > 32 { throw fail("a resource name has at most 32 characters") }
                resource = name
                entries.append(QuotaSpec.Entry(resource: name, limits: []))
            }
            if word.isEmpty {
                // "tokens:" alone: the kind follows
            } else if resource == nil {
                throw fail("a spec starts with \"<resource>:\"")
            } else if clause == nil {
                guard word == "none" || options[word] != nil else { throw fail("unknown limit kind \"\(word)\"") }
                clause = ["kind": .text(word)]
            } else if case .text(let kind) = clause?["kind"] {
                var key = word
                var value = Value.flag
                if let equals = word.firstIndex(of: "=") {
                    key = String(word[..<equals])
                    value = .text(String(word[word.index(after: equals)...]))
                } else if let first = word.utf8.first, first >= 48, first <= 57 {
                    guard let mainKey = main[kind] else { throw fail("unknown option \"nil\"") }
                    key = mainKey
                    value = .text(word)
                }
                guard options[kind]?.contains(key) == true else { throw fail("unknown option \"\(key)\"") }
                guard clause?[key] == nil else { throw fail("\"\(key)\" given twice") }
                clause?[key] = value
            }
            if separator { try finish() }
        }
        try finish()
        guard !entries.isEmpty else { throw fail("empty spec") }
        return QuotaSpec(entries: entries)
    }

    enum Value: Hashable {
        case flag
        case text(String)
    }

    private static func compile(_ clause: [String: Value]) throws(QuotaError) -> QuotaLimit {
        func fail(_ reason: String) -> QuotaError { QuotaError(.invalidSpec, reason) }
        for flag in ["shadow", "exact", "approx"] {
            if let value = clause[flag], value != .flag { throw fail("\(flag) takes no value") }
        }
        func text(_ key: String) -> String? {
            if case .text(let value) = clause[key] { return value }
            return nil
        }
        func given(_ key: String) -> Bool { clause[key] != nil }
        let shadow = clause["shadow"] == .flag
        guard case .text(let kind) = clause["kind"] else { throw fail("no kind") }
        switch kind {
        case "bucket":
            guard let rate = text("rate").flatMap(parseRate) else {
                throw fail("rate must be N/UNIT, UNIT s, min, h or d")
            }
            var burst: Int64?
            if given("burst") {
                guard let value = text("burst").flatMap(count), value > 0 else {
                    throw fail("burst must be a positive integer")
                }
                burst = value
            }
            var debt: Int64?
            if given("debt") {
                guard let value = text("debt").flatMap(count) else { throw fail("debt must be an integer >= 0") }
                debt = value
            }
            var ceiling: Rate?
            if given("ceiling") {
                guard let value = text("ceiling").flatMap(parseRate),
                    Double(value.amount) / Double(value.milliseconds) >= Double(rate.amount) / Double(rate.milliseconds)
                else { throw fail("ceiling must be N/UNIT, at least the rate") }
                ceiling = value
            }
            var headroom: Int64?
            if given("headroom") {
                guard let value = text("headroom").flatMap(count), value <= 100 else {
                    throw fail("headroom must be a percentage, 0 to 100")
                }
                headroom = value
            }
            return QuotaLimit(
                kind: .bucket, rate: rate, burst: burst, debt: debt, ceiling: ceiling, headroom: headroom,
                shadow: shadow)
        case "window":
            guard let rate = text("limit").flatMap(parseRate) else {
                throw fail("window must be N/UNIT, UNIT s, min, h or d")
            }
            if given("exact") && (given("approx") || rate.amount > 100) {
                throw fail("exact windows allow at most 100")
            }
            let exact: Bool? = given("exact") ? true : given("approx") ? false : nil
            return QuotaLimit(kind: .window, rate: rate, exact: exact, shadow: shadow)
        default:
            guard let total = text("total").flatMap(count) else { throw fail("budget must be an integer") }
            if given("period") {
                guard let period = text("period"), periods.contains(period) else {
                    throw fail("period must be s, min, h, d, w or mo")
                }
            }
            if given("ttl") {
                guard let ttl = text("ttl"), duration(ttl) != nil else {
                    throw fail("ttl must be N followed by s, min, h or d")
                }
            }
            return QuotaLimit(kind: .budget, total: total, period: text("period"), ttl: text("ttl"), shadow: shadow)
        }
    }

    /// Words (runs of neither white space nor `;`), each with whether a `;` follows it.
    static func words(_ text: String) -> [(String, Bool)] {
        var out: [(String, Bool)] = []
        var current: [UInt8] = []
        var pendingWord: String?
        for byte in text.utf8 {
            let space = byte == 32 || (byte >= 9 && byte <= 13)
            if byte == 59 {  // ;
                if !current.isEmpty {
                    out.append((String(decoding: current, as: UTF8.self), true)); current = []
                } else if let word = pendingWord {
                    out[out.count - 1] = (word, true)
                }
                pendingWord = nil
            } else if space {
                if !current.isEmpty {
                    let word = String(decoding: current, as: UTF8.self)
                    out.append((word, false))
                    pendingWord = word
                    current = []
                }
            } else {
                current.append(byte)
                pendingWord = nil
            }
        }
        if !current.isEmpty { out.append((String(decoding: current, as: UTF8.self), false)) }
        return out
    }

    private static func isResourceName(_ text: Substring) -> Bool {
        let bytes = Array(text.utf8)
        guard let first = bytes.first else { return false }
        func letter(_ b: UInt8) -> Bool { (b >= 65 && b <= 90) || (b >= 97 && b <= 122) || b == 95 }
        return letter(first) && bytes.allSatisfy { letter($0) || ($0 >= 48 && $0 <= 57) }
    }

    /// Digits only, at most 2^50.
    static func count(_ text: String) -> Int64? {
        guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
        guard let value = Int64(text), value <= Cost.maximumAmount else { return nil }
        return value
    }

    static func rateParts(_ text: String) -> (amount: Int64, multiple: Int64, unit: String)? {
        guard let slash = text.firstIndex(of: "/"), let amount = count(String(text[..<slash])) else { return nil }
        let rest = text[text.index(after: slash)...]
        let digits = rest.prefix { $0.isASCII && $0.isNumber }
        let unit = String(rest.dropFirst(digits.count))
        guard !unit.isEmpty, unit.utf8.allSatisfy({ ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) }) else {
            return nil
        }
        var multiple: Int64 = 1
        if !digits.isEmpty {
            guard let value = count(String(digits)) else { return nil }
            multiple = value
        }
        return (amount, multiple, unit)
    }

    static func parseRate(_ text: String) -> Rate? {
        guard let parts = rateParts(text) else { return nil }
        return try? Rate(amount: parts.amount, multiple: parts.multiple, unit: parts.unit)
    }

    /// `7d`, `30min`: milliseconds.
    static func duration(_ text: String) -> Int64? {
        let digits = text.prefix { $0.isASCII && $0.isNumber }
        guard let value = count(String(digits)), value > 0, value <= 1_000_000,
            let unit = Rate.units[String(text.dropFirst(digits.count))]
        else { return nil }
        return value * unit
    }
}
