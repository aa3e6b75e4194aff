/// A reply from Redis, converted from hiredis' reply object the moment it arrives.
///
/// Top-level error replies are thrown as ``RedisError``; an error nested inside an array
/// (a script's error table, say) stays a value here.
public enum RedisValue: Sendable, Hashable {
    case null
    case integer(Int64)
    /// A bulk string: binary-safe bytes.
    case bulkString([UInt8])
    /// A status reply such as `OK` or `PONG`.
    case simpleString(String)
    case error(String)
    case array([RedisValue])
}

extension RedisValue {
    /// The value as text: bulk strings decoded as UTF-8 (lossy), status strings, integers.
    public var string: String? {
        switch self {
        case .bulkString(let bytes): return String(decoding: bytes, as: UTF8.self)
        case .simpleString(let text): return text
        case .integer(let number): return String(number)
        default: return nil
        }
    }

    /// The value as bytes (bulk and status strings).
    public var bytes: [UInt8]? {
        switch self {
        case .bulkString(let bytes): return bytes
        case .simpleString(let text): return Array(text.utf8)
        default: return nil
        }
    }

    /// The value as an integer: integer replies, and bulk strings that hold a decimal integer.
    public var integer: Int64? {
        switch self {
        case .integer(let number): return number
        case .bulkString(let bytes): return Int64(String(decoding: bytes, as: UTF8.self))
        case .simpleString(let text): return Int64(text)
        default: return nil
        }
    }

    /// The value as a floating-point number (scripts return fractions as strings).
    public var double: Double? {
        switch self {
        case .integer(let number): return Double(number)
        case .bulkString, .simpleString: return string.flatMap(Double.init)
        default: return nil
        }
    }

    public var array: [RedisValue]? {
        if case .array(let elements) = self { return elements }
        return nil
    }

    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }
}
