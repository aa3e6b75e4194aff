import Foundation
import SluiceRedis

/// Every Lua script of `lua/`, joined into one Redis function library named after its version.
///
/// Each script stays a file of its own in `lua/` (an entry point: `decide`, `settle`, `call-admit`,
/// …). The join starts with the shared modules of `lua/lib/` (the state format, the reconciler's
/// ceiling, …): each file returns a table, stored as `lib.<name>`, which the entries read when the
/// library loads. Then it wraps every entry file in a `do … end` block that stores its entry
/// function in one table, so that composite entry points (`call-admit`, `call-finish`) call the
/// others in the same atomic script, and registers each entry as the function
/// `sluice_<entry>_<version>`. Loaded as a library, a script keeps what it parsed (quota specs,
/// plans) and its scratch tables across calls.
///
/// The library is named `sluice_<version>` (the first 12 hex digits of its SHA-1), so fleets running
/// different versions of Sluice never replace each other's code. Whether a server runs functions is
/// decided once per client: a server without `FCALL` (Redis 6) or whose ACL refuses `FUNCTION LOAD`
/// gets the same code through `EVALSHA` — the whole library with a last line that runs the entry.
final class ScriptLibrary: Sendable {
    /// `sluice_<version>`.
    let name: String
    let version: String
    /// The text `FUNCTION LOAD` takes.
    let functionSource: String
    private let entries: [String: Entry]
    /// The library's body, which the `EVALSHA` form of each entry starts with.
    private let body: String
    /// The `EVALSHA` forms made so far (each costs a SHA-1 of the whole library: made only when needed).
    private let evalScripts = SluiceMutex<[String: RedisScript]>([:])

    struct Entry: Sendable {
        let function: String
        let entry: String
    }

    static let shared = ScriptLibrary(modules: LuaScripts.modules, LuaScripts.all)

    init(modules: [RedisScript], _ scripts: [RedisScript]) {
        var body = "local sluice, lib = {}, {}\n"
        for module in modules {
            body += "-- lua/\(module.name).lua\n" + Self.libraryModule(module) + "\n"
        }
        for script in scripts {
            body += "do -- lua/\(script.name).lua\n" + Self.module(script) + "\nend\n"
        }
        let version = String(RedisScript(name: "library", source: body).sha1.prefix(12))
        self.version = version
        self.name = "sluice_" + version
        var registrations = ""
        var entries: [String: Entry] = [:]
        for script in scripts {
            let entry = Self.entryName(script.name)
            let function = "sluice_\(entry)_\(version)"
            registrations += "redis.register_function('\(function)', sluice['\(entry)'])\n"
            entries[script.name] = Entry(function: function, entry: entry)
        }
        self.functionSource = "#!lua name=\(name)\n" + body + registrations
        self.entries = entries
        self.body = body
    }

    /// The library as one script that runs `entry` (for servers without functions).
    private func evalScript(_ script: RedisScript, _ entry: Entry) -> RedisScript {
        if let made = evalScripts.withLock({ $0[entry.entry] }) { return made }
        let made = RedisScript(name: script.name, source: body + "return sluice['\(entry.entry)'](KEYS, ARGV)\n")
        evalScripts.withLock { $0[entry.entry] = made }
        return made
    }

    /// `call-admit` -> `call_admit`.
    static func entryName(_ scriptName: String) -> String {
        String(scriptName.map { $0 == "-" ? "_" : $0 })
    }

    /// One shared module of `lua/lib/` as a part of the library: the file, which ends by returning its table, runs
    /// as a function whose result is stored as `lib.<name>`.
    static func libraryModule(_ module: RedisScript) -> String {
        let name = module.name.split(separator: "/").last.map(String.init) ?? module.name
        guard module.source.contains("\nreturn ") else {
            preconditionFailure("lua/\(module.name).lua returns no table")
        }
        return "lib['\(name)'] = (function()\n" + module.source + "\nend)()"
    }

