/// One argument of a Redis command: binary-safe bytes.
public struct RedisArgument: Sendable, Hashable, ExpressibleByStringLiteral, ExpressibleByIntegerLiteral {
    public var bytes: [UInt8]

    public init(bytes: [UInt8]) { self.bytes = bytes }
    public init(_ string: String) { self.bytes = Array(string.utf8) }
    public init<Integer: BinaryInteger>(_ integer: Integer) { self.bytes = Array(String(integer).utf8) }
    public init(stringLiteral value: String) { self.init(value) }
    public init(integerLiteral value: Int) { self.init(value) }
}

/// A complete command, encoded once in the Redis protocol (RESP) by the caller, so that the
/// connection's I/O thread only copies bytes.
public struct RedisCommand: Sendable {
    /// The command's name, for errors and logs (never its arguments: they may hold user keys).
    public let name: String
    let encoded: [UInt8]
    /// Whether the command breaks the one-reply-per-command rule that pipelining relies on
    /// (pub/sub, `MONITOR`, `CLIENT REPLY`); such commands are refused before they are sent.
    let breaksReplyOrder: Bool

    public init(_ name: String, _ arguments: [RedisArgument] = []) {
        self.name = name
        var out: [UInt8] = []
        out.reserveCapacity(16 + name.utf8.count + arguments.reduce(0) { $0 + $1.bytes.count + 16 })
        Self.appendHeader(UInt8(ascii: "*"), arguments.count + 1, to: &out)
        Self.appendBulk(name.utf8, to: &out)
        for argument in arguments { Self.appendBulk(argument.bytes, to: &out) }
        self.encoded = out
        // Cheap first: most commands (EVALSHA, FCALL, GET, ...) start with another letter.
        let first = name.utf8.first.map { $0 | 0x20 } ?? 0
        guard
            first == UInt8(ascii: "s") || first == UInt8(ascii: "p") || first == UInt8(ascii: "u")
                || first == UInt8(ascii: "m") || first == UInt8(ascii: "c")
        else {
            self.breaksReplyOrder = false
            return
        }
        let upper = name.uppercased()
        self.breaksReplyOrder =
            Self.commandsWithoutOneReply.contains(upper)
            || (upper == "CLIENT"
                && arguments.first.map { String(decoding: $0.bytes, as: UTF8.self).uppercased() } == "REPLY")
    }

    private static let commandsWithoutOneReply: Set<String> = [
        "SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE", "MONITOR",
    ]

    public init(_ name: String, _ arguments: RedisArgument...) {
        self.init(name, arguments)
    }

    private static func appendHeader(_ marker: UInt8, _ count: Int, to out: inout [UInt8]) {
        out.append(marker)
        out.append(contentsOf: String(count).utf8)
        out.append(13)
        out.append(10)
    }

    private static func appendBulk<Bytes: Collection>(_ bytes: Bytes, to out: inout [UInt8])
    where Bytes.Element == UInt8 {
        appendHeader(UInt8(ascii: "$"), bytes.count, to: &out)
        out.append(contentsOf: bytes)
        out.append(13)
        out.append(10)
    }
}
