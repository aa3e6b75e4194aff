import Logging
import SluiceRedis

/// A circuit breaker shared by the fleet, per dependency (a provider, a model, a tool).
///
/// Closed, it counts outcomes over a sliding window; once at least ``Configuration/minimumCalls``
/// calls were seen and ``Configuration/failureRatio`` of them failed, it opens — once, for every
/// worker at the same moment — and refuses calls for ``Configuration/coolDown``. Then it is
/// half-open: at most ``Configuration/probes`` probe calls go through fleet-wide; if they all
/// succeed it closes, if one fails it opens again. Each transition writes one event.
///
/// ```swift
/// let breaker = CircuitBreaker(redis: redis, partition: "openai", name: "tool:search")
/// let permit = try await breaker.permit()          // throws BackpressureError(.breakerOpen) when open
/// do { let r = try await search(); try await breaker.record(permit, success: true); return r }
/// catch { try await breaker.record(permit, success: false); throw error }
/// ```
public struct CircuitBreaker: Sendable {
    /// When the breaker opens and how it recovers.
    public struct Configuration: Sendable, Hashable {
        /// The sliding window over which failures are counted.
        public var window: Duration
        /// The window is kept as this many buckets (its resolution).
        public var buckets: Int
        /// Fewer calls than this in the window never open the breaker.
        public var minimumCalls: Int
        /// The failure ratio (0...1) at which it opens.
        public var failureRatio: Double
        /// How long it stays open before letting probes through.
        public var coolDown: Duration
        /// The most probe calls in flight fleet-wide while half-open; all of them must succeed to close.
        public var probes: Int
        /// A probe that does not report within this time frees its slot.
        public var probeTimeout: Duration

        /// Creates a configuration. The defaults: open at 15% failures over at least 20 calls in 60 s,
        /// cool down for 30 s, then 3 probes.
        public init(
            window: Duration = .seconds(60), buckets: Int = 10, minimumCalls: Int = 20, failureRatio: Double = 0.15,
            coolDown: Duration = .seconds(30), probes: Int = 3, probeTimeout: Duration = .seconds(60)
        ) {
            self.window = max(.milliseconds(10), window)
            self.buckets = min(max(1, buckets), 60)
            self.minimumCalls = max(1, minimumCalls)
            self.failureRatio = min(max(0, failureRatio), 1)
            self.coolDown = max(.milliseconds(1), coolDown)
            self.probes = max(1, probes)
            self.probeTimeout = max(.milliseconds(1), probeTimeout)
        }
    }

    /// The breaker's state.
    public struct State: Sendable, Hashable, CustomStringConvertible {
        private let name: String
        init(_ name: String) { self.name = name }
        /// Calls go through and are counted.
        public static let closed = State("closed")
        /// Calls are refused.
        public static let open = State("open")
        /// A few probe calls go through.
        public static let halfOpen = State("half-open")
        public var description: String { name }
    }

    /// Permission to make one call; hand it back to ``record(_:success:)``.
    public struct Permit: Sendable, Hashable {
        /// The state the breaker was in.
        public let state: State
        /// The probe's id when the call is a half-open probe; 0 otherwise.
        public let probeID: Int64
        /// Whether the call is a probe.
        public var isProbe: Bool { probeID > 0 }
    }

    /// The dependency's name.
    public let name: String
    /// The partition (hash tag) of its key.
    public let partition: String
    /// Its configuration (every worker should use the same one).
    public let configuration: Configuration
    /// The first part of its keys (`<namespace>:{<partition>}:...`), as ``Limiter/Configuration/namespace``.
    public let namespace: String
    /// Where the breaker's transitions are logged (opened: warning; closed again: info).
    public let logger: Logger
    let redis: RedisClient

    /// A breaker for the dependency `name`.
    public init(
        redis: RedisClient, partition: String, name: String, configuration: Configuration = Configuration(),
        namespace: String = "sluice", logger: Logger = .sluiceDisabled
    ) {
        self.redis = redis
        self.logger = logger
        self.namespace = namespace
        self.partition = partition
        self.name = name
        self.configuration = configuration
    }

