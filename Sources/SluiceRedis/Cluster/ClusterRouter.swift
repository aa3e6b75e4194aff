import Logging

/// Sends commands to a Redis Cluster: each to the primary that serves the slot of its keys.
///
/// - The slot map comes from `CLUSTER SHARDS` (`CLUSTER SLOTS` on servers without it), asked of any known
///   node, and is asked again after a `MOVED`, a failed connection or a `CLUSTERDOWN`.
/// - `MOVED` records the slot's new primary at once and sends the command there; `ASK` sends `ASKING` and the
///   command, back to back on the target's connection, once.
/// - `TRYAGAIN`, `CLUSTERDOWN`, `LOADING` and `MASTERDOWN` are retried with a short backoff until the
///   command's deadline (``RedisConfiguration/commandTimeout``); then the command fails with
///   ``RedisError/Code/unavailable``, which callers treat as an outage.
/// - A command that could not be sent because its node's connection failed is sent again only when the slot
///   map, asked again, names another primary (a fail-over): a command that may have run is never repeated.
/// - A command whose keys hash to different slots fails with ``RedisError/Code/crossSlot`` before it is sent.
final class ClusterRouter: Sendable {
    private struct State {
        var topology = ClusterTopology()
        var links: [NodeAddress: NodeLink] = [:]
        var refresh: Task<Void, Never>?
        var lastRefresh: ContinuousClock.Instant?
        /// Rules learned from `COMMAND INFO` for commands the table does not know.
        var learnedRules: [String: KeyRule] = [:]
        var closed = false
    }

    let template: RedisConfiguration
    private let poolSize: Int
    /// The connection the client was given: asked for the slot map when no known node answers.
    private let seed: RedisConnection
    private let seedHost: String
    private let state = SluiceMutex(State())

    /// Redirects one command may follow before it fails (a slot moving back and forth, a confused cluster).
    static let maximumRedirects = 16
    /// How long two slot-map refreshes are apart at least.
    static let refreshInterval: Duration = .milliseconds(100)

    init(seed: RedisConnection, configuration: RedisConfiguration, poolSize: Int) {
        self.seed = seed
        self.template = configuration
        self.poolSize = poolSize
        if case .tcp(let host, _) = configuration.endpoint {
            seedHost = host
        } else {
            seedHost = "127.0.0.1"
        }
    }

    /// Reads the slot map from the seed connection; throws when it cannot be read.
    func start() async throws(RedisError) {
        let topology = try await Self.readTopology(from: seed, askedHost: seedHost)
        state.withLock { state in
            state.topology = topology
            state.lastRefresh = .now
        }
    }

    func close() {
        let links = state.withLock { state in
            state.closed = true
            defer { state.links = [:] }
            return Array(state.links.values)
        }
        links.forEach { $0.close() }
    }

    // MARK: Sending

    func send(_ command: RedisCommand) async throws(RedisError) -> RedisValue {
        let deadline = ContinuousClock.now + template.commandTimeout
        switch try await route(of: command) {
        case .everyPrimary:
            return try await sendToEveryPrimary(command).first ?? .null
        case .slot(let slot):
            return try await send(command, slot: slot, deadline: deadline)
        case .anyPrimary:
            return try await send(command, slot: nil, deadline: deadline)
        }
    }

