import SluiceRedis

extension Limiter {
    /// Decides now: admits `cost` against every limit on `path` (charging all of them) or denies
    /// it (charging none).
    ///
    /// - Parameter reportLimits: report every limit's remaining units in ``Decision/limits`` even
    ///   when all of them allow (a denied decision, or one a shadow limit would deny, always
    ///   reports them). It costs the server about a fifth more per decision.
    public func decide(
        _ path: ScopePath, cost: Cost, priority: Priority = .interactive, reportLimits: Bool = false
    ) async throws(QuotaError) -> Decision {
        let layout = try await shardLayout(path)
        var request = try DecideRequest(limiter: self, path: path, cost: cost, priority: priority)
        request.reportLimits = reportLimits
        return try await runRouted(request, layout: layout).decision
    }

    /// Scheduled admission: charges the buckets now, into their bounded debt, and answers how long
    /// to wait before proceeding; refuses at once when that is longer than `maxWait` (or a window
    /// or budget is full). Call ``Admission/proceed()`` to sleep until then; a task cancelled while
    /// waiting, or ``Admission/cancel()``, gives the charge back.
    ///
    /// - Parameter tree: a call inside a request tree, admitted by the tree and the quota at once or
    ///   by neither (see ``TreeCall``); closing the reservation closes the tree side too.
    public func schedule(
        _ path: ScopePath, cost: Cost, maxWait: Duration, priority: Priority = .interactive, reportLimits: Bool = false,
        tree: TreeCall? = nil
    ) async throws(QuotaError) -> Admission {
        let id = Reservation.newID()
        let layout = try await shardLayout(path)
        let request = try scheduleRequest(
            path, cost: cost, maxWait: maxWait, priority: priority, reportLimits: reportLimits, tree: tree, id: id)
        let started = ContinuousClock.now
        let outcome = try await runRouted(request, layout: layout)
        let reservation = Reservation(
            id: id, path: path, estimate: cost, decision: outcome.decision, limiter: self, resources: request.resources,
            tree: tree, keys: outcome.keys)
        return Admission(reservation: reservation, proceedAt: started + outcome.decision.wait)
    }

    /// The decide call of a scheduled admission (see ``schedule(_:cost:maxWait:priority:reportLimits:tree:)``),
    /// validated, with a reservation `id` that lives `maxWait` plus a minute.
    func scheduleRequest(
        _ path: ScopePath, cost: Cost, maxWait: Duration, priority: Priority, reportLimits: Bool = false,
        tree: TreeCall?, id: String
    ) throws(QuotaError) -> DecideRequest {
        guard maxWait >= .zero, maxWait <= .seconds(86_400) else {
            throw QuotaError(.invalidDuration, "maxWait is between 0 and a day")
        }
        var request = try DecideRequest(limiter: self, path: path, cost: cost, priority: priority)
        request.maxWait = maxWait
        request.reportLimits = reportLimits
        request.reservation = (id, maxWait + .seconds(60))
        if let tree {
            try tree.validate(path: path, limiter: self)
            request.tree = tree
        }
        return request
    }

    /// Reserves `estimate` (say prompt tokens + max output tokens) for at most `ttl`; settle it
    /// with the actual cost once known. Unsettled, it expires by itself and the estimate stays
    /// charged. Reserving again under the same `id` does not charge twice.
    ///
    /// - Parameter tree: a call inside a request tree, admitted by the tree and the quota at once or
    ///   by neither (see ``TreeCall``; the call's id in the tree is the reservation's); settling the
    ///   reservation settles the tree side too. The record then lives at least as long as the call
    ///   counts in flight (``TreeCall/ttl``).
    public func reserve(
        _ path: ScopePath, estimate: Cost, ttl: Duration = .seconds(600), id: String? = nil,
        priority: Priority = .interactive, reportLimits: Bool = false, tree: TreeCall? = nil
    ) async throws(QuotaError) -> Reservation {
        guard ttl >= .milliseconds(1), ttl <= .seconds(7 * 86_400) else {
            throw QuotaError(.invalidDuration, "a reservation's ttl is between 1 ms and 7 days")
        }
        let id = id ?? Reservation.newID()
        guard !id.isEmpty else { throw QuotaError(.invalidReservation, "a reservation id is not empty") }
        let layout = try await shardLayout(path)
        var request = try DecideRequest(limiter: self, path: path, cost: estimate, priority: priority)
        request.reservation = (id, ttl)
        request.reportLimits = reportLimits
        if let tree {
            try tree.validate(path: path, limiter: self)
            request.tree = tree
        }
        let outcome = try await runRouted(request, layout: layout)
        if outcome.status == "closed" {
            throw QuotaError(.reservationClosed, "this reservation id was already settled or cancelled")
        }
        return Reservation(
            id: id, path: path, estimate: estimate, decision: outcome.decision, limiter: self,
            resources: request.resources, tree: tree, keys: outcome.keys)
    }
}