    private var keys: [RedisArgument] {
        let keys = PartitionKeys(partition: partition, namespace: namespace)
        return [keys.key("breaker", name), keys.events]
    }

    private var keyTTL: Int {
        Self.milliseconds(configuration.window + configuration.coolDown + configuration.probeTimeout) + 3_600_000
    }

    /// Asks to make a call: a permit, or ``BackpressureError/Code/breakerOpen`` with the time until
    /// the breaker may let calls through again.
    public func permit() async throws -> Permit {
        try parsePermit(try await redis.run(permitStep()))
    }

    /// - Parameter ifClosed: a permit only when the breaker is closed (``parsePermitIfClosed(_:)`` reads the reply):
    ///   taken before a retry's backoff, it holds nothing through the pause, unlike a half-open probe.
    func permitStep(ifClosed: Bool = false) -> ScriptStep {
        var arguments: [RedisArgument] = [
            RedisArgument(name), RedisArgument(configuration.probes),
            RedisArgument(Self.milliseconds(configuration.probeTimeout)), RedisArgument(keyTTL),
        ]
        if ifClosed { arguments.append("if-closed") }
        return ScriptStep(script: LuaScripts.breakerAllow, keys: keys, arguments: arguments)
    }

    /// The reply of ``permitStep(ifClosed:)`` with `ifClosed`: the closed breaker's permit, or `nil` when the
    /// breaker is not closed (or the step failed) and the permit must be asked for when it is needed.
    func parsePermitIfClosed(_ reply: RedisValue) -> Permit? {
        guard let parts = reply.array, parts.count == 3, parts[0].integer == 1, parts[1].string == "closed" else {
            return nil
        }
        return Permit(state: .closed, probeID: 0)
    }

    /// breaker-allow's reply: a permit, or ``BackpressureError/Code/breakerOpen``.
    func parsePermit(_ reply: RedisValue) throws -> Permit {
        let parts = reply.array ?? []
        guard parts.count == 3 else { throw RedisError(.unexpectedReply, "breaker-allow replied unexpectedly") }
        let state = State(parts[1].string ?? "closed")
        guard parts[0].integer == 1 else {
            let wait = Duration.milliseconds(parts[2].integer ?? 0)
            throw BackpressureError(
                .breakerOpen, "the circuit breaker of \(name) is \(state)", retryAfter: wait)
        }
        return Permit(state: state, probeID: parts[2].integer ?? 0)
    }

    /// Records the outcome of a permitted call; returns the breaker's state afterwards.
    @discardableResult
    public func record(_ permit: Permit, success: Bool) async throws -> State {
        let reply = try await redis.run(recordStep(permit, success: success))
        let state = State(reply.array?.first?.string ?? "closed")
        logTransition(from: permit.state, to: state)
        return state
    }

    /// Logs a change of state this worker's outcome caused (other workers log theirs).
    func logTransition(from before: State, to after: State) {
        guard before != after else { return }
        let metadata: Logger.Metadata = ["sluice.breaker": "\(name)", "sluice.partition": "\(partition)"]
        if after == .open {
            logger.warning(
                "circuit breaker opened: calls to the dependency are refused for the cool-down", metadata: metadata)
        } else if after == .closed {
            logger.info("circuit breaker closed again", metadata: metadata)
        }
    }

    func recordStep(_ permit: Permit, success: Bool) -> ScriptStep {
        ScriptStep(
            script: LuaScripts.breakerRecord, keys: keys,
            arguments: [
                RedisArgument(name), success ? "success" : "failure", RedisArgument(permit.probeID),
                RedisArgument(Self.milliseconds(configuration.window)), RedisArgument(configuration.minimumCalls),
                RedisArgument(String(configuration.failureRatio)),
                RedisArgument(Self.milliseconds(configuration.coolDown)),
                RedisArgument(configuration.probes), RedisArgument(configuration.buckets), RedisArgument(keyTTL),
            ])
    }

    static func milliseconds(_ duration: Duration) -> Int {
        max(1, Int(duration / .milliseconds(1)))
    }
}
