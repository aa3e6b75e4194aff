/// Where a command's keys are, so that a cluster client can send it to the primary that serves them.
///
/// A table covers the commands Sluice and most programs send; a command it does not know is looked up once
/// with `COMMAND INFO` (see ``ClusterRouter``), and a command whose keys move with its arguments is asked
/// about with `COMMAND GETKEYS`.
enum KeyRule: Sendable, Hashable {
    /// No keys: any primary may answer.
    case none
    /// Changes every primary's state (`FUNCTION LOAD`, `SCRIPT LOAD`, `FLUSHALL`): sent to each.
    case everyPrimary
    /// Keys at `first`, `first + step`, … up to `last` (argument positions counting the name as 0; a negative
    /// `last` counts from the end, -1 being the last argument), as `COMMAND INFO` describes them.
    case positions(first: Int, last: Int, step: Int)
    /// `EVAL`, `EVALSHA`, `FCALL`: the argument at `index` says how many keys follow it.
    case counted(index: Int)
    /// `XREAD`, `XREADGROUP`: after `STREAMS`, the first half of the rest.
    case streams
    /// The first argument names a subcommand whose rule is in the table (`FUNCTION LOAD`, `OBJECT ENCODING`).
    indirect case subcommand([String: KeyRule], otherwise: KeyRule)
    /// Not in the table: the server is asked (`COMMAND INFO`, then maybe `COMMAND GETKEYS`).
    case askServer
    /// `COMMAND INFO` says the keys move with the arguments: `COMMAND GETKEYS` each time.
    case movable

    static let single = KeyRule.positions(first: 1, last: 1, step: 1)
    static let all = KeyRule.positions(first: 1, last: -1, step: 1)

    /// The rule for a command name (any case).
    static func rule(for name: String) -> KeyRule {
        if let rule = table[name] { return rule }
        return table[name.uppercased()] ?? .askServer
    }

    private static let table: [String: KeyRule] = {
        var table: [String: KeyRule] = [:]
        let noKeys = [
            "PING", "ECHO", "INFO", "TIME", "DBSIZE", "CLIENT", "CONFIG", "COMMAND", "CLUSTER", "ROLE", "LASTSAVE",
            "SLOWLOG", "LATENCY", "ACL", "HELLO", "AUTH", "SELECT", "RANDOMKEY", "SCAN", "KEYS", "WAIT", "MULTI",
            "EXEC", "DISCARD", "UNWATCH", "READONLY", "READWRITE", "ASKING", "LOLWUT", "DEBUG", "SAVE", "BGSAVE",
            "BGREWRITEAOF", "PUBLISH", "PUBSUB", "QUIT", "RESET", "SWAPDB", "MIGRATE", "MODULE", "SHUTDOWN",
            "REPLICAOF", "SLAVEOF", "FAILOVER", "WAITAOF",
        ]
        for name in noKeys { table[name] = KeyRule.none }
        table["FLUSHALL"] = .everyPrimary
        table["FLUSHDB"] = .everyPrimary
        table["FUNCTION"] = .subcommand(
            ["LOAD": .everyPrimary, "DELETE": .everyPrimary, "FLUSH": .everyPrimary, "RESTORE": .everyPrimary],
            otherwise: .none)
        table["SCRIPT"] = .subcommand(["LOAD": .everyPrimary, "FLUSH": .everyPrimary], otherwise: .none)
        let singleKey = [
            "GET", "SET", "SETNX", "SETEX", "PSETEX", "GETSET", "GETDEL", "GETEX", "APPEND", "STRLEN", "INCR", "INCRBY",
            "INCRBYFLOAT", "DECR", "DECRBY", "EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT", "PERSIST", "TTL", "PTTL",
            "EXPIRETIME", "PEXPIRETIME", "TYPE", "DUMP", "RESTORE", "GETRANGE", "SETRANGE", "GETBIT", "SETBIT",
            "BITCOUNT", "BITPOS", "BITFIELD", "BITFIELD_RO", "PFADD", "HSET", "HSETNX", "HGET", "HMGET", "HMSET",
            "HGETALL", "HDEL", "HEXISTS", "HINCRBY", "HINCRBYFLOAT", "HKEYS", "HVALS", "HLEN", "HSCAN", "HSTRLEN",
            "HRANDFIELD", "LPUSH", "RPUSH", "LPUSHX", "RPUSHX", "LPOP", "RPOP", "LLEN", "LRANGE", "LINDEX", "LSET",
            "LREM", "LTRIM", "LINSERT", "LPOS", "SADD", "SREM", "SMEMBERS", "SISMEMBER", "SMISMEMBER", "SCARD", "SPOP",
            "SRANDMEMBER", "SSCAN", "ZADD", "ZREM", "ZCARD", "ZCOUNT", "ZSCORE", "ZMSCORE", "ZINCRBY", "ZRANGE",
            "ZRANGEBYSCORE", "ZREVRANGE", "ZREVRANGEBYSCORE", "ZRANGEBYLEX", "ZREVRANGEBYLEX", "ZRANK", "ZREVRANK",
            "ZREMRANGEBYSCORE", "ZREMRANGEBYRANK", "ZREMRANGEBYLEX", "ZLEXCOUNT", "ZSCAN", "ZPOPMIN", "ZPOPMAX",
            "ZRANDMEMBER", "XADD", "XRANGE", "XREVRANGE", "XLEN", "XTRIM", "XDEL", "XACK", "XCLAIM", "XAUTOCLAIM",
            "XPENDING", "XSETID", "GEOADD", "GEOPOS", "GEODIST", "GEOHASH", "GEOSEARCH", "SORT_RO",
        ]
        for name in singleKey { table[name] = .single }
        for name in ["DEL", "UNLINK", "EXISTS", "TOUCH", "MGET", "WATCH", "SINTER", "SUNION", "SDIFF", "PFCOUNT"] {
            table[name] = .all
        }
        for name in ["MSET", "MSETNX"] { table[name] = .positions(first: 1, last: -1, step: 2) }
        for name in ["BLPOP", "BRPOP", "BZPOPMIN", "BZPOPMAX"] { table[name] = .positions(first: 1, last: -2, step: 1) }
        for name in ["RENAME", "RENAMENX", "SMOVE", "LMOVE", "BLMOVE", "RPOPLPUSH", "BRPOPLPUSH", "COPY"] {
            table[name] = .positions(first: 1, last: 2, step: 1)
        }
        for name in ["EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO"] {
            table[name] = .counted(index: 2)
        }
        table["XREAD"] = .streams
        table["XREADGROUP"] = .streams
        let second = KeyRule.positions(first: 2, last: 2, step: 1)
        table["OBJECT"] = .subcommand(
            ["ENCODING": second, "FREQ": second, "IDLETIME": second, "REFCOUNT": second], otherwise: .none)
        table["MEMORY"] = .subcommand(["USAGE": second], otherwise: .none)
        table["XINFO"] = .subcommand(["STREAM": second, "GROUPS": second, "CONSUMERS": second], otherwise: .none)
        table["XGROUP"] = .subcommand(
            [
                "CREATE": second, "SETID": second, "DESTROY": second, "CREATECONSUMER": second, "DELCONSUMER": second,
            ], otherwise: .none)
        return table
    }()
}

