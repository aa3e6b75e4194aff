import CoreMetrics
import Logging

/// Where a client's connections log and count what they do in the background (reconnects, fail-overs, command
/// latency). It travels inside ``RedisConfiguration`` to every connection the client opens, and plays no part in
/// the configuration's equality or printing. ``RedisClient/init(configuration:poolSize:sharedConnections:backgroundLogger:metricsFactory:)``
/// sets it; a configuration made on its own logs and counts nothing.
struct RedisObservability: Sendable, Hashable {
    let logger: Logger
    /// `sluice_redis_reconnects_total`: connections re-established after they were lost or failed to connect.
    let reconnects: Counter
    /// `sluice_redis_connection_losses_total`: ready connections that failed (server gone, timeout, reset).
    let connectionLosses: Counter
    /// `sluice_redis_topology_changes_total`: Redis Cluster slot maps that named other primaries (fail-overs,
    /// resharding).
    let topologyChanges: Counter
    /// `sluice_redis_command_duration_seconds` by `kind` (command, pipeline, script): the client's calls, from the
    /// caller's side (queueing on the shared connection included).
    let commandDuration: [CommandKind: Timer]

    enum CommandKind: String, Sendable, CaseIterable {
        case command, pipeline, script
    }

    /// Logs nothing and counts nothing.
    static let disabled = RedisObservability(logger: Logger.sluiceDisabled, factory: NOOPMetricsHandler.instance)

    init(logger: Logger, factory: any MetricsFactory) {
        self.logger = logger
        reconnects = Counter(label: "sluice_redis_reconnects_total", factory: factory)
        connectionLosses = Counter(label: "sluice_redis_connection_losses_total", factory: factory)
        topologyChanges = Counter(label: "sluice_redis_topology_changes_total", factory: factory)
        var timers: [CommandKind: Timer] = [:]
        for kind in CommandKind.allCases {
            timers[kind] = Timer(
                label: "sluice_redis_command_duration_seconds", dimensions: [("kind", kind.rawValue)], factory: factory)
        }
        commandDuration = timers
    }

    /// Records how long one of the client's calls took.
    func recordDuration(_ kind: CommandKind, since start: ContinuousClock.Instant) {
        let elapsed = ContinuousClock.now - start
        let (seconds, attoseconds) = elapsed.components
        commandDuration[kind]?.recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }

    // Not a setting: two configurations that differ only in where they log are the same configuration.
    static func == (lhs: Self, rhs: Self) -> Bool { true }
    func hash(into hasher: inout Hasher) {}
}

extension Logger {
    /// A logger that drops everything: the default of every Sluice type that takes a background logger, so that a
    /// library does not print unless its application hands it a logger.
    public static var sluiceDisabled: Logger {
        Logger(label: "sluice.disabled", factory: { _ in SwiftLogNoOpLogHandler() })
    }
}