    /// Sends `command` to every primary (concurrently) and returns their replies in the slot map's order.
    /// Fails when any primary fails or refuses it, except that a library missing from some primaries does not
    /// fail `FUNCTION DELETE`.
    func sendToEveryPrimary(_ command: RedisCommand) async throws(RedisError) -> [RedisValue] {
        if state.withLock({ $0.topology.primaries.isEmpty }) { await refreshTopology(minimumAge: .zero) }
        let links = try state.withLock { state throws(RedisError) -> [NodeLink] in
            try state.topology.primaries.map { address throws(RedisError) in try link(address, in: &state) }
        }
        guard !links.isEmpty else {
            throw RedisError(.unavailable, "no primary of the cluster is known", command: command.name)
        }
        // Replies come back in any order; they are put in the primaries' order by index, without subscripting a
        // preallocated array (a release build trapped there on the first FUNCTION LOAD of a fresh cluster).
        let indexed = await withTaskGroup(of: (Int, Result<RedisValue, RedisError>).self) { group in
            for (index, link) in links.enumerated() {
                group.addTask {
                    (
                        index,
                        await Self.outcome { () async throws(RedisError) in try await link.connection.send(command) }
                    )
                }
            }
            var collected: [(Int, Result<RedisValue, RedisError>)] = []
            for await reply in group { collected.append(reply) }
            return collected
        }
        let results = indexed.sorted { $0.0 < $1.0 }.map(\.1)
        let tolerateMissingLibrary = command.name.uppercased() == "FUNCTION"
        var values: [RedisValue] = []
        var firstError: RedisError?
        var anySuccess = false
        for result in results {
            switch result {
            case .success(let value):
                values.append(value)
                anySuccess = true
            case .failure(let error):
                if error.isConnectionFailure { scheduleRefresh() }
                if tolerateMissingLibrary, error.code == .server, error.message.contains("Library not found") {
                    values.append(.error(error.message))
                } else if firstError == nil {
                    firstError = error
                }
            }
        }
        if let firstError { throw firstError }
        if !anySuccess, case .error(let message) = values.first {
            throw RedisError(.server, message, command: command.name)
        }
        return values
    }

    /// Sends commands that may belong to different primaries: each primary gets its share back to back, all
    /// primaries at once; replies come back in order (error replies in place). A command without keys goes
    /// with the first command that has keys (so `MULTI` … `EXEC` stay with their keys). A command that must
    /// reach every primary makes the pipeline run one command after another.
    func pipeline(_ commands: [RedisCommand]) async throws(RedisError) -> [RedisValue] {
        guard !commands.isEmpty else { return [] }
        let deadline = ContinuousClock.now + template.commandTimeout
        var routes: [ClusterRoute] = []
        routes.reserveCapacity(commands.count)
        for command in commands { routes.append(try await route(of: command)) }
        if routes.contains(.everyPrimary) {
            var replies: [RedisValue] = []
            for command in commands {
                do {
                    replies.append(try await send(command))
                } catch  where error.code == .server {
                    replies.append(.error(error.message))
                }
            }
            return replies
        }
        let firstSlot = routes.lazy.compactMap { route -> Int? in
            if case .slot(let slot) = route { return slot }
            return nil
        }.first
        let slots: [Int?] = routes.map { route in
            if case .slot(let slot) = route { return slot }
            return firstSlot
        }
        // Group by node, keeping each group in the caller's order.
        var groups: [(link: NodeLink, indices: [Int])] = []
        for (index, slot) in slots.enumerated() {
            let link = try await self.link(forSlot: slot, deadline: deadline)
            if let group = groups.firstIndex(where: { $0.link === link }) {
                groups[group].indices.append(index)
            } else {
                groups.append((link, [index]))
            }
        }
        let sent = await withTaskGroup(of: (Int, Result<[RedisValue], RedisError>).self) { group in
            for (number, entry) in groups.enumerated() {
                let batch = entry.indices.map { commands[$0] }
                let link = entry.link
                group.addTask {
                    do throws(RedisError) {
                        return (number, .success(try await link.connection.pipeline(batch)))
                    } catch {
                        return (number, .failure(error))
                    }
                }
            }
            var all = [Result<[RedisValue], RedisError>](repeating: .success([]), count: groups.count)
            for await (number, result) in group { all[number] = result }
            return all
        }
        var replies = [RedisValue](repeating: .null, count: commands.count)
        for (number, result) in sent.enumerated() {
            switch result {
            case .success(let values):
                for (position, index) in groups[number].indices.enumerated() { replies[index] = values[position] }
            case .failure(let error):
                if error.isConnectionFailure { scheduleRefresh() }
                throw error
            }
        }
        // Redirected or refused for now: each again on its own, following the cluster.
        for index in replies.indices {
            guard case .error(let message) = replies[index], Self.redirection(message) != nil else { continue }
            do {
                replies[index] = try await send(
                    commands[index], slot: slots[index], deadline: deadline,
                    first: RedisError(.server, message, command: commands[index].name))
            } catch  where error.code == .server {
                replies[index] = .error(error.message)
            }
        }
        return replies
    }