    /// One file as a block of the library: a file that defines `local function NAME(KEYS, ARGV)` and
    /// ends by registering it (`if redis.register_function then …`) stores that function; any other
    /// file is a script body, wrapped in a function of `KEYS` and `ARGV`.
    static func module(_ script: RedisScript) -> String {
        let entry = entryName(script.name)
        let source = script.source
        if let start = source.range(of: "\nif redis.register_function then") {
            let tail = source[start.upperBound...]
            guard let call = tail.range(of: "return "), let open = tail[call.upperBound...].firstIndex(of: "(") else {
                preconditionFailure("lua/\(script.name).lua registers no function")
            }
            let function = tail[call.upperBound..<open]
            return String(source[..<start.lowerBound]) + "\nsluice['\(entry)'] = \(function)"
        }
        return "sluice['\(entry)'] = function(KEYS, ARGV)\n" + source + "\nend"
    }

    /// How one client runs scripts, decided on its first script.
    enum Mode: Sendable {
        case functions, eval
    }

    /// The clients that run scripts through `EVALSHA`, by identity; weak, so that a client allocated later at a
    /// freed one's address does not inherit its mode.
    private static let evalClients = SluiceMutex<[ObjectIdentifier: WeakClient]>([:])

    private final class WeakClient: Sendable {
        weak let client: RedisClient?
        init(_ client: RedisClient) { self.client = client }
    }

    private static func mode(of client: RedisClient) -> Mode {
        evalClients.withLock { $0[ObjectIdentifier(client)]?.client === client } ? .eval : .functions
    }

    private static func useEval(for client: RedisClient) {
        evalClients.withLock { clients in
            clients = clients.filter { $0.value.client != nil }
            clients[ObjectIdentifier(client)] = WeakClient(client)
        }
    }

    /// Runs `script`'s entry: `FCALL`, loading the library when the server lacks it (after a restart
    /// without persistence, a `FUNCTION FLUSH`, on a new node), or `EVALSHA` where functions are not
    /// to be had.
    func call(
        _ client: RedisClient, _ script: RedisScript, keys: [RedisArgument], arguments: [RedisArgument]
    ) async throws(RedisError) -> RedisValue {
        guard let entry = entries[script.name] else {
            preconditionFailure("\(script.name) is not part of the library")
        }
        if Self.mode(of: client) == .eval {
            return try await client.evalScript(evalScript(script, entry), keys: keys, arguments: arguments)
        }
        let command = RedisCommand(
            "FCALL", [RedisArgument(entry.function), RedisArgument(keys.count)] + keys + arguments)
        do {
            return try await client.send(command)
        } catch  where error.code == .server && error.message.contains("Function not found") {
            do {
                try await load(on: client)
            } catch  where error.code == .server {
                // An ACL without FUNCTION (NOPERM), or a server that cannot load it: EVALSHA from now on.
                Self.useEval(for: client)
                return try await client.evalScript(evalScript(script, entry), keys: keys, arguments: arguments)
            } catch  where error.isConnectionFailure {
                // On a cluster, another primary may be down while this call's primary took the library: the call
                // below finds out (and fails as it must when the library did not arrive).
            }
            return try await client.send(command)
        } catch  where error.code == .server && Self.lacksFunctions(error) {
            Self.useEval(for: client)
            return try await client.evalScript(evalScript(script, entry), keys: keys, arguments: arguments)
        }
    }

    private static let loads = SluiceMutex<[ObjectIdentifier: Task<Void, any Error>]>([:])

