import Synchronization

/// Finds the current primary of a Redis Sentinel setup (``RedisConfiguration/sentinel``): asks the
/// sentinels in turn `SENTINEL get-master-addr-by-name <name>` and answers with the address the
/// first one to answer gives. Starts with the sentinel that answered last, so a dead one costs
/// one refused connection, not one per lookup.
///
/// Every connection of a client (the shared pipelined ones and the pooled dedicated ones) asks
/// the same resolver whenever it (re)connects, so all of them follow a fail-over. Lookups at the
/// same time share one round of questions. The connection then checks with `ROLE` that the server
/// really is a primary (a sentinel may answer with the old address for a moment).
///
/// Redis Sentinel announces a fail-over with `+switch-master` on pub/sub, which the pipelined
/// connections cannot subscribe to; instead, once in use, the resolver asks the sentinels again every
/// ``watchInterval``. When their answer changes, ``generation`` moves on, and each connection to the
/// old primary stops writing, lets the replies already due arrive and reconnects: the old primary
/// keeps accepting writes for some seconds after the switch (until Sentinel turns it into a replica),
/// and those writes would be lost.
///
/// When no sentinel answers, the last primary the sentinels named is used (it is checked with
/// `ROLE` like any other): a primary that works is not given up because its sentinels are down.
/// Before any sentinel ever answered, that fails with ``RedisError/Code/unavailable``; a primary
/// name the sentinels do not know fails with ``RedisError/Code/unknownPrimary``.
final class SentinelResolver: Sendable {
    typealias Endpoint = RedisConfiguration.Endpoint

    private struct State {
        /// One connection per sentinel, opened on first use.
        var connections: [RedisConnection?]
        /// The sentinel that answered last: asked first.
        var preferred = 0
        var lookup: Task<Result<Endpoint, RedisError>, Never>?
        var lastPrimary: Endpoint?
        var watch: Task<Void, Never>?
        var closed = false
    }

    /// How often the sentinels are asked whether the primary changed, once the resolver is in use.
    static let watchInterval: Duration = .seconds(1)

    let settings: RedisConfiguration.Sentinel
    /// How each sentinel is reached: its address, the sentinels' credentials, the client's TLS.
    private let sentinelConfigurations: [RedisConfiguration]
    private let state: SluiceMutex<State>
    private let changes = Atomic<Int>(0)

    /// - Parameter configuration: a configuration whose ``RedisConfiguration/sentinel`` is set.
    init(configuration: RedisConfiguration) {
        guard let settings = configuration.sentinel else {
            preconditionFailure("a SentinelResolver needs RedisConfiguration.sentinel")
        }
        self.settings = settings
        // Each sentinel gets a share of the connect timeout, so that one that does not answer at
        // all leaves time to ask the next within a connection attempt.
        let share = configuration.connectTimeout / max(1, settings.sentinels.count)
        let perSentinel = max(share, .milliseconds(100))
        sentinelConfigurations = settings.sentinels.map { endpoint in
            RedisConfiguration(
                endpoint: endpoint, username: settings.username, password: settings.password, database: 0,
                connectTimeout: perSentinel, commandTimeout: perSentinel,
                reconnectBackoff: .init(initial: .milliseconds(20), maximum: .milliseconds(500)),
                tls: configuration.tls.map { tls in
                    var tls = tls
                    tls.serverName = nil  // the name given is the primary's
                    return tls
                })
        }
        state = SluiceMutex(State(connections: Array(repeating: nil, count: settings.sentinels.count)))
    }

    /// The last primary address the sentinels gave.
    var lastKnownPrimary: Endpoint? { state.withLock { $0.lastPrimary } }

    /// Moves on each time the sentinels name another primary: cheap to read on every loop of a
    /// connection's I/O thread (then ``lastKnownPrimary`` says which).
    var generation: Int { changes.load(ordering: .acquiring) }

    /// Asks the sentinels for the primary's address now.
    func primary() async -> Result<Endpoint, RedisError> {
        let task = state.withLock { state -> Task<Result<Endpoint, RedisError>, Never>? in
            if state.closed { return nil }
            if let running = state.lookup { return running }
            let task = Task { await self.askSentinels() }
            state.lookup = task
            if state.watch == nil { state.watch = watch() }
            return task
        }
        guard let task else { return .failure(RedisError(.closed, "the client was closed")) }
        return await task.value
    }

