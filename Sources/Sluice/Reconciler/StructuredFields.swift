/// A reader for the parts of HTTP Structured Field Values (RFC 9651, formerly RFC 8941) that the IETF `RateLimit`
/// and `RateLimit-Policy` fields use: Lists and Dictionaries of Items with Parameters, whose bare items are Integers,
/// Decimals, Strings, Tokens, Byte Sequences or Booleans. Inner Lists are read and kept as such. Dates and Display
/// Strings are not needed by any rate-limit field and make the field malformed here.
///
/// As RFC 9651 requires, a field that does not parse is rejected as a whole: the parsers return nil.
enum StructuredFields {
    enum BareItem: Hashable {
        case integer(Int64)
        case decimal(Double)
        case string(String)
        case token(String)
        case byteSequence(String)
        case boolean(Bool)

        /// The text of a String or a Token, which rate-limit fields use interchangeably for names and units.
        var text: String? {
            switch self {
            case .string(let text), .token(let text): text
            default: nil
            }
        }

        var integer: Int64? {
            if case .integer(let value) = self { value } else { nil }
        }
    }

    struct Item {
        var value: BareItem
        var parameters: [(key: String, value: BareItem)]

        func parameter(_ key: String) -> BareItem? {
            parameters.last { $0.key == key }?.value
        }
    }

    enum Member {
        case item(Item)
        case innerList([Item])
    }

    /// A List, such as `"burst";q=100;w=60, "daily";q=1000;w=86400`.
    static func parseList(_ text: Substring) -> [Member]? {
        var parser = Parser(text)
        return parser.parseWhole { parser in try parser.list() }
    }

    /// A Dictionary, such as `limit=100, remaining=50, reset=30`.
    static func parseDictionary(_ text: Substring) -> [(key: String, member: Member)]? {
        var parser = Parser(text)
        return parser.parseWhole { parser in try parser.dictionary() }
    }

    private struct Malformed: Error {}

    private struct Parser {
        var rest: Substring.UTF8View

        init(_ text: Substring) { rest = text.utf8 }

        mutating func parseWhole<T>(_ body: (inout Parser) throws -> T) -> T? {
            skip(" ")
            guard let value = try? body(&self) else { return nil }
            skip(" ")
            return rest.isEmpty ? value : nil
        }

        mutating func list() throws -> [Member] {
            var members: [Member] = []
            while !rest.isEmpty {
                members.append(try member())
                try separator()
            }
            return members
        }

        mutating func dictionary() throws -> [(key: String, member: Member)] {
            var members: [(key: String, member: Member)] = []
            while !rest.isEmpty {
                let name = try key()
                if consume("=") {
                    members.append((name, try member()))
                } else {
                    members.append((name, .item(Item(value: .boolean(true), parameters: try parameters()))))
                }
                try separator()
            }
            return members
        }

        /// After a member: the end, or a comma followed by another member.
        mutating func separator() throws {
            skipWhitespace()
            guard !rest.isEmpty else { return }
            guard consume(",") else { throw Malformed() }
            skipWhitespace()
            guard !rest.isEmpty else { throw Malformed() }  // trailing comma
        }

        mutating func member() throws -> Member {
            guard consume("(") else { return .item(try item()) }
            var items: [Item] = []
            while true {
                skip(" ")
                if consume(")") {
                    _ = try parameters()
                    return .innerList(items)
                }
                items.append(try item())
                guard rest.first == UInt8(ascii: " ") || rest.first == UInt8(ascii: ")") else { throw Malformed() }
            }
        }

        mutating func item() throws -> Item {
            Item(value: try bareItem(), parameters: try parameters())
        }

        mutating func parameters() throws -> [(key: String, value: BareItem)] {
            var parameters: [(key: String, value: BareItem)] = []
            while consume(";") {
                skip(" ")
                let name = try key()
                let value = consume("=") ? try bareItem() : .boolean(true)
                parameters.removeAll { $0.key == name }
                parameters.append((name, value))
            }
            return parameters
        }

        mutating func key() throws -> String {
            guard let first = rest.first, Self.isLowercaseLetter(first) || first == UInt8(ascii: "*") else {
                throw Malformed()
            }
            return take { Self.isLowercaseLetter($0) || HeaderNumbers.isDigit($0) || "_-.*".utf8.contains($0) }
        }

        mutating func bareItem() throws -> BareItem {
            guard let first = rest.first else { throw Malformed() }
            switch first {
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                return try number()
            case UInt8(ascii: "\""):
                return try string()
            case UInt8(ascii: ":"):
                rest.removeFirst()
                let base64 = take { Self.isLetter($0) || HeaderNumbers.isDigit($0) || "+/=".utf8.contains($0) }
                guard consume(":") else { throw Malformed() }
                return .byteSequence(base64)
            case UInt8(ascii: "?"):
                rest.removeFirst()
                if consume("0") { return .boolean(false) }
                if consume("1") { return .boolean(true) }
                throw Malformed()
            case _ where Self.isLetter(first) || first == UInt8(ascii: "*"):
                return .token(take { Self.isTokenCharacter($0) })
            default:
                throw Malformed()
            }
        }

        mutating func number() throws -> BareItem {
            let negative = consume("-")
            let whole = take(while: HeaderNumbers.isDigit)
            guard !whole.isEmpty, whole.count <= 15 else { throw Malformed() }
            guard consume(".") else {
                guard let value = Int64(whole) else { throw Malformed() }
                return .integer(negative ? -value : value)
            }
            let fraction = take(while: HeaderNumbers.isDigit)
            guard whole.count <= 12, (1...3).contains(fraction.count), let value = Double(whole + "." + fraction)
            else { throw Malformed() }
            return .decimal(negative ? -value : value)
        }

        mutating func string() throws -> BareItem {
            rest.removeFirst()  // opening quote
            var bytes: [UInt8] = []
            while let byte = rest.popFirst() {
                switch byte {
                case UInt8(ascii: "\\"):
                    guard let escaped = rest.popFirst(), escaped == UInt8(ascii: "\"") || escaped == UInt8(ascii: "\\")
                    else { throw Malformed() }
                    bytes.append(escaped)
                case UInt8(ascii: "\""):
                    return .string(String(decoding: bytes, as: UTF8.self))
                case 0x20...0x7E:
                    bytes.append(byte)
                default:
                    throw Malformed()
                }
            }
            throw Malformed()  // unterminated
        }

        // MARK: Characters

        mutating func take(while predicate: (UInt8) -> Bool) -> String {
            var end = rest.startIndex
            while end != rest.endIndex, predicate(rest[end]) { end = rest.index(after: end) }
            let taken = String(Substring(rest[rest.startIndex..<end]))
            rest = rest[end...]
            return taken
        }

        mutating func consume(_ character: Unicode.Scalar) -> Bool {
            guard rest.first == UInt8(ascii: character) else { return false }
            rest.removeFirst()
            return true
        }

        mutating func skip(_ character: Unicode.Scalar) {
            while consume(character) {}
        }

        mutating func skipWhitespace() {
            while let byte = rest.first, byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") { rest.removeFirst() }
        }

        static func isLowercaseLetter(_ byte: UInt8) -> Bool {
            byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")
        }

        static func isLetter(_ byte: UInt8) -> Bool {
            Self.isLowercaseLetter(byte) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
        }

        /// RFC 9110 tchar, plus ":" and "/" as RFC 9651 tokens allow.
        static func isTokenCharacter(_ byte: UInt8) -> Bool {
            Self.isLetter(byte) || HeaderNumbers.isDigit(byte) || "!#$%&'*+-.^_`|~:/".utf8.contains(byte)
        }
    }
}