/// The arguments of an encoded command, as ranges of its bytes (index 0 is the command's name).
struct EncodedArguments {
    let bytes: [UInt8]
    let ranges: [Range<Int>]

    init?(_ encoded: [UInt8]) {
        bytes = encoded
        var ranges: [Range<Int>] = []
        var index = 0
        func number() -> Int? {
            var value = 0
            var digits = 0
            while index < encoded.count, encoded[index] != 13 {
                let digit = Int(encoded[index]) - 48
                guard (0...9).contains(digit) else { return nil }
                value = value * 10 + digit
                digits += 1
                index += 1
            }
            guard digits > 0, index + 1 < encoded.count else { return nil }
            index += 2  // \r\n
            return value
        }
        guard encoded.first == UInt8(ascii: "*") else { return nil }
        index = 1
        guard let count = number() else { return nil }
        ranges.reserveCapacity(count)
        for _ in 0..<count {
            guard index < encoded.count, encoded[index] == UInt8(ascii: "$") else { return nil }
            index += 1
            guard let length = number(), index + length <= encoded.count else { return nil }
            ranges.append(index..<(index + length))
            index += length + 2
        }
        self.ranges = ranges
    }

    var count: Int { ranges.count }

    subscript(position: Int) -> ArraySlice<UInt8> { bytes[ranges[position]] }

    func text(_ position: Int) -> String { String(decoding: self[position], as: UTF8.self) }

    /// The key positions of `rule` for these arguments; `nil` when the rule needs the server.
    func keyPositions(_ rule: KeyRule) -> [Int]? {
        switch rule {
        case .none, .everyPrimary: return []
        case .askServer, .movable: return nil
        case .positions(let first, let last, let step):
            let end = last < 0 ? count + last : last
            guard first >= 1, step >= 1, first <= end, end < count else { return [] }
            return Array(stride(from: first, through: end, by: step))
        case .counted(let index):
            guard index < count, let keys = Int(text(index)), keys > 0 else { return [] }
            return Array((index + 1)..<min(count, index + 1 + keys))
        case .streams:
            guard let streams = (1..<max(1, count)).first(where: { text($0).uppercased() == "STREAMS" }) else {
                return []
            }
            let rest = count - streams - 1
            return rest >= 2 ? Array((streams + 1)...(streams + rest / 2)) : []
        case .subcommand(let rules, let otherwise):
            guard count > 1 else { return [] }
            return keyPositions(rules[text(1).uppercased()] ?? otherwise)
        }
    }

    /// The rule after following subcommands (`FUNCTION LOAD` → every primary).
    func resolve(_ rule: KeyRule) -> KeyRule {
        if case .subcommand(let rules, let otherwise) = rule {
            guard count > 1 else { return otherwise }
            return resolve(rules[text(1).uppercased()] ?? otherwise)
        }
        return rule
    }
}

/// Where a command goes in a cluster.
enum ClusterRoute: Sendable, Hashable {
    /// The primary that serves this slot.
    case slot(Int)
    /// Any primary (a command without keys).
    case anyPrimary
    /// Every primary, one after another (`FUNCTION LOAD`, `SCRIPT LOAD`, `FLUSHALL`).
    case everyPrimary
}

extension ClusterRoute {
    /// The route for the keys at `positions`; a typed error when they hash to different slots.
    static func forKeys(_ positions: [Int], of arguments: EncodedArguments, command: String) throws(RedisError)
        -> ClusterRoute
    {
        guard let first = positions.first else { return .anyPrimary }
        let slot = HashSlot.of(arguments[first])
        for position in positions.dropFirst() where HashSlot.of(arguments[position]) != slot {
            throw RedisError(
                .crossSlot,
                "the keys of \(command) hash to different cluster slots (give them one hash tag); it was not sent",
                command: command)
        }
        return .slot(slot)
    }
}