    /// `body`'s reply or its error, as a value.
    private static func outcome(
        _ body: () async throws(RedisError) -> RedisValue
    ) async -> Result<RedisValue, RedisError> {
        do {
            return .success(try await body())
        } catch {
            return .failure(error)
        }
    }

    /// A pool of dedicated connections to the primary that serves `key` (any primary without a key).
    func dedicatedPool(routingKey key: RedisArgument?) async throws(RedisError) -> DedicatedPool {
        let slot = key.map { HashSlot.of($0.bytes) }
        let deadline = ContinuousClock.now + template.commandTimeout
        return try await link(forSlot: slot, deadline: deadline).dedicated
    }

    /// The connection of the primary that serves `slot` (any primary for `nil`).
    func connection(forSlot slot: Int?) async throws(RedisError) -> RedisConnection {
        try await link(forSlot: slot, deadline: ContinuousClock.now + template.commandTimeout).connection
    }

    /// Notes a redirect seen outside the router (by a dedicated connection): the slot map is read again.
    func noteRedirect(_ error: RedisError) {
        guard error.code == .server, let redirection = Self.redirection(error.message) else { return }
        if case .moved(let slot, let address) = redirection {
            state.withLock { $0.topology.assign(slot: slot, to: address) }
        }
        scheduleRefresh()
    }

    /// The shared connection of every primary, in the slot map's order.
    func primaryConnections() async throws(RedisError) -> [RedisConnection] {
        if state.withLock({ $0.topology.primaries.isEmpty }) { await refreshTopology(minimumAge: .zero) }
        return try state.withLock { state throws(RedisError) -> [RedisConnection] in
            try state.topology.primaries.map { address throws(RedisError) in try link(address, in: &state).connection }
        }
    }

    /// The addresses of the primaries, in the slot map's order (for status output and scans).
    var primaryAddresses: [String] { state.withLock { $0.topology.primaries.map(\.description) } }

    // MARK: One command, following the cluster

    private enum Redirection {
        case moved(slot: Int, to: NodeAddress)
        case ask(NodeAddress)
        case retryLater(String)
    }

    private static func redirection(_ message: String) -> Redirection? {
        let parts = message.split(separator: " ", maxSplits: 3)
        guard let word = parts.first else { return nil }
        switch word {
        case "MOVED", "ASK":
            guard parts.count >= 3, let slot = Int(parts[1]), (0..<HashSlot.count).contains(slot),
                let address = NodeAddress(parts[2])
            else { return nil }
            return word == "MOVED" ? .moved(slot: slot, to: address) : .ask(address)
        case "TRYAGAIN", "CLUSTERDOWN", "LOADING", "MASTERDOWN":
            return .retryLater(String(word))
        default:
            return nil
        }
    }

    private func send(
        _ command: RedisCommand, slot: Int?, deadline: ContinuousClock.Instant, first: RedisError? = nil
    ) async throws(RedisError) -> RedisValue {
        var redirects = 0
        var retries = 0
        var askTarget: NodeAddress?
        var pending = first
        while true {
            var target: NodeLink?
            if let error = pending {
                pending = nil
                try await handle(
                    error, command: command, slot: slot, target: nil, deadline: deadline, redirects: &redirects,
                    retries: &retries, askTarget: &askTarget)
                continue
            }
            do throws(RedisError) {
                if let address = askTarget {
                    askTarget = nil
                    let link = try state.withLock { state throws(RedisError) in try self.link(address, in: &state) }
                    target = link
                    let replies = try await link.connection.pipeline([RedisCommand("ASKING"), command])
                    if case .error(let message) = replies[1] {
                        throw RedisError(.server, message, command: command.name)
                    }
                    return replies[1]
                }
                let link = try await self.link(forSlot: slot, deadline: deadline)
                target = link
                return try await link.connection.send(command)
            } catch {
                try await handle(
                    error, command: command, slot: slot, target: target, deadline: deadline, redirects: &redirects,
                    retries: &retries, askTarget: &askTarget)
            }
        }
    }

