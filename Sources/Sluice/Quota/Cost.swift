/// Whole units per resource (`requests`, `tokens`, `input_tokens`, `usd_micros`, ...): what a decision
/// costs, what a call estimates and what it used, what a tree may spend. Written as a dictionary literal:
/// `["requests": 1, "tokens": 1200]`.
///
/// Validation happens before any I/O: every resource name must be an identifier, every amount an integer
/// from 0 to ``maximumAmount``; a decision also needs at least one resource named.
public struct Cost: Sendable, Hashable, ExpressibleByDictionaryLiteral, CustomStringConvertible {
    public var amounts: [String: Int64]

    public init(_ amounts: [String: Int64]) { self.amounts = amounts }
    public init(dictionaryLiteral elements: (String, Int64)...) {
        self.amounts = Dictionary(elements, uniquingKeysWith: +)
    }

    /// Parses `R=N` items, as the CLI takes them: `requests=1 tokens=1200`.
    package init(parsing items: [String]) throws(QuotaError) {
        var amounts: [String: Int64] = [:]
        for item in items.flatMap({ $0.split(separator: " ").map(String.init) }) {
            guard let equals = item.firstIndex(of: "="), let amount = Int64(item[item.index(after: equals)...]) else {
                throw QuotaError(.invalidCost, "a cost is written RESOURCE=N with N a whole number")
            }
            amounts[String(item[..<equals]), default: 0] += amount
        }
        self.amounts = amounts
        _ = try validated()
    }

    /// Larger amounts are refused as absurd (and would lose precision in the script's doubles).
    public static let maximumAmount: Int64 = 1 << 50

    public subscript(resource: String) -> Int64 {
        get { amounts[resource] ?? 0 }
        set { amounts[resource] = newValue }
    }

    /// Whether no resource is named.
    public var isEmpty: Bool { amounts.isEmpty }

    /// This cost with `other`'s amounts in place of its own, for the resources `other` names.
    public func merging(_ other: Cost) -> Cost {
        Cost(amounts.merging(other.amounts) { $1 })
    }

    public var description: String {
        amounts.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
    }

    /// The amounts sorted by resource, after checking them; at least one resource must be named.
    func validated() throws(QuotaError) -> [(resource: String, amount: Int64)] {
        guard !amounts.isEmpty else { throw QuotaError(.emptyCost, "a cost names at least one resource") }
        return try sortedValidAmounts()
    }

    /// The amounts sorted by resource, after checking them; an empty cost passes (a tree call may reserve
    /// nothing).
    func sortedValidAmounts() throws(QuotaError) -> [(resource: String, amount: Int64)] {
        for (resource, amount) in amounts {
            guard Identifier.isValid(resource) else {
                throw QuotaError(
                    .invalidResource, "a resource is a letter or _, then letters, digits or _ (at most 32)")
            }
            guard amount >= 0 else { throw QuotaError(.invalidCost, "a cost is never negative") }
            guard amount <= Cost.maximumAmount else {
                throw QuotaError(.invalidCost, "a cost above \(Cost.maximumAmount) is refused as absurd")
            }
        }
        return amounts.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }
}

extension Cost {
    /// Validates a `Double` amount (from JSON, say): it must be a whole, finite, non-negative number.
    package static func amount(_ value: Double) throws(QuotaError) -> Int64 {
        guard value.isFinite, value == value.rounded(), value >= 0, value <= Double(maximumAmount) else {
            throw QuotaError(.invalidCost, "a cost is a whole number from 0 to \(maximumAmount)")
        }
        return Int64(value)
    }
}