    /// Loads the library (`FUNCTION LOAD REPLACE`), once at a time per client: when a server lost it (a
    /// restart), the callers that find it missing together wait for one load instead of sending one each.
    /// On a Redis Cluster the load reaches every primary (the client sends `FUNCTION LOAD` to each, and
    /// replicas copy it); a primary that appears later without it (a new node after resharding, a restarted
    /// node) answers the next call with "Function not found", and the load runs again.
    func load(on client: RedisClient) async throws(RedisError) {
        let id = ObjectIdentifier(client)
        let source = functionSource
        let load = Self.loads.withLock { loads in
            if let running = loads[id] { return running }
            let task = Task<Void, any Error> {
                defer { _ = Self.loads.withLock { $0.removeValue(forKey: id) } }
                _ = try await client.send(RedisCommand("FUNCTION", "LOAD", "REPLACE", RedisArgument(source)))
            }
            loads[id] = task
            return task
        }
        do {
            try await load.value
        } catch let error as RedisError {
            throw error
        } catch {
            throw RedisError(.unexpectedReply, "FUNCTION LOAD failed: \(error)", command: "FUNCTION")
        }
    }

    /// A server without functions, or a user whose ACL refuses them.
    private static func lacksFunctions(_ error: RedisError) -> Bool {
        let message = error.message.lowercased()
        return message.contains("unknown command") || error.serverPrefix == "NOPERM"
    }

    /// Deletes the libraries of other Sluice versions from the server (every primary of a cluster); returns their
    /// names.
    func pruneOthers(on client: RedisClient) async throws(RedisError) -> [String] {
        let replies = try await client.sendToEveryPrimary(RedisCommand("FUNCTION", "LIST", "LIBRARYNAME", "sluice_*"))
        var others: Set<String> = []
        for library in replies.flatMap({ $0.array ?? [] }) {
            let fields = library.array ?? []
            var index = 0
            while index + 1 < fields.count {
                if fields[index].string == "library_name", let other = fields[index + 1].string,
                    other != name, other.hasPrefix("sluice_")
                {
                    others.insert(other)
                }
                index += 2
            }
        }
        for other in others.sorted() {
            // On a cluster this reaches every primary; one that lacks the library does not fail it.
            _ = try await client.send(RedisCommand("FUNCTION", "DELETE", RedisArgument(other)))
        }
        return others.sorted()
    }
}

// MARK: Which versions are in use

extension ScriptLibrary {
    /// A library that no worker has run for this long is removed by the heartbeat of a worker of another version.
    static let staleAfter: Duration = .seconds(86_400)
    private static let noteEvery: Duration = .seconds(600)
    private static let lastNoted = SluiceMutex<[String: ContinuousClock.Instant]>([:])

    /// `<namespace>:libraries`, a hash: each library name → when a worker running it last sent a heartbeat
    /// (milliseconds since 1970, by that worker's clock); the key expires a week after its last write.
    static func inUseKey(namespace: String) -> String { namespace + ":libraries" }

    /// Records that a worker of this process runs this library, and removes the libraries no worker has run
    /// for ``staleAfter`` (``pruneStale(on:namespace:)``); at most every ten minutes per process and
    /// namespace (`force` skips that wait). Best effort: a failure only delays both.
    func noteInUse(on client: RedisClient, namespace: String, force: Bool = false) async {
        let now = ContinuousClock.now
        let due = Self.lastNoted.withLock { noted in
            if !force, let last = noted[namespace], now - last < Self.noteEvery { return false }
            noted[namespace] = now
            return true
        }
        guard due else { return }
        let key = RedisArgument(Self.inUseKey(namespace: namespace))
        let milliseconds = Int64((Date().timeIntervalSince1970 * 1000).rounded(.down))
        _ = try? await client.pipeline([
            RedisCommand("HSET", key, RedisArgument(name), RedisArgument(milliseconds)),
            RedisCommand("PEXPIRE", key, RedisArgument(7 * 86_400_000)),
        ])
        _ = try? await pruneStale(on: client, namespace: namespace)
    }

