/// What a limiter does when Redis is unreachable or too slow to answer within the call's deadline.
///
/// - ``failClosed``: refuse (``BackpressureError/Code/redisUnavailable``). The safe default where
///   overspending costs real money.
/// - ``failOpen``: let the call through unchecked. For limits that are a courtesy, not a contract.
/// - ``localFallback(fleetCeiling:burst:)``: admit through a token bucket in this process, sized to
///   this worker's share of the fleet's ceiling (the ceiling divided by the number of live workers
///   last seen in the worker registry), so the fleet as a whole stays near its ceiling.
public struct FailurePolicy: Sendable, Hashable, CustomStringConvertible {
    enum Kind: Sendable, Hashable {
        case closed
        case open
        case fallback(perSecond: Double, burst: Duration)
    }

    let kind: Kind

    /// Refuse every call while Redis cannot be asked.
    public static let failClosed = FailurePolicy(kind: .closed)
    /// Allow every call while Redis cannot be asked.
    public static let failOpen = FailurePolicy(kind: .open)

    /// Admit through a local bucket with this worker's share of `fleetCeiling` calls per second;
    /// the bucket holds `burst` worth of its rate (at least one call).
    public static func localFallback(fleetCeiling: Double, burst: Duration = .seconds(1)) -> FailurePolicy {
        FailurePolicy(kind: .fallback(perSecond: max(0, fleetCeiling), burst: max(.zero, burst)))
    }

    public var description: String {
        switch kind {
        case .closed: return "fail closed"
        case .open: return "fail open"
        case .fallback(let rate, _): return "local fallback (fleet ceiling \(rate)/s)"
        }
    }
}