    /// Decides what to do after `error`: returns to try again (after a pause when the cluster asked for one),
    /// or throws.
    private func handle(
        _ error: RedisError, command: RedisCommand, slot: Int?, target: NodeLink?, deadline: ContinuousClock.Instant,
        redirects: inout Int, retries: inout Int, askTarget: inout NodeAddress?
    ) async throws(RedisError) {
        if error.code == .server, let redirection = Self.redirection(error.message) {
            switch redirection {
            case .moved(let movedSlot, let address):
                redirects += 1
                guard redirects <= Self.maximumRedirects else { throw error }
                try Self.checkDeadline(deadline, command: command, after: error)
                state.withLock { $0.topology.assign(slot: movedSlot, to: address) }
                scheduleRefresh()
            case .ask(let address):
                redirects += 1
                guard redirects <= Self.maximumRedirects else { throw error }
                try Self.checkDeadline(deadline, command: command, after: error)
                askTarget = address
            case .retryLater(let word):
                if word == "CLUSTERDOWN" || word == "MASTERDOWN" { scheduleRefresh() }
                try await pause(retries: &retries, deadline: deadline) { () -> RedisError in
                    RedisError(
                        .unavailable, "the cluster could not serve the command before its deadline: \(error.message)",
                        command: command.name)
                }
            }
            return
        }
        guard error.code == .connect || error.code == .unavailable, let target, !isClosed else {
            if error.isConnectionFailure { scheduleRefresh() }
            throw error
        }
        // Nothing was sent: when the slot map, read again, names another primary (a fail-over), go there.
        await refreshTopology(minimumAge: Self.refreshInterval, avoiding: target.address, until: deadline)
        let now = state.withLock { state -> NodeAddress? in
            slot.flatMap { state.topology.primary(forSlot: $0) } ?? state.topology.primaries.first
        }
        guard let now, now != target.address, ContinuousClock.now < deadline else { throw error }
    }

    private var isClosed: Bool { state.withLock { $0.closed } }

    /// A redirect past the deadline ends the command: each attempt is bounded, but a chain of them must be too.
    private static func checkDeadline(
        _ deadline: ContinuousClock.Instant, command: RedisCommand, after error: RedisError
    ) throws(RedisError) {
        guard ContinuousClock.now < deadline else {
            throw RedisError(
                .timeout, "redirected past the command's deadline: \(error.message)", command: command.name)
        }
    }

    /// Sleeps before the next try: 5 ms, doubling up to 100 ms, never past the deadline.
    private func pause(
        retries: inout Int, deadline: ContinuousClock.Instant, giveUp: () -> RedisError
    ) async throws(RedisError) {
        let delay =
            Duration.milliseconds(5 << min(retries, 5)) > .milliseconds(100)
            ? Duration.milliseconds(100) : Duration.milliseconds(5 << min(retries, 5))
        retries += 1
        guard ContinuousClock.now + delay < deadline else { throw giveUp() }
        do {
            try await Task.sleep(for: delay)
        } catch {
            throw RedisError(.timeout, "cancelled while waiting for the cluster")
        }
    }

    /// The link to the primary that serves `slot` (any primary for `nil`). When no node serves the slot, the
    /// slot map is read again until the deadline.
    private func link(forSlot slot: Int?, deadline: ContinuousClock.Instant) async throws(RedisError) -> NodeLink {
        var retries = 0
        while true {
            let found = try state.withLock { state throws(RedisError) -> NodeLink? in
                if state.closed { throw RedisError(.closed, "the client was closed") }
                let address: NodeAddress?
                if let slot {
                    address = state.topology.primary(forSlot: slot)
                } else {
                    address =
                        state.topology.primaries.first { state.links[$0]?.connection.isConnected == true }
                        ?? state.topology.primaries.first
                }
                guard let address else { return nil }
                return try self.link(address, in: &state)
            }
            if let found { return found }
            await refreshTopology(minimumAge: Self.refreshInterval, until: deadline)
            try await pause(retries: &retries, deadline: deadline) { () -> RedisError in
                RedisError(
                    .unavailable, slot.map { "no node of the cluster serves slot \($0)" } ?? "no primary is known")
            }
        }
    }

