import Logging
import SluiceRedis

/// A retry budget shared by the fleet, per scope: over a sliding window, retries may not exceed
/// `ratio × requests + floor`. Record every first attempt with ``recordRequest()``; ask
/// ``allowRetry()`` before each retry. A refused retry is not counted, so the budget refills as
/// new requests arrive.
///
/// This is what stops a retry storm: when a provider falls over, every worker would retry, and the
/// retries would double the load exactly when capacity is lowest.
public struct RetryBudget: Sendable {
    /// How much retrying the fleet may do.
    public struct Configuration: Sendable, Hashable {
        /// Retries per request, e.g. 0.1: one retry for every ten requests.
        public var ratio: Double
        /// Retries allowed per window regardless of traffic (so a quiet scope can still retry).
        public var floor: Int
        /// The sliding window.
        public var window: Duration

        /// Creates a configuration; the defaults are 10% plus 10 per 10 s.
        public init(ratio: Double = 0.1, floor: Int = 10, window: Duration = .seconds(10)) {
            self.ratio = max(0, ratio)
            self.floor = max(0, floor)
            self.window = max(.milliseconds(100), window)
        }
    }

    /// What the budget said.
    public struct Verdict: Sendable, Hashable {
        /// Whether the retry may go ahead.
        public var allowed: Bool
        /// Retries counted in the window (the previous window weighted by its overlap).
        public var retries: Double
        /// Requests counted in the window.
        public var requests: Double
    }

    /// The scope whose retries are counted.
    public let scope: String
    /// The partition (hash tag) of the scope's key.
    public let partition: String
    /// The budget's limits.
    public let configuration: Configuration
    /// The first part of its keys (`<namespace>:{<partition>}:...`), as ``Limiter/Configuration/namespace``.
    public let namespace: String
    /// Where refused retries are logged (debug: one line per refusal).
    public let logger: Logger
    private let redis: RedisClient

    /// A retry budget for `scope`.
    public init(
        redis: RedisClient, partition: String, scope: String, configuration: Configuration = Configuration(),
        namespace: String = "sluice", logger: Logger = .sluiceDisabled
    ) {
        self.redis = redis
        self.logger = logger
        self.namespace = namespace
        self.partition = partition
        self.scope = scope
        self.configuration = configuration
    }

    /// Counts a first attempt.
    @discardableResult
    public func recordRequest() async throws -> Verdict {
        try await run("request")
    }

    /// Asks for one retry; counted only when allowed.
    public func allowRetry() async throws -> Verdict {
        let verdict = try await run("retry")
        if !verdict.allowed {
            logger.debug(
                "retry refused: the retry budget is spent",
                metadata: ["sluice.scope": "\(scope)", "sluice.retries": "\(verdict.retries)"])
        }
        return verdict
    }

    private func run(_ operation: String) async throws -> Verdict {
        try verdict(from: try await redis.run(step(operation)))
    }

    /// retry-budget's reply ("request" or "retry"), also as a step of call-finish (which reports a step's
    /// failure as `!error <message>`).
    func verdict(from reply: RedisValue) throws -> Verdict {
        if let text = reply.string, text.hasPrefix("!error") {
            throw RedisError(.unexpectedReply, "retry-budget failed: \(text.dropFirst(7))")
        }
        let parts = reply.array ?? []
        guard parts.count == 3 else { throw RedisError(.unexpectedReply, "retry-budget replied unexpectedly") }
        return Verdict(allowed: parts[0].integer == 1, retries: parts[1].double ?? 0, requests: parts[2].double ?? 0)
    }

    /// retry-budget's step: `"request"` counts a first attempt, `"retry"` asks for a retry.
    func step(_ operation: String) -> ScriptStep {
        let keys = PartitionKeys(partition: partition, namespace: namespace)
        return ScriptStep(
            script: LuaScripts.retryBudget, keys: [keys.key("retry", scope), keys.events],
            arguments: [
                RedisArgument(operation), RedisArgument(String(configuration.ratio)),
                RedisArgument(configuration.floor),
                RedisArgument(max(1, Int(configuration.window / .milliseconds(1)))), RedisArgument(scope),
            ])
    }
}