    /// Deletes the libraries of other versions whose last record is older than ``staleAfter``; returns their
    /// names. A library without a record (from a version before the records, or loaded by hand) is left
    /// alone: `sluice scripts prune` removes those. Workers of a pruned version that still run (under another
    /// namespace, say) load it again on their next call.
    func pruneStale(on client: RedisClient, namespace: String) async throws(RedisError) -> [String] {
        let key = RedisArgument(Self.inUseKey(namespace: namespace))
        let fields = try await client.send(RedisCommand("HGETALL", key)).array ?? []
        let now = Int64((Date().timeIntervalSince1970 * 1000).rounded(.down))
        let horizon = now - Int64(Self.staleAfter / .milliseconds(1))
        var stale: [String] = []
        var index = 0
        while index + 1 < fields.count {
            if let library = fields[index].string, library != name, library.hasPrefix("sluice_"),
                let seen = fields[index + 1].string.flatMap({ Int64($0) }), seen < horizon
            {
                stale.append(library)
            }
            index += 2
        }
        for library in stale.sorted() {
            do {
                _ = try await client.send(RedisCommand("FUNCTION", "DELETE", RedisArgument(library)))
            } catch  where error.code == .server && error.message.contains("not found") {
                // Already gone (pruned by hand, or by another worker a moment ago).
            }
            _ = try await client.send(RedisCommand("HDEL", key, RedisArgument(library)))
        }
        return stale.sorted()
    }
}

extension RedisClient {
    /// Runs one of Sluice's scripts through the function library (see ``ScriptLibrary``).
    func run(
        _ script: RedisScript, keys: [RedisArgument] = [], arguments: [RedisArgument] = []
    ) async throws(RedisError) -> RedisValue {
        try await ScriptLibrary.shared.call(self, script, keys: keys, arguments: arguments)
    }
}

/// One entry of the library with its KEYS and ARGV: what one component of Sluice (a queue, a breaker,
/// a lease pool, a quota decision) asks of Redis, so that a composite entry (`call-admit`,
/// `call-finish`) can run several of them in one atomic round trip.
struct ScriptStep: Sendable {
    var script: RedisScript
    var keys: [RedisArgument]
    var arguments: [RedisArgument]
    /// Its name as a composite entry takes it: the script's, or a step the composite implements itself.
    var entry: String

    init(script: RedisScript, keys: [RedisArgument], arguments: [RedisArgument], entry: String? = nil) {
        self.script = script
        self.keys = keys
        self.arguments = arguments
        self.entry = entry ?? ScriptLibrary.entryName(script.name)
    }

    /// Runs `steps` through the composite entry `script`: ARGV[1] lists them as
    /// `<entry>:<keys>:<args>`, then come their KEYS and ARGV one after another.
    static func composite(_ script: RedisScript, _ steps: [ScriptStep]) -> ScriptStep {
        var header = ""
        var keys: [RedisArgument] = []
        var arguments: [RedisArgument] = [""]
        for step in steps {
            if !header.isEmpty { header += " " }
            header += "\(step.entry):\(step.keys.count):\(step.arguments.count)"
            keys += step.keys
            arguments += step.arguments
        }
        arguments[0] = RedisArgument(header)
        return ScriptStep(script: script, keys: keys, arguments: arguments)
    }
}

extension RedisClient {
    /// Runs one step through the function library.
    func run(_ step: ScriptStep) async throws(RedisError) -> RedisValue {
        try await run(step.script, keys: step.keys, arguments: step.arguments)
    }
}

/// Sluice's Redis function library, for operators: which version this build runs, loading it ahead of
/// the first call, and removing the libraries older versions left on a server.
public enum SluiceFunctions {
    /// The library this build of Sluice loads, `sluice_<version>`.
    public static var libraryName: String { ScriptLibrary.shared.name }

    /// Loads this version's library on the server (`FUNCTION LOAD REPLACE`); calls load it when missing anyway.
    public static func load(on client: RedisClient) async throws(RedisError) {
        try await ScriptLibrary.shared.load(on: client)
    }

    /// Deletes every other `sluice_*` library from the server and returns their names. Workers still running an
    /// older version reload theirs on their next call, so prune once the old workers are gone.
    public static func pruneOthers(on client: RedisClient) async throws(RedisError) -> [String] {
        try await ScriptLibrary.shared.pruneOthers(on: client)
    }
}
