/// One level of a decision's path: a kind (`global`, `tenant`, `tree`, `model`, `tool`, ...) and
/// a name (`openai`, `acme`, `req-7f3`, or `*` in quota patterns).
///
/// Kinds are identifiers (a letter or `_`, then letters, digits and `_`; at most 32). Names are any
/// non-empty text: Sluice escapes them in keys and config fields, so braces, spaces, `=`, `/`,
/// `*` or binary in a name cannot collide with another name or break out of its key.
public struct Scope: Sendable, Hashable, CustomStringConvertible {
    public let kind: String
    public let name: String
    /// `kind=<escaped name>`, as it appears in keys and config fields (computed once).
    let escaped: String

    public init(_ kind: String, _ name: String) throws(QuotaError) {
        guard Identifier.isValid(kind) else {
            throw QuotaError(.invalidScope, "a scope kind is a letter or _, then letters, digits or _ (at most 32)")
        }
        guard !name.isEmpty else { throw QuotaError(.invalidScope, "a scope name is empty") }
        self.kind = kind
        self.name = name
        self.escaped = "\(kind)=\(KeyName.escape(name))"
    }

    public static func == (lhs: Scope, rhs: Scope) -> Bool { lhs.kind == rhs.kind && lhs.name == rhs.name }
    public func hash(into hasher: inout Hasher) {
        hasher.combine(kind)
        hasher.combine(name)
    }

    /// Parses `KIND=NAME` (the first `=` separates them; the name may hold more).
    public init(parsing text: String) throws(QuotaError) {
        guard let equals = text.firstIndex(of: "=") else {
            throw QuotaError(.invalidScope, "a scope is written KIND=NAME")
        }
        try self.init(String(text[..<equals]), String(text[text.index(after: equals)...]))
    }

    public var description: String { "\(kind)=\(name)" }

}

/// A decision's path of scopes, root first: `global=openai tenant=acme tree=req-7f3`.
public struct ScopePath: Sendable, Hashable, CustomStringConvertible {
    public let scopes: [Scope]

    public init(_ scopes: [Scope]) throws(QuotaError) {
        guard !scopes.isEmpty else { throw QuotaError(.emptyPath, "a path needs at least one scope") }
        guard scopes.count <= ScopePath.maximumDepth else {
            throw QuotaError(
                .pathTooDeep, "a path has at most \(ScopePath.maximumDepth) scopes, this one \(scopes.count)")
        }
        self.scopes = scopes
    }

    /// `try ScopePath("global=openai", "tenant=acme", "tree=req-7f3")`.
    public init(_ scopes: String...) throws(QuotaError) {
        try self.init(parsing: scopes)
    }

    /// Each element is one `KIND=NAME` (a name may hold spaces).
    public init(parsing texts: [String]) throws(QuotaError) {
        var scopes: [Scope] = []
        for text in texts { scopes.append(try Scope(parsing: text)) }
        try self.init(scopes)
    }

    /// Paths deeper than this are refused: the config lookup grows with the square of the depth.
    public static let maximumDepth = 8

    public var count: Int { scopes.count }
    public var root: Scope { scopes[0] }
    /// The partition the path's keys live in: the root scope's name (`openai` for `global=openai tenant=acme`).
    /// It is the keys' hash tag and names the config hash operators edit (`sluice quota set`), so every part of
    /// Sluice means the same string by it.
    public var partition: String { root.name }
    public var description: String { scopes.map(\.description).joined(separator: " ") }

    /// The config fields that may hold the spec of scope `index`, most specific first: the exact
    /// prefix, then with the trailing names replaced by `*` one by one (the root stays exact).
    func patterns(at index: Int) -> [String] {
        let exact = scopes[...index].map(\.escaped)
        return (1...(index + 1)).reversed().map { keep in
            (exact[..<keep] + scopes[keep..<(index + 1)].map { "\($0.kind)=*" }).joined(separator: " ")
        }
    }
}

enum Identifier {
    /// A letter or `_`, then letters, digits and `_`; at most 32 (ASCII).
    static func isValid(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard (1...32).contains(bytes.count) else { return false }
        func letter(_ b: UInt8) -> Bool { (b >= 65 && b <= 90) || (b >= 97 && b <= 122) || b == 95 }
        return letter(bytes[0]) && bytes.allSatisfy { letter($0) || ($0 >= 48 && $0 <= 57) }
    }
}