/// One decide call, validated and encoded before any I/O.
struct DecideRequest: Sendable {
    let path: ScopePath
    let resources: [(resource: String, amount: Int64)]
    private(set) var keys: QuotaKeys
    var priority: Priority
    var maxWait: Duration = .zero
    var reportLimits = false
    var reservation: (id: String, ttl: Duration)?
    /// A call inside a request tree (only with a reservation, whose id is the call's).
    var tree: TreeCall?
    private(set) var encoded: EncodedPath

    init(limiter: Limiter, path: ScopePath, cost: Cost, priority: Priority) throws(QuotaError) {
        self.path = path
        self.resources = try cost.validated()
        self.keys = limiter.keys(for: path)
        self.priority = priority
        self.encoded = limiter.encodedPaths.encoding(
            path, resources: resources.map(\.resource), keys: keys, limiter: limiter)
    }

    /// The same request on the keys `layout` gives `path` (it was read again).
    func rerouted(_ limiter: Limiter, layout: ShardLayout?) -> DecideRequest {
        var copy = self
        copy.keys = limiter.keys(for: path, layout: layout)
        copy.encoded = limiter.encodedPaths.encoding(
            path, resources: resources.map(\.resource), keys: copy.keys, limiter: limiter)
        return copy
    }

    var plan: String { String(decoding: encoded.plan.bytes, as: UTF8.self) }

    var redisKeys: [RedisArgument] {
        guard let reservation else { return encoded.keys }
        guard let tree else { return encoded.keys + [RedisArgument(keys.reservation(reservation.id))] }
        let treeKeys = tree.keys(namespace: keys.namespace)
        return encoded.keys + [
            RedisArgument(keys.reservation(reservation.id)), treeKeys.tree, treeKeys.calls, treeKeys.events,
        ]
    }

    var arguments: [RedisArgument] {
        var out: [RedisArgument] = []
        out.reserveCapacity(4 + resources.count + encoded.patterns.count)
        out.append(encoded.plan)
        out.append(reportLimits ? RedisArgument(priority.name + " time report") : priority.argument)
        out.append(maxWait == .zero ? "0" : RedisArgument(maxWait.milliseconds))
        out.append(reservation.map { RedisArgument($0.ttl.milliseconds) } ?? "0")
        for (_, amount) in resources { out.append(RedisArgument(amount)) }
        out.append(contentsOf: encoded.patterns)
        if let tree, let reservation { out.append(contentsOf: tree.arguments(callID: reservation.id, path: path)) }
        return out
    }

    var step: ScriptStep { ScriptStep(script: LuaScripts.decide, keys: redisKeys, arguments: arguments) }

    struct Outcome {
        var decision: Decision
        var status: String
        /// The keys it was decided on (``run(_:)`` sets them): a reservation is closed on these.
        var keys: QuotaKeys?
    }

    func run(_ limiter: Limiter) async throws(QuotaError) -> Outcome {
        let reply: RedisValue
        do {
            reply = try await limiter.client.run(step)
        } catch {
            throw QuotaError.redis(error)
        }
        var outcome = try DecideRequest.parse(reply, path: path)
        outcome.keys = keys
        limiter.log(outcome.decision.warnings)
        return outcome
    }

