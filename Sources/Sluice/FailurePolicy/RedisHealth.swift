import Logging
import SluiceRedis

/// A breaker around Redis itself, in this process: after a connection failure or a timeout it
/// stops sending for a cool-down (doubling up to a maximum), then lets one trial call through;
/// meanwhile callers are told at once that Redis is unavailable, and their failure policy decides.
/// A recovering server is not hammered by every caller of every worker, and no caller waits on a
/// server that is known to be down. The time spent degraded is measured.
///
/// Logs to its `logger`: Redis becoming unavailable at `warning` (once per outage), a failed trial at `debug`, and
/// Redis answering again at `notice`, with the time spent degraded. ``Backpressure`` hands it a logger that carries
/// the partition and the failure policy.
public final class RedisHealth: Sendable {
    /// How the breaker around Redis behaves.
    public struct Configuration: Sendable, Hashable {
        /// The longest one Redis step may take (bounded further by the call's deadline). A step that
        /// takes longer counts as an outage: keep it well above the server's worst latency under load.
        public var stepTimeout: Duration
        /// The first cool-down after a failure.
        public var initialCoolDown: Duration
        /// The longest cool-down.
        public var maximumCoolDown: Duration

        /// Creates a configuration.
        public init(
            stepTimeout: Duration = .seconds(2), initialCoolDown: Duration = .milliseconds(100),
            maximumCoolDown: Duration = .seconds(5)
        ) {
            self.stepTimeout = max(.milliseconds(1), stepTimeout)
            self.initialCoolDown = max(.milliseconds(1), initialCoolDown)
            self.maximumCoolDown = max(self.initialCoolDown, maximumCoolDown)
        }
    }

    /// What happened so far.
    public struct Statistics: Sendable, Hashable {
        /// Whether Redis is considered unavailable right now.
        public var degraded: Bool
        /// The total time spent degraded, including the current stretch.
        public var degradedTime: Duration
        /// How many times Redis went from healthy to degraded.
        public var outages: Int
        /// Steps that failed on Redis (connection failures and timeouts).
        public var failures: Int
        /// Steps not sent because the breaker was open.
        public var skipped: Int
    }

    private struct State {
        var degradedSince: ContinuousClock.Instant?
        var degradedTotal: Duration = .zero
        var openUntil: ContinuousClock.Instant?
        var coolDown: Duration
        var trialRunning = false
        var outages = 0
        var failures = 0
        var skipped = 0
        /// How far the current stretch's degraded time was handed to ``onTransition`` already.
        var reportedUntil: ContinuousClock.Instant?

        /// The current stretch's degraded time not handed on yet, when at least `minimum`; it counts as handed on.
        mutating func unreportedDegradedTime(now: ContinuousClock.Instant, minimum: Duration) -> Duration? {
            guard let since = degradedSince else { return nil }
            let time = now - (reportedUntil ?? since)
            guard time > .zero, time >= minimum else { return nil }
            reportedUntil = now
            return time
        }
    }

    /// A change between healthy and degraded, and the time spent degraded as it passes, for whoever counts them
    /// (``Backpressure``'s metrics). The `degradedFor` of one stretch add up to its length.
    enum Transition: Sendable {
        /// Redis became unavailable.
        case degraded
        /// Redis is still unavailable, `degradedFor` more than last told (told at failed trials and, at most once a
        /// second, at skipped steps), so that a counter of degraded time grows during an outage, not only after it.
        case stillDegraded(degradedFor: Duration)
        /// Redis answers again after `after` degraded, `degradedFor` of it not told before.
        case recovered(after: Duration, degradedFor: Duration)
    }

    /// How often at most a skipped step tells the degraded time that passed.
    private static let degradedTimeInterval = Duration.seconds(1)

    /// The configuration.
    public let configuration: Configuration
    /// Where the transitions are logged.
    public let logger: Logger
    private let state: SluiceMutex<State>
    private let onTransition: @Sendable (Transition) -> Void
    /// The time: the continuous clock, or a test's.
    private let now: @Sendable () -> ContinuousClock.Instant

    /// A healthy breaker.
    package convenience init(configuration: Configuration = Configuration(), logger: Logger = .sluiceDisabled) {
        self.init(configuration: configuration, logger: logger, now: { .now })
    }

    /// A healthy breaker on a clock of the caller's (tests). Step deadlines are still slept on the continuous clock.
    init(
        configuration: Configuration, logger: Logger = .sluiceDisabled,
        now: @escaping @Sendable () -> ContinuousClock.Instant,
        onTransition: @escaping @Sendable (Transition) -> Void = { _ in }
    ) {
        self.configuration = configuration
        self.logger = logger
        self.state = SluiceMutex(State(coolDown: configuration.initialCoolDown))
        self.now = now
        self.onTransition = onTransition
    }