    /// The link to `address`, opened when new. Called with the state locked.
    private func link(_ address: NodeAddress, in state: inout State) throws(RedisError) -> NodeLink {
        if let link = state.links[address] { return link }
        if state.closed { throw RedisError(.closed, "the client was closed") }
        let link = try NodeLink(address: address, template: template, poolSize: poolSize)
        state.links[address] = link
        return link
    }

    // MARK: Routing

    /// Where `command` goes, from its keys.
    func route(of command: RedisCommand) async throws(RedisError) -> ClusterRoute {
        var rule = KeyRule.rule(for: command.name)
        if case .none = rule { return .anyPrimary }
        guard let arguments = EncodedArguments(command.encoded) else { return .anyPrimary }
        if case .askServer = rule { rule = try await learnedRule(for: command.name) }
        let resolved = arguments.resolve(rule)
        if case .everyPrimary = resolved { return .everyPrimary }
        if let positions = arguments.keyPositions(resolved) {
            return try ClusterRoute.forKeys(positions, of: arguments, command: command.name)
        }
        // The keys move with the arguments: the server says where they are.
        let keys = try await serverKeys(arguments)
        guard let first = keys.first else { return .anyPrimary }
        let slot = HashSlot.of(first)
        if keys.contains(where: { HashSlot.of($0) != slot }) {
            throw RedisError(
                .crossSlot,
                "the keys of \(command.name) hash to different cluster slots (give them one hash tag); it was not sent",
                command: command.name)
        }
        return .slot(slot)
    }

    /// The key rule of a command the table does not know, from `COMMAND INFO` (asked once per name).
    private func learnedRule(for name: String) async throws(RedisError) -> KeyRule {
        let upper = name.uppercased()
        if let known = state.withLock({ $0.learnedRules[upper] }) { return known }
        let deadline = ContinuousClock.now + template.commandTimeout
        let connection = try await link(forSlot: nil, deadline: deadline).connection
        let rule: KeyRule
        do {
            let reply = try await connection.send(RedisCommand("COMMAND", "INFO", RedisArgument(name)))
            rule = Self.rule(fromCommandInfo: reply)
        } catch  where error.code == .server {
            rule = .none
        }
        state.withLock { $0.learnedRules[upper] = rule }
        return rule
    }

    /// `COMMAND INFO`: `[[name, arity, flags, first key, last key, step, …]]`.
    static func rule(fromCommandInfo reply: RedisValue) -> KeyRule {
        guard let info = reply.array?.first?.array, info.count >= 6 else { return .none }
        let flags = (info[2].array ?? []).compactMap(\.string)
        if flags.contains("movablekeys") { return .movable }
        guard let first = info[3].integer, let last = info[4].integer, let step = info[5].integer, first > 0 else {
            return .none
        }
        return .positions(first: Int(first), last: Int(last), step: Int(max(1, step)))
    }

    /// `COMMAND GETKEYS` for a command whose keys move with its arguments.
    private func serverKeys(_ arguments: EncodedArguments) async throws(RedisError) -> [[UInt8]] {
        let deadline = ContinuousClock.now + template.commandTimeout
        let connection = try await link(forSlot: nil, deadline: deadline).connection
        let all = (0..<arguments.count).map { RedisArgument(bytes: Array(arguments[$0])) }
        do {
            let reply = try await connection.send(RedisCommand("COMMAND", ["GETKEYS"] + all))
            return (reply.array ?? []).compactMap(\.bytes)
        } catch  where error.code == .server {
            return []
        }
    }

    // MARK: The slot map

    /// Reads the slot map again in the background, unless that was done a moment ago.
    func scheduleRefresh() {
        Task { await self.refreshTopology(minimumAge: Self.refreshInterval) }
    }