    /// Reads decide.lua's flat reply (its header comment documents it).
    static func parse(_ reply: RedisValue, path: ScopePath) throws(QuotaError) -> Outcome {
        // The common case, admitted with nothing to report: the wait and Redis' time, in ms.
        if let pair = reply.array, pair.count == 2, let wait = pair[0].integer, let now = pair[1].integer, wait >= 0 {
            return Outcome(decision: Decision(allowed: true, wait: .milliseconds(wait), decidedAt: now), status: "")
        }
        guard let items = reply.array, items.count >= 8 else { throw unexpected("not the decide reply") }
        func int(_ at: Int) throws(QuotaError) -> Int64 {
            guard at < items.count, let value = items[at].integer else {
                throw unexpected("item \(at + 1) is not a number")
            }
            return value
        }
        func text(_ at: Int) throws(QuotaError) -> String {
            guard at < items.count, let value = items[at].string else { throw unexpected("item \(at + 1) is not text") }
            return value
        }
        let limitCount = Int(try int(5))
        let warningCount = Int(try int(6))
        guard limitCount >= 0, warningCount >= 0, items.count == 8 + 6 * limitCount + 3 * warningCount else {
            throw unexpected("counts do not match the reply's length")
        }
        var limits: [LimitStatus] = []
        for k in 0..<limitCount {
            let at = 8 + 6 * k
            let scopeIndex = Int(try int(at))
            guard path.scopes.indices.contains(scopeIndex) else { throw unexpected("a scope index is out of range") }
            let kind: QuotaLimit.Kind
            switch try text(at + 2) {
            case "bucket": kind = .bucket
            case "window": kind = .window
            case "budget": kind = .budget
            case "pause": kind = .pause
            case "tree-deadline": kind = .treeDeadline
            case "tree-depth": kind = .treeDepth
            case "loop-guard": kind = .loopGuard
            case "tree-budget": kind = .treeBudget
            case "tree-in-flight": kind = .treeInFlight
            case "resharded": kind = .resharded
            default: throw unexpected("an unknown limit kind")
            }
            let verdict: LimitStatus.Verdict
            switch try int(at + 5) {
            case 0: verdict = .allows
            case 1: verdict = .denies
            default: verdict = .wouldDeny
            }
            limits.append(
                LimitStatus(
                    scopeIndex: scopeIndex, scope: path.scopes[scopeIndex], resource: try text(at + 1), kind: kind,
                    remaining: try int(at + 3), limit: try int(at + 4), verdict: verdict))
        }
        var warnings: [QuotaWarning] = []
        for w in 0..<warningCount {
            let at = 8 + 6 * limitCount + 3 * w
            let field = try text(at + 1)
            warnings.append(
                QuotaWarning(
                    code: field == "default" ? .invalidDefault : .invalidConfig, scopeIndex: Int(try int(at)),
                    field: field,
                    reason: try text(at + 2)))
        }
        let denied = Int(try int(4))
        guard denied >= 0, denied <= limits.count else { throw unexpected("the denying limit is out of range") }
        let retry = try int(2)
        let decision = Decision(
            allowed: try int(0) == 1, wait: .milliseconds(try int(1)), retryAfter: .milliseconds(max(0, retry)),
            retryable: retry >= 0, deniedBy: denied > 0 ? limits[denied - 1] : nil, limits: limits, warnings: warnings,
            decidedAt: try int(7))
        return Outcome(decision: decision, status: try text(3))
    }

    private static func unexpected(_ what: String) -> QuotaError {
        QuotaError(.unexpectedReply, "decide replied unexpectedly: \(what)")
    }
}

/// What a decide call sends that depends only on the path and the cost's resources: the keys, the
/// config fields and the plan, encoded once and kept (a worker decides for the same paths again and
/// again; encoding them costs more client time than the rest of a call).
struct EncodedPath: Sendable {
    let keys: [RedisArgument]
    let patterns: [RedisArgument]
    let plan: RedisArgument
}

/// A small cache of ``EncodedPath``s, emptied when it grows past its bound.
final class EncodedPaths: Sendable {
    private struct Key: Hashable {
        let path: ScopePath
        let resources: [String]
        /// The keys' prefix: a sharded path's keys depend on its shard too.
        let prefix: String
    }
    private let cache = SluiceMutex<[Key: EncodedPath]>([:])
    private let bound = 4096

    func encoding(_ path: ScopePath, resources: [String], keys: QuotaKeys, limiter: Limiter) -> EncodedPath {
        let key = Key(path: path, resources: resources, prefix: keys.prefix)
        if let hit = cache.withLock({ $0[key] }) { return hit }
        // The plan: the resources, then each scope's default spec. The script memoizes it.
        var plan = resources.joined(separator: " ")
        for scope in path.scopes { plan += "\n" + (limiter.defaults[scope.kind] ?? "") }
        let encoded = EncodedPath(
            keys: ([keys.quotas, keys.stats] + keys.states(path)).map { RedisArgument($0) },
            patterns: path.scopes.indices.flatMap { path.patterns(at: $0) }.map { RedisArgument($0) },
            plan: RedisArgument(plan))
        cache.withLock { cache in
            if cache.count >= bound { cache.removeAll(keepingCapacity: true) }
            cache[key] = encoded
        }
        return encoded
    }
}

extension Duration {
    /// Whole milliseconds, rounded up.
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
    }
}
