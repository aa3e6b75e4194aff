import SluiceRedis

/// One of the Lua scripts of `lua/`, run as a Redis function (`FCALL`).
///
/// Loaded as a function library, a script keeps what it parsed (quota specs, plans) and its
/// scratch tables across calls; run with `EVAL` it would parse every spec on every call, which
/// costs more than all its Redis calls together (Benchmarks/README-quota.md). The library and the
/// function are named after the script's SHA-1, so fleets running different versions of Sluice
/// never replace each other's code. When the server does not know the function (after a restart
/// without persistence, a `FUNCTION FLUSH`, on a new cluster node) it is loaded and the call
/// retried; a server without functions (Redis 6) gets the same script with `EVALSHA`.
struct ScriptFunction: Sendable {
    let script: RedisScript
    let function: String
    let library: String

    /// `placeholder` is the function name the script registers, ending in `_VERSION`.
    init(_ script: RedisScript, placeholder: String) {
        let name = placeholder.replacingSuffix("_VERSION", with: "_" + script.sha1.prefix(12))
        self.script = script
        self.function = name
        self.library = "#!lua name=\(name)\n" + script.source.replacingPlaceholder(placeholder, with: name)
    }

    func call(_ client: RedisClient, keys: [RedisArgument], arguments: [RedisArgument]) async throws(RedisError)
        -> RedisValue
    {
        let command = RedisCommand("FCALL", [RedisArgument(function), RedisArgument(keys.count)] + keys + arguments)
        do {
            return try await client.send(command)
        } catch  where error.code == .server && error.message.contains("Function not found") {
            _ = try await client.send(RedisCommand("FUNCTION", "LOAD", "REPLACE", RedisArgument(library)))
            return try await client.send(command)
        } catch  where error.code == .server && error.message.lowercased().contains("unknown command") {
            return try await client.evalScript(script, keys: keys, arguments: arguments)
        }
    }

    static let decide = ScriptFunction(LuaScripts.decide, placeholder: "sluice_decide_VERSION")
    static let settle = ScriptFunction(LuaScripts.settle, placeholder: "sluice_settle_VERSION")
}

extension String {
    fileprivate func replacingSuffix(_ suffix: String, with replacement: String) -> String {
        hasSuffix(suffix) ? String(dropLast(suffix.count)) + replacement : self + replacement
    }

    fileprivate func replacingPlaceholder(_ placeholder: String, with replacement: String) -> String {
        var out = ""
        var rest = Substring(self)
        while let range = rest.firstRange(of: placeholder) {
            out += rest[..<range.lowerBound] + replacement
            rest = rest[range.upperBound...]
        }
        return out + rest
    }
}