    /// Reads the slot map again from any node that answers, trying `avoiding` (a node that just failed) last;
    /// callers at the same time share one refresh. Does nothing when the last one ended less than `minimumAge`
    /// ago.
    /// `until` bounds the wait (the refresh itself goes on): a node that stopped answering must not hold a command
    /// past its deadline.
    func refreshTopology(
        minimumAge: Duration, avoiding: NodeAddress? = nil, until deadline: ContinuousClock.Instant? = nil
    ) async {
        let task = state.withLock { state -> Task<Void, Never>? in
            if state.closed { return nil }
            if let running = state.refresh { return running }
            if let last = state.lastRefresh, ContinuousClock.now - last < minimumAge { return nil }
            let known = state.topology.primaries + state.topology.replicas
            let candidates = known.filter { $0 != avoiding } + known.filter { $0 == avoiding }
            let task = Task { await self.readTopology(candidates: candidates) }
            state.refresh = task
            return task
        }
        guard let task else { return }
        guard let deadline else { return await task.value }
        let first = FirstOf()
        let refreshed = Task {
            await task.value
            first.fire()
        }
        let timer = Task {
            try? await Task.sleep(until: deadline, clock: .continuous)
            first.fire()
        }
        await withUnsafeContinuation { first.wait($0) }
        timer.cancel()
        _ = refreshed
    }

    private func readTopology(candidates: [NodeAddress]) async {
        var found: ClusterTopology?
        for address in candidates {
            guard let link = try? state.withLock({ state throws(RedisError) in try self.link(address, in: &state) })
            else { continue }
            if let topology = try? await Self.readTopology(from: link.connection, askedHost: address.host),
                topology.servedSlots > 0
            {
                found = topology
                break
            }
        }
        if found == nil, let topology = try? await Self.readTopology(from: seed, askedHost: seedHost),
            topology.servedSlots > 0
        {
            found = topology
        }
        let previous = state.withLock { state in
            let previous = state.topology.primaries
            if let found { state.topology = found }
            state.lastRefresh = .now
            state.refresh = nil
            return previous
        }
        let observability = template.observability
        if let found, !previous.isEmpty, Set(previous) != Set(found.primaries) {
            observability.topologyChanges.increment()
            observability.logger.notice(
                "Redis Cluster slot map names other primaries (a fail-over or resharding)",
                metadata: [
                    "redis.primaries": "\(found.primaries.map { "\($0.host):\($0.port)" }.joined(separator: ","))",
                    "redis.previous_primaries": "\(previous.count)",
                ])
        } else if found == nil {
            observability.logger.warning("Redis Cluster slot map could not be read from any node")
        }
    }

    private static func readTopology(
        from connection: RedisConnection, askedHost: String
    ) async throws(RedisError) -> ClusterTopology {
        do {
            let reply = try await connection.send(RedisCommand("CLUSTER", "SHARDS"))
            if let topology = ClusterTopology.fromShards(reply, askedHost: askedHost) { return topology }
        } catch  where error.code == .server {
            // An older server: CLUSTER SLOTS below.
        }
        let reply = try await connection.send(RedisCommand("CLUSTER", "SLOTS"))
        guard let topology = ClusterTopology.fromSlots(reply, askedHost: askedHost) else {
            throw RedisError(.unexpectedReply, "CLUSTER SLOTS replied unexpectedly", command: "CLUSTER")
        }
        return topology
    }
}

/// Resumes a waiter once, when the first of several events fires (before or after it starts waiting).
private final class FirstOf: Sendable {
    private struct State {
        var waiter: UnsafeContinuation<Void, Never>?
        var fired = false
    }
    private let state = SluiceMutex(State())

    func wait(_ continuation: UnsafeContinuation<Void, Never>) {
        let fired = state.withLock { state -> Bool in
            if state.fired { return true }
            state.waiter = continuation
            return false
        }
        if fired { continuation.resume() }
    }

    func fire() {
        state.withLock { state -> UnsafeContinuation<Void, Never>? in
            state.fired = true
            defer { state.waiter = nil }
            return state.waiter
        }?.resume()
    }
}
