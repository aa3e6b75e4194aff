/// The header fields of a provider's response, looked up without regard to the case of their names.
///
/// Build it from whatever your HTTP client returns:
///
/// ```swift
/// let headers = ResponseHeaders(response.headers)  // AsyncHTTPClient's HTTPHeaders, or swift-http-types' HTTPFields
/// let headers = ResponseHeaders(response.headers.map { (name: $0.name, value: $0.value) })
/// let headers: ResponseHeaders = ["x-ratelimit-remaining-requests": "9999"]
/// ```
///
/// Values are kept with surrounding spaces and tabs removed. A name that appears more than once keeps every value,
/// in order.
public struct ResponseHeaders: Sendable, Hashable, ExpressibleByDictionaryLiteral {
    /// Lowercased name → values in the order they were added.
    private var fields: [String: [String]] = [:]

    public init() {}

    public init(_ fields: some Sequence<(name: String, value: String)>) {
        for field in fields { add(name: field.name, value: field.value) }
    }

    public init(_ fields: [String: String]) {
        for (name, value) in fields { add(name: name, value: value) }
    }

    public init(dictionaryLiteral elements: (String, String)...) {
        for (name, value) in elements { add(name: name, value: value) }
    }

    /// Adds one field; earlier fields of the same name are kept.
    public mutating func add(name: String, value: String) {
        fields[Self.normalized(name), default: []].append(Self.trimmed(value))
    }

    /// The first value of the field `name` (any case), or nil if there is none.
    public subscript(name: String) -> String? {
        fields[Self.normalized(name)]?.first
    }

    /// Every value of the field `name` (any case), in order.
    public func values(named name: String) -> [String] {
        fields[Self.normalized(name)] ?? []
    }

    /// Whether a field `name` (any case) is present.
    public func contains(_ name: String) -> Bool {
        fields[Self.normalized(name)] != nil
    }

    /// The number of distinct field names.
    public var count: Int { fields.count }

    /// Internal lookups use names that are already lowercase and skip the lowercasing.
    func values(lowercased name: String) -> [String]? { fields[name] }

    func first(lowercased name: String) -> Substring? { fields[name]?.first.map { $0[...] } }

    private static func normalized(_ name: String) -> String {
        trimmed(name).lowercased()
    }

    static func trimmed(_ text: some StringProtocol) -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" }
        guard let start = text.firstIndex(where: { !isSpace($0) }), let end = text.lastIndex(where: { !isSpace($0) })
        else { return "" }
        return String(text[start...end])
    }
}
