/// The commands a Redis server ran, per command, as `INFO commandstats` reports them
/// (`cmdstat_evalsha:calls=10,usec=200,usec_per_call=20.00,rejected_calls=0,failed_calls=0`; subcommands as
/// `cmdstat_config|resetstat`).
public struct RedisCommandStats: Sendable, Hashable {
    public struct Entry: Sendable, Hashable {
        /// Calls, rejected ones included (a rejected command is a round trip too).
        public var calls: Int
        /// Microseconds the server spent running them.
        public var microseconds: Int
    }

    /// By lowercase command name (`evalsha`, `config|resetstat`).
    public var commands: [String: Entry]

    public init(commands: [String: Entry] = [:]) { self.commands = commands }

    /// Reads the text of `INFO commandstats`; lines it does not understand are skipped.
    public init(info: String) {
        var commands: [String: Entry] = [:]
        for line in info.split(whereSeparator: \.isNewline) {
            guard line.hasPrefix("cmdstat_"), let colon = line.firstIndex(of: ":") else { continue }
            let name = line[line.index(line.startIndex, offsetBy: 8)..<colon].lowercased()
            var fields: [Substring: Int] = [:]
            for pair in line[line.index(after: colon)...].split(separator: ",") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                if parts.count == 2, let value = Int(parts[1]) { fields[parts[0]] = value }
            }
            guard let calls = fields["calls"] else { continue }
            commands[name] = Entry(
                calls: calls + (fields["rejected_calls"] ?? 0), microseconds: fields["usec"] ?? 0)
        }
        self.commands = commands
    }

    /// What ran since `earlier` (a snapshot of the same server).
    public func subtracting(_ earlier: RedisCommandStats) -> RedisCommandStats {
        var difference = commands
        for (name, before) in earlier.commands {
            let after = difference[name] ?? Entry(calls: 0, microseconds: 0)
            difference[name] = Entry(
                calls: max(0, after.calls - before.calls),
                microseconds: max(0, after.microseconds - before.microseconds))
        }
        return RedisCommandStats(commands: difference)
    }

    /// Both together: the statistics of several servers (a cluster's primaries) as one.
    public func adding(_ other: RedisCommandStats) -> RedisCommandStats {
        var sum = commands
        for (name, entry) in other.commands {
            let mine = sum[name] ?? Entry(calls: 0, microseconds: 0)
            sum[name] = Entry(calls: mine.calls + entry.calls, microseconds: mine.microseconds + entry.microseconds)
        }
        return RedisCommandStats(commands: sum)
    }

    /// The commands that run a Lua script: Sluice's decisions and bookkeeping.
    public static let scriptCommands: Set<String> = ["fcall", "fcall_ro", "evalsha", "evalsha_ro", "eval", "eval_ro"]

    /// The commands Sluice's Lua scripts (`lua/`) send with `redis.call`. Redis counts a script's commands in
    /// `INFO commandstats` as well, under their own names, so these names cannot be told apart from the same
    /// commands sent on their own (the `ZREM` that ends an admitted call, say) and are left out of
    /// ``topLevelCalls``. A unit test keeps the set in step with `lua/`.
    public static let scriptInnerCommands: Set<String> = [
        "del", "get", "hdel", "hget", "hgetall", "hincrby", "hkeys", "hlen", "hmget", "hset", "lpush", "ltrim", "mget",
        "pexpire",
        "pttl", "set", "time", "xadd",
        "zadd", "zcard", "zcount", "zincrby", "zrange", "zrangebyscore", "zrem", "zremrangebyscore", "zscore",
    ]

    /// Commands of ``scriptInnerCommands`` that Sluice also sends on their own (reading a configuration hash):
    /// counted as calls. Only the sharded ceiling's sweep sends them from a script, and the storm does not shard.
    static let alsoSentOnTheirOwn: Set<String> = ["hgetall"]

    /// The commands the storm sends to measure (`CONFIG RESETSTAT`, `INFO`): not the guard's.
    static func isMeasurement(_ name: String) -> Bool {
        name == "info" || name == "config" || name.hasPrefix("config|")
    }

    /// Calls of the script commands.
    public var scriptCalls: Int {
        Self.scriptCommands.reduce(0) { $0 + (commands[$1]?.calls ?? 0) }
    }

    /// Microseconds the server spent in the script commands (their own commands included).
    public var scriptMicroseconds: Int {
        Self.scriptCommands.reduce(0) { $0 + (commands[$1]?.microseconds ?? 0) }
    }

    /// Round trips: the script commands and every other command sent on its own, without the storm's measuring and
    /// without the names Sluice's scripts use inside (see ``scriptInnerCommands``).
    public var topLevelCalls: Int {
        commands.reduce(0) { sum, item in
            let (name, entry) = item
            if Self.scriptCommands.contains(name) { return sum + entry.calls }
            if Self.isMeasurement(name) { return sum }
            if Self.scriptInnerCommands.contains(name), !Self.alsoSentOnTheirOwn.contains(name) { return sum }
            return sum + entry.calls
        }
    }
}

/// What the guard asked of Redis during one run, from the server's own statistics.
public struct RedisCost: Sendable, Hashable {
    /// Commands sent (``RedisCommandStats/topLevelCalls``), the storm's own ceiling sampling left out.
    public var calls: Int
    /// Microseconds the server spent running Sluice's scripts (`FCALL`, `EVALSHA`, `EVAL`), the storm's own
    /// sampling left out.
    public var scriptMicroseconds: Double
    /// Requests the provider received in the run.
    public var providerCalls: Int

    public init(calls: Int, scriptMicroseconds: Double, providerCalls: Int) {
        self.calls = calls
        self.scriptMicroseconds = scriptMicroseconds
        self.providerCalls = providerCalls
    }

    public var callsPerProviderCall: Double? {
        providerCalls > 0 ? Double(calls) / Double(providerCalls) : nil
    }

    public var microsecondsPerProviderCall: Double? {
        providerCalls > 0 ? scriptMicroseconds / Double(providerCalls) : nil
    }
}
