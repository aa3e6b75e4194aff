import SluiceRedis
import Synchronization

/// An estimate charged ahead of a call whose real cost is known only afterwards (an LLM call:
/// prompt tokens plus max output tokens). ``settle(actual:)`` refunds the difference or charges the
/// overrun; ``cancel()`` refunds it all; unsettled, it expires by itself with the estimate charged.
public struct Reservation: Sendable {
    public let id: String
    public let path: ScopePath
    public let estimate: Cost
    /// The decision on the estimate. When it was denied, nothing is reserved.
    public let decision: Decision
    /// The call inside a request tree admitted with it, if any: closing the reservation closes it.
    public let tree: TreeCall?
    let limiter: Limiter
    let resources: [(resource: String, amount: Int64)]
    /// The keys it was charged on; `nil` (a handle from ``Limiter/reservation(id:path:)``): the path's keys now.
    let keys: QuotaKeys?

    init(
        id: String, path: ScopePath, estimate: Cost, decision: Decision, limiter: Limiter,
        resources: [(resource: String, amount: Int64)], tree: TreeCall? = nil, keys: QuotaKeys? = nil
    ) {
        self.keys = keys
        self.id = id
        self.path = path
        self.estimate = estimate
        self.decision = decision
        self.limiter = limiter
        self.resources = resources
        self.tree = tree
    }

    /// Settles with what the call really cost. Resources not named keep their estimate (a handle from
    /// ``Limiter/reservation(id:path:)`` knows no estimate: it sends every resource named).
    /// Idempotent: a second settle (or a settle after cancel) changes nothing and says so. Made
    /// inside a request tree (``tree``), it settles the tree's budgets with the same actual costs,
    /// and the call stops counting as in flight.
    @discardableResult
    public func settle(actual: Cost) async throws(QuotaError) -> SettleOutcome {
        try await close(try settleStep(actual: actual))
    }

    /// settle.lua's step settling with `actual`. A resource whose actual cost is its estimate is not sent: it
    /// keeps its estimate all the same, and a settle that names no resource only marks the reservation settled
    /// (settle.lua reads no scope then).
    func settleStep(actual: Cost) throws(QuotaError) -> ScriptStep {
        var arguments: [RedisArgument] = ["settle"]
        for (resource, amount) in try actual.validated()
        where (resources.isEmpty || resources.contains(where: { $0.resource == resource }))
            && estimate.amounts[resource] != amount
        {
            arguments += [RedisArgument(resource), RedisArgument(amount)]
        }
        return closeStep(arguments)
    }

    /// Gives the whole estimate back (on the tree too, with the loop guard's count). Idempotent, like
    /// ``settle(actual:)``.
    @discardableResult
    public func cancel() async throws(QuotaError) -> SettleOutcome {
        try await close(closeStep(["cancel"]))
    }

    func closeStep(_ arguments: [RedisArgument]) -> ScriptStep {
        let keys = self.keys ?? limiter.keys(for: path)
        var redisKeys = [RedisArgument(keys.reservation(id))] + keys.states(path).map { RedisArgument($0) }
        if let tree {  // settle.lua closes the tree side as well
            let treeKeys = tree.keys(namespace: keys.namespace)
            redisKeys += [treeKeys.tree, treeKeys.calls]
        }
        return ScriptStep(script: LuaScripts.settle, keys: redisKeys, arguments: arguments)
    }

    private func close(_ step: ScriptStep) async throws(QuotaError) -> SettleOutcome {
        let reply: RedisValue
        do {
            reply = try await limiter.client.run(step)
        } catch {
            throw QuotaError.redis(error)
        }
        return try Self.parseClose(reply)
    }

    /// settle.lua's reply.
    static func parseClose(_ reply: RedisValue) throws(QuotaError) -> SettleOutcome {
        switch reply.array?.first?.string {
        case "settled": return .settled
        case "cancelled": return .cancelled
        case "already settled": return .alreadySettled
        case "already cancelled": return .alreadyCancelled
        case "unknown": return .unknown
        case "mismatch": throw QuotaError(.reservationMismatch, "the reservation was made on another path")
        default: throw QuotaError(.unexpectedReply, "settle replied unexpectedly")
        }
    }

    /// A new reservation id, in hex: "<process>-<count>". The process part is 64 random bits drawn once per
    /// process, so ids of different processes differ with near certainty; the count numbers this process's ids
    /// from a random start. Unique like 128 random bits per id, without asking the system for randomness on every
    /// provider call (two `getrandom` calls each before).
    static func newID() -> String {
        idPrefix + String(nextIDCount.wrappingAdd(1, ordering: .relaxed).newValue, radix: 16)
    }

    private static let idPrefix = String(UInt64.random(in: .min ... .max), radix: 16) + "-"
    private static let nextIDCount = Atomic<UInt64>(UInt64.random(in: 0...(UInt64.max >> 1)))
}

extension Limiter {
    /// The reservation `id` on `path`, made elsewhere (another process, `sluice reserve`): a handle
    /// only to settle or cancel it. Its ``Reservation/estimate`` is unknown here (empty) and its
    /// ``Reservation/decision`` a placeholder. A reservation made inside a request tree needs the
    /// handle ``reserve(_:estimate:ttl:id:priority:reportLimits:tree:)`` returned: closing it closes the tree side.
    public func reservation(id: String, path: ScopePath) throws(QuotaError) -> Reservation {
        guard !id.isEmpty else { throw QuotaError(.invalidReservation, "a reservation id is not empty") }
        return Reservation(
            id: id, path: path, estimate: Cost([:]), decision: Decision(allowed: true), limiter: self, resources: [])
    }
}

/// What closing a reservation did.
public struct SettleOutcome: Sendable, Hashable, CustomStringConvertible {
    private let name: String
    private init(_ name: String) { self.name = name }
    public static let settled = SettleOutcome("settled")
    public static let cancelled = SettleOutcome("cancelled")
    public static let alreadySettled = SettleOutcome("already settled")
    public static let alreadyCancelled = SettleOutcome("already cancelled")
    /// Never made, denied, or expired (its estimate stayed charged).
    public static let unknown = SettleOutcome("unknown")
    public var description: String { name }
}

/// A scheduled admission: proceed at ``proceedAt``, or cancel for a refund.
public struct Admission: Sendable {
    public let reservation: Reservation
    /// When the caller may proceed (the limiter's wait from the moment it asked).
    public let proceedAt: ContinuousClock.Instant

    public var decision: Decision { reservation.decision }
    public var allowed: Bool { decision.allowed }
    public var wait: Duration { decision.wait }

    /// Sleeps until ``proceedAt``. If the task is cancelled meanwhile, the charge is refunded and
    /// `CancellationError` thrown. Throws nothing else when denied: check ``allowed`` first.
    public func proceed() async throws {
        guard allowed else { return }
        do {
            try await Task.sleep(until: proceedAt, clock: .continuous)
        } catch {
            // Shielded: a Redis command from a cancelled task is never sent, and the charge would stay.
            let reservation = self.reservation
            _ = try? await withCancellationShield { try await reservation.cancel() }
            throw error
        }
    }

    /// Gives up the slot; the charge is refunded.
    @discardableResult
    public func cancel() async throws(QuotaError) -> SettleOutcome {
        try await reservation.cancel()
    }
}
