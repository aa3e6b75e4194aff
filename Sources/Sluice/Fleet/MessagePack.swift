/// A MessagePack value as Redis' `cmsgpack.pack` writes it (the breakers' state), decoded read-only.
///
/// Only what Lua tables produce: nil, booleans, integers, floats, strings, arrays and maps. Anything
/// else, or a truncated buffer, is `nil` from ``decode(_:)``: a reader of fleet state skips what it
/// cannot read rather than failing.
enum MessagePack: Sendable, Hashable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([MessagePack])
    case map([String: MessagePack])

    /// Decodes one value that fills `bytes` exactly.
    static func decode(_ bytes: [UInt8]) -> MessagePack? {
        var reader = Reader(bytes: bytes)
        guard let value = reader.value(depth: 0), reader.at == bytes.count else { return nil }
        return value
    }

    subscript(key: String) -> MessagePack? {
        if case .map(let map) = self { return map[key] }
        return nil
    }

    var integer: Int64? {
        switch self {
        case .int(let value): return value
        case .double(let value) where value.isFinite && abs(value) < 9e18: return Int64(value)
        default: return nil
        }
    }

    var text: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    /// An array; an empty map counts as an empty array (cmsgpack writes `{}` either way).
    var elements: [MessagePack]? {
        switch self {
        case .array(let values): return values
        case .map(let map) where map.isEmpty: return []
        default: return nil
        }
    }

    private struct Reader {
        let bytes: [UInt8]
        var at = 0

        mutating func byte() -> UInt8? {
            guard at < bytes.count else { return nil }
            defer { at += 1 }
            return bytes[at]
        }

        mutating func unsigned(_ count: Int) -> UInt64? {
            guard count <= 8, at + count <= bytes.count else { return nil }
            var value: UInt64 = 0
            for index in at..<(at + count) { value = value << 8 | UInt64(bytes[index]) }
            at += count
            return value
        }

        mutating func signed(_ count: Int) -> Int64? {
            guard let raw = unsigned(count) else { return nil }
            let shift = UInt64(64 - 8 * count)
            return Int64(bitPattern: raw << shift) >> Int64(shift)
        }

        mutating func string(_ count: Int) -> String? {
            guard count >= 0, at + count <= bytes.count else { return nil }
            defer { at += count }
            return String(decoding: bytes[at..<(at + count)], as: UTF8.self)
        }

        mutating func value(depth: Int) -> MessagePack? {
            guard depth < 32, let head = byte() else { return nil }
            switch head {
            case 0x00...0x7f: return .int(Int64(head))
            case 0xe0...0xff: return .int(Int64(Int8(bitPattern: head)))
            case 0xa0...0xbf: return string(Int(head & 0x1f)).map(MessagePack.string)
            case 0x90...0x9f: return array(Int(head & 0x0f), depth: depth)
            case 0x80...0x8f: return map(Int(head & 0x0f), depth: depth)
            case 0xc0: return .null
            case 0xc2: return .bool(false)
            case 0xc3: return .bool(true)
            case 0xcc, 0xcd, 0xce:
                return unsigned(1 << Int(head - 0xcc)).map { MessagePack.int(Int64($0)) }
            case 0xcf:
                guard let raw = unsigned(8) else { return nil }
                return raw <= UInt64(Int64.max) ? MessagePack.int(Int64(raw)) : MessagePack.double(Double(raw))
            case 0xd0, 0xd1, 0xd2, 0xd3: return signed(1 << Int(head - 0xd0)).map(MessagePack.int)
            case 0xca: return unsigned(4).map { MessagePack.double(Double(Float(bitPattern: UInt32($0)))) }
            case 0xcb: return unsigned(8).map { MessagePack.double(Double(bitPattern: $0)) }
            case 0xd9, 0xc4: return unsigned(1).flatMap { string(Int($0)) }.map(MessagePack.string)
            case 0xda, 0xc5: return unsigned(2).flatMap { string(Int($0)) }.map(MessagePack.string)
            case 0xdb, 0xc6: return unsigned(4).flatMap { string(Int($0)) }.map(MessagePack.string)
            case 0xdc: return unsigned(2).flatMap { array(Int($0), depth: depth) }
            case 0xdd: return unsigned(4).flatMap { array(Int($0), depth: depth) }
            case 0xde: return unsigned(2).flatMap { map(Int($0), depth: depth) }
            case 0xdf: return unsigned(4).flatMap { map(Int($0), depth: depth) }
            default: return nil
            }
        }

        mutating func array(_ count: Int, depth: Int) -> MessagePack? {
            guard count <= bytes.count - at else { return nil }
            var values: [MessagePack] = []
            values.reserveCapacity(count)
            for _ in 0..<count {
                guard let value = value(depth: depth + 1) else { return nil }
                values.append(value)
            }
            return .array(values)
        }

        mutating func map(_ count: Int, depth: Int) -> MessagePack? {
            guard count <= bytes.count - at else { return nil }
            var values: [String: MessagePack] = [:]
            for _ in 0..<count {
                guard let key = value(depth: depth + 1), let value = value(depth: depth + 1) else { return nil }
                switch key {
                case .string(let name): values[name] = value
                case .int(let index): values[String(index)] = value
                default: return nil
                }
            }
            return .map(values)
        }
    }
}