    func close() {
        let (connections, watch) = state.withLock { state in
            state.closed = true
            defer {
                state.connections = []
                state.watch = nil
            }
            return (state.connections.compactMap { $0 }, state.watch)
        }
        watch?.cancel()
        connections.forEach { $0.close() }
    }

    deinit {
        state.withLock { $0.watch }?.cancel()
    }

    /// Asks the sentinels every ``watchInterval`` until closed (holding the resolver only while asking).
    private func watch() -> Task<Void, Never> {
        Task { [weak self] in
            while true {
                do {
                    try await Task.sleep(for: Self.watchInterval)
                } catch {
                    return
                }
                guard let self else { return }
                _ = await self.primary()
            }
        }
    }

    private func askSentinels() async -> Result<Endpoint, RedisError> {
        let result = await askInTurn()
        return state.withLock { state in
            state.lookup = nil
            switch result {
            case .success(let endpoint):
                if state.lastPrimary != endpoint {
                    state.lastPrimary = endpoint
                    changes.add(1, ordering: .releasing)
                }
                return result
            case .failure(let error) where error.code == .unavailable:
                if let last = state.lastPrimary { return .success(last) }
                return result
            case .failure:
                return result
            }
        }
    }

    private func askInTurn() async -> Result<Endpoint, RedisError> {
        let name = settings.primaryName
        let count = settings.sentinels.count
        guard count > 0 else { return .failure(RedisError(.unavailable, "no sentinel is configured")) }
        let first = state.withLock { $0.preferred }
        var failures: [String] = []
        // Failures that no retry mends (wrong credentials, an untrusted or misnamed certificate), by code.
        var misconfigured: [RedisError.Code: Int] = [:]
        var unknown: [String] = []
        for offset in 0..<count {
            let index = (first + offset) % count
            let address = ConnectionHandshake.describe(settings.sentinels[index])
            do throws(RedisError) {
                let connection = try connection(to: index)
                let reply = try await connection.send(
                    RedisCommand("SENTINEL", "get-master-addr-by-name", RedisArgument(name)))
                if case .null = reply {
                    unknown.append(address)
                    continue
                }
                guard let parts = reply.array, parts.count == 2, let host = parts[0].string,
                    let port = parts[1].string.flatMap({ Int($0) }), (1...65535).contains(port)
                else {
                    failures.append("\(address): unexpected reply to SENTINEL get-master-addr-by-name")
                    continue
                }
                state.withLock { $0.preferred = index }
                return .success(.tcp(host: host, port: port))
            } catch {
                if error.code == .closed { return .failure(error) }
                if error.code == .authentication || error.serverPrefix == "NOAUTH" {
                    misconfigured[.authentication, default: 0] += 1
                } else if [.tlsUntrustedCertificate, .tlsNameMismatch, .tlsConfiguration].contains(error.code) {
                    misconfigured[error.code, default: 0] += 1
                }
                failures.append("\(address): \(error.code): \(error.message)")
            }
        }
        if !unknown.isEmpty {
            return .failure(
                RedisError(
                    .unknownPrimary,
                    "the sentinels \(unknown.joined(separator: ", ")) monitor no primary named '\(name)'"
                        + (failures.isEmpty ? "" : "; others did not answer: " + failures.joined(separator: "; "))))
        }
        if misconfigured[.authentication] == count {
            // Not an outage: the sentinels' credentials (`sentinel-username`/`sentinel-password`) are wrong.
            return .failure(
                RedisError(
                    .authentication,
                    "every sentinel refused the credentials: " + failures.joined(separator: "; ")))
        }
        if let (code, _) = misconfigured.first(where: { $0.value == count }) {
            // Not an outage either: every sentinel failed TLS the same way (its certificate, or the CA given).
            return .failure(RedisError(code, "every sentinel failed TLS: " + failures.joined(separator: "; ")))
        }
        return .failure(
            RedisError(
                .unavailable,
                "no sentinel named the primary '\(name)': " + failures.joined(separator: "; ")))
    }

    private func connection(to index: Int) throws(RedisError) -> RedisConnection {
        try state.withLock { state throws(RedisError) -> RedisConnection in
            if state.closed { throw RedisError(.closed, "the client was closed") }
            if let connection = state.connections[index] { return connection }
            let connection = try RedisConnection(configuration: sentinelConfigurations[index], shared: true)
            state.connections[index] = connection
            return connection
        }
    }
}