    /// The statistics now.
    public var statistics: Statistics {
        let now = self.now()
        return state.withLock { state in
            let current = state.degradedSince.map { now - $0 } ?? .zero
            return Statistics(
                degraded: state.degradedSince != nil, degradedTime: state.degradedTotal + current,
                outages: state.outages, failures: state.failures, skipped: state.skipped)
        }
    }

    /// Runs one Redis step, bounded by `deadline` and the step timeout. Throws
    /// ``BackpressureError/Code/redisUnavailable`` at once while the breaker is open, and when the
    /// step fails on the connection or times out (which opens it). Server error replies are not
    /// outages: they are rethrown as they are.
    ///
    /// `awaitingReply`: the caller's cancellation does not end the wait, the deadline does (see
    /// `withDeadlineAbandoning`): for a step whose effect the caller must learn so as to undo it (an admission that
    /// may take a lease).
    package func perform<T: Sendable>(
        deadline: ContinuousClock.Instant?, awaitingReply: Bool = false,
        _ step: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        let now = self.now()
        let (isTrial, degradedFor): (Bool?, Duration?) = state.withLock { state in
            guard let until = state.openUntil else { return (false, nil) }
            if now < until || state.trialRunning {
                state.skipped += 1
                return (nil, state.unreportedDegradedTime(now: now, minimum: Self.degradedTimeInterval))
            }
            state.trialRunning = true
            return (true, nil)
        }
        guard let isTrial else {
            if let degradedFor { onTransition(.stillDegraded(degradedFor: degradedFor)) }
            throw BackpressureError(.redisUnavailable, "Redis is unavailable (backing off before trying again)")
        }
        let limit = ContinuousClock.Instant.earliest(deadline, now + configuration.stepTimeout)!
        do {
            // Abandoned rather than awaited at the deadline: a Redis command cannot be given up yet (see
            // withDeadlineAbandoning), and no step may hold a call past its deadline while the server is stopped.
            let value = try await withDeadlineAbandoning(
                limit, awaitingReply: awaitingReply,
                onTimeout: { RedisError(.timeout, "no answer within the step's deadline") }, step)
            succeeded(trial: isTrial)
            return value
        } catch let error as RedisError where error.isConnectionFailure || error.code == .closed {
            failed(trial: isTrial, error: error)
            throw BackpressureError(.redisUnavailable, "Redis is unavailable: \(error.code)", underlying: error)
        } catch {
            if isTrial { state.withLock { $0.trialRunning = false } }
            throw error
        }
    }

    private func succeeded(trial: Bool) {
        let now = self.now()
        let (recoveredAfter, degradedFor): (Duration?, Duration) = state.withLock { state in
            if trial { state.trialRunning = false }
            var stretch: Duration?
            let unreported = state.unreportedDegradedTime(now: now, minimum: .zero) ?? .zero
            if let since = state.degradedSince {
                stretch = now - since
                state.degradedTotal += now - since
                state.degradedSince = nil
                state.reportedUntil = nil
            }
            state.openUntil = nil
            state.coolDown = configuration.initialCoolDown
            return (stretch, unreported)
        }
        if let recoveredAfter {
            logger.notice(
                "Redis is available again; decisions are checked in Redis again",
                metadata: ["sluice.degraded_seconds": "\(recoveredAfter.inSeconds)"])
            onTransition(.recovered(after: recoveredAfter, degradedFor: degradedFor))
        }
    }

    private func failed(trial: Bool, error: RedisError) {
        let now = self.now()
        let (started, coolDown, degradedFor) = state.withLock { state in
            if trial { state.trialRunning = false }
            state.failures += 1
            var started = false
            let degradedFor = state.unreportedDegradedTime(now: now, minimum: .zero)
            if state.degradedSince == nil {
                state.degradedSince = now
                state.outages += 1
                state.coolDown = configuration.initialCoolDown
                started = true
            } else if trial {
                state.coolDown = min(configuration.maximumCoolDown, state.coolDown * 2)
            }
            state.openUntil = now + state.coolDown
            return (started, state.coolDown, degradedFor)
        }
        if let degradedFor { onTransition(.stillDegraded(degradedFor: degradedFor)) }
        let metadata: Logger.Metadata = [
            "redis.error": "\(error.code)", "sluice.cool_down_ms": "\(coolDown.milliseconds)",
        ]
        if started {
            logger.warning(
                "Redis is unavailable; the failure policy decides until it answers again", metadata: metadata)
            onTransition(.degraded)
        } else {
            logger.debug("Redis still unavailable", metadata: metadata)
        }
    }
}
