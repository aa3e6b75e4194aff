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
    /// How the command uses its connection; see ``Kind``.
    let kind: Kind

    /// What the connections must know about a command before sending it.
    enum Kind: Sendable {
        /// One reply, no effect on the connection: fine anywhere.
        case ordinary
        /// Not one reply per command (pub/sub, `MONITOR`, `CLIENT REPLY`): refused everywhere,
        /// since pipelined replies could no longer be matched to their callers.
        case withoutOneReply
        /// Holds the connection until the server has something (`BLPOP`, `XREAD … BLOCK`, `WAIT`):
        /// refused on a shared connection, where every other caller would wait behind it.
        case blocking
        /// Changes the connection's state for the commands after it (`SELECT`, `MULTI`, `AUTH`, …):
        /// refused on a shared connection, where it would change other callers' commands.
        case connectionState
    }

    public init(_ name: String, _ arguments: [RedisArgument] = []) {
        self.name = name
        var out: [UInt8] = []
        out.reserveCapacity(16 + name.utf8.count + arguments.reduce(0) { $0 + $1.bytes.count + 16 })
        Self.appendHeader(UInt8(ascii: "*"), arguments.count + 1, to: &out)
        Self.appendBulk(name.utf8, to: &out)
        for argument in arguments { Self.appendBulk(argument.bytes, to: &out) }
        self.encoded = out
        self.kind = Self.classify(name, arguments)
    }

    private static func classify(_ name: String, _ arguments: [RedisArgument]) -> Kind {
        // Cheap first: the hot commands (EVALSHA, FCALL, GET, HGET, INCR, ...) are decided by their
        // first letter and length, without building an upper-case copy.
        let utf8 = name.utf8
        guard let firstByte = utf8.first, utf8.count <= 16 else { return .ordinary }
        switch firstByte | 0x20 {
        case UInt8(ascii: "e"):
            // EXEC (4 letters); EVAL, EVALSHA and friends never block.
            if utf8.count != 4 { return .ordinary }
        case UInt8(ascii: "a"), UInt8(ascii: "b"), UInt8(ascii: "c"), UInt8(ascii: "d"), UInt8(ascii: "h"),
            UInt8(ascii: "m"), UInt8(ascii: "p"), UInt8(ascii: "q"), UInt8(ascii: "r"), UInt8(ascii: "s"),
            UInt8(ascii: "u"), UInt8(ascii: "w"), UInt8(ascii: "x"):
            break
        default:
            return .ordinary
        }
        let upper = name.uppercased()
        if commandsWithoutOneReply.contains(upper) { return .withoutOneReply }
        if blockingCommands.contains(upper) { return .blocking }
        if connectionStateCommands.contains(upper) { return .connectionState }
        func word(_ index: Int) -> String? {
            index < arguments.count ? String(decoding: arguments[index].bytes, as: UTF8.self).uppercased() : nil
        }
        switch upper {
        case "CLIENT":
            switch word(0) {
            case "REPLY": return .withoutOneReply
            case "TRACKING", "CACHING", "SETNAME", "NO-EVICT", "NO-TOUCH": return .connectionState
            default: return .ordinary
            }
        case "XREAD", "XREADGROUP":
            // Blocking only with a BLOCK option, which comes before STREAMS (keys and ids follow it).
            for index in arguments.indices {
                switch word(index) {
                case "STREAMS": return .ordinary
                case "BLOCK": return .blocking
                default: continue
                }
            }
            return .ordinary
        default:
            return .ordinary
        }
    }

    private static let commandsWithoutOneReply: Set<String> = [
        "SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE", "MONITOR",
    ]

    private static let blockingCommands: Set<String> = [
        "BLPOP", "BRPOP", "BRPOPLPUSH", "BLMOVE", "BLMPOP", "BZPOPMIN", "BZPOPMAX", "BZMPOP", "WAIT", "WAITAOF",
    ]

    // `ASKING` is not among them: it holds for the next command only, and the cluster router sends it in one
    // pipeline with that command (a pipeline's commands are written back to back).
    private static let connectionStateCommands: Set<String> = [
        "SELECT", "MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH", "AUTH", "HELLO", "RESET", "QUIT",
        "READONLY", "READWRITE",
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
