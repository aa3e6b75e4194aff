import Foundation
import Sluice
import SluiceRedis

/// One worker process of the chaos soak (`sluice soak worker`): until its end it runs request trees whose calls
/// go through ``Backpressure/call(_:degrade:logger:_:)`` (fail-open: the tree, the quota path `global → tenant`, a
/// fleet-wide lease and the breaker) to the mock provider, reservations through ``Limiter/reserve`` settled at
/// their estimate, and now and then a hostile input through the public API (``SoakHostileInputs``). Everything it
/// is admitted or refused goes to its ``SoakLedger`` as it happens.
///
/// Every admission settles exactly its estimate (also when the provider fails), so that what Redis charged is
/// what the ledger holds.
public struct SoakWorker: Sendable {
    public struct Options: Sendable {
        public var redisURL: String
        public var providerURL: String
        public var ledgerPath: String
        public var index: Int
        public var endMs: Double
        public var seed: UInt64
        /// Concurrent request trees.
        public var trees: Int
        /// Concurrent reservation loops.
        public var reservers: Int

        public init(
            redisURL: String, providerURL: String, ledgerPath: String, index: Int, endMs: Double, seed: UInt64,
            trees: Int = 3, reservers: Int = 2
        ) {
            self.redisURL = redisURL
            self.providerURL = providerURL
            self.ledgerPath = ledgerPath
            self.index = index
            self.endMs = endMs
            self.seed = seed
            self.trees = trees
            self.reservers = reservers
        }
    }

    let options: Options
    let ledger: SoakLedger
    let redis: RedisClient
    let limiter: Limiter
    let backpressure: Backpressure
    let trees: RequestTrees
    let client: ProviderClient
    let stallMeter = StallMeter()

    public init(_ options: Options) throws {
        self.options = options
        ledger = try SoakLedger(path: options.ledgerPath)
        var configuration = try RedisConfiguration(url: options.redisURL)
        configuration.commandTimeout = SoakPlan.commandTimeout
        configuration.connectTimeout = SoakPlan.commandTimeout
        configuration.reconnectBackoff = .init(initial: .milliseconds(50), maximum: .milliseconds(500))
        redis = try RedisClient(configuration: configuration, poolSize: 4)
        limiter = try Limiter(client: redis, configuration: .init(defaults: SoakPlan.defaults))
        backpressure = Backpressure(
            redis: redis,
            configuration: .init(
                partition: SoakPlan.partition, failurePolicy: .failOpen,
                leaseTTL: SoakPlan.leaseTTL, maxCallDuration: SoakPlan.maxCallDuration,
                defaultTimeout: SoakPlan.callTimeout, heartbeat: .seconds(1),
                holder: "soak-\(options.index)-pid-\(getpid())"),
            limiter: limiter)
        trees = RequestTrees(redis: redis)
        client = ProviderClient(baseURL: options.providerURL, family: "openai", attemptTimeoutMs: 1_500)
    }

    /// Runs until the end time, then closes everything.
    public func run() async {
        await withTaskGroup(of: Void.self) { group in
            for lane in 0..<options.trees {
                group.addTask { await treeLoop(lane: lane) }
            }
            for lane in 0..<options.reservers {
                group.addTask { await reserveLoop(lane: lane) }
            }
            group.addTask { await hostileLoop() }
        }
        await backpressure.shutdown()
        await client.shutdown()
        redis.close()
    }

    private var running: Bool { StormClock.nowMs() < options.endMs }

    // MARK: Request trees through Backpressure.call

    private func treeLoop(lane: Int) async {
        var random = SeededRandom([options.seed, UInt64(options.index), UInt64(lane), 1])
        var number = 0
        while running {
            number += 1
            let tenant = SoakPlan.treeTenants[Int(random.next() % UInt64(SoakPlan.treeTenants.count))]
            let id = "w\(options.index)-\(getpid())-\(lane)-\(number)"
            let limits = TreeLimits(
                budgets: ["tokens": Int64(SoakPlan.treeBudget)], maxInFlight: 2, deadline: .seconds(3),
                lifetime: .seconds(60))
            let context: TreeContext
            do {
                context = try await trees.open(id: id, partition: SoakPlan.partition, limits: limits)
            } catch {
                note("error", via: "backpressure", detail: "tree-open: \(Self.describe(error))")
                try? await Task.sleep(for: .milliseconds(100))
                continue
            }
            let seeds = (0..<8).map { _ in random.next() }
            await withTaskGroup(of: Void.self) { group in
                for branch in 0..<2 {
                    group.addTask {
                        for step in 0..<4 where running {
                            await call(tenant: tenant, tree: context, seed: seeds[branch * 4 + step])
                        }
                    }
                }
            }
        }
    }

    private func call(tenant: String, tree: TreeContext, seed: UInt64) async {
        var random = SeededRandom(seed: seed)
        let prompt = 40 + Int(random.next() % 200)
        let maxTokens = 20 + Int(random.next() % 180)
        let shape = CallShape(promptTokens: prompt, maxTokens: maxTokens)
        let estimate: Cost = ["requests": 1, "tokens": Int64(shape.estimate)]
        let pathNames = ["global=\(SoakPlan.partition)", "tenant=\(tenant)"]
        guard let path = try? ScopePath(parsing: pathNames) else { return }
        let call = ProviderCall(
            scope: "provider", estimate: estimate, quotaPath: path, concurrency: SoakPlan.concurrencySlots,
            timeout: SoakPlan.callTimeout, maxAttempts: 2, label: "step")
        let ledger = self.ledger
        let client = self.client
        let worker = options.index
        let started = ContinuousClock.now
        let admitted = AdmittedFlag()
        var refused = false
        var ending = ""
        do {
            _ = try await tree.run {
                try await backpressure.call(call) { attempt in
                    if attempt.number == 1 {
                        var entry = SoakEntry(kind: "admit", worker: worker)
                        entry.via = "backpressure"
                        entry.admittedAt = attempt.admittedAt
                        entry.degraded = attempt.degraded
                        entry.path = pathNames
                        entry.tree = tree.treeID
                        entry.cost = estimate.amounts.mapValues { Int($0) }
                        ledger.append(entry)
                        admitted.set()
                    }
                    let result = await client.send(shape, user: tenant, seed: seed)
                    // Every attempt settles the whole estimate: what Redis charged is what the ledger holds.
                    guard result.succeeded else {
                        throw ProviderFailure("HTTP \(result.status ?? 0)", usage: estimate)
                    }
                    return CallOutcome((), usage: estimate)
                }
            }
            ending = "ok"
        } catch let error as BackpressureError where error.isRefusal {
            if !admitted.value { note("refuse", via: "backpressure", detail: error.code.description) }
            refused = true
            ending = error.code.description
        } catch {
            if !admitted.value { note("error", via: "backpressure", detail: Self.describe(error)) }
            refused = true
            ending = Self.describe(error)
        }
        checkLate(
            since: started, limit: SoakPlan.callTimeout, via: "backpressure",
            detail: "\(ending), \(admitted.value ? "ran" : "did not run")")
        // A refused agent pauses before its next call, as a real one would (and the loaded machine thanks it).
        if refused { try? await Task.sleep(for: .milliseconds(50 + Int(random.next() % 100))) }
    }

    // MARK: Reservations through Limiter

    private func reserveLoop(lane: Int) async {
        var random = SeededRandom([options.seed, UInt64(options.index), UInt64(lane), 2])
        while running {
            let tenant = SoakPlan.reservingTenants[Int(random.next() % UInt64(SoakPlan.reservingTenants.count))]
            let pathNames = ["global=\(SoakPlan.partition)", "tenant=\(tenant)"]
            let cost = ["requests": 1, "tokens": 50 + Int(random.next() % 350)]
            guard let path = try? ScopePath(parsing: pathNames) else { return }
            let started = ContinuousClock.now
            do {
                let reservation = try await limiter.reserve(
                    path, estimate: Cost(cost.mapValues { Int64($0) }), ttl: .seconds(5))
                checkLate(since: started, limit: SoakPlan.commandTimeout, via: "limiter")
                if reservation.decision.allowed {
                    var entry = SoakEntry(kind: "admit", worker: options.index)
                    entry.via = "limiter"
                    entry.admittedAt = reservation.decision.decidedAt
                    entry.degraded = false
                    entry.path = pathNames
                    entry.cost = cost
                    ledger.append(entry)
                    try? await Task.sleep(for: .milliseconds(10 + Int(random.next() % 60)))
                    // Unsettled (Redis away), the reservation expires with its estimate charged: the same.
                    _ = try? await reservation.settle(actual: reservation.estimate)
                } else {
                    note("refuse", via: "limiter", detail: "quota")
                    try? await Task.sleep(for: .milliseconds(20 + Int(random.next() % 40)))
                }
            } catch {
                checkLate(since: started, limit: SoakPlan.commandTimeout, via: "limiter")
                note("error", via: "limiter", detail: Self.describe(error))
                try? await Task.sleep(for: .milliseconds(50))
            }
        }
    }

    // MARK: Hostile input

    private func hostileLoop() async {
        var random = SeededRandom([options.seed, UInt64(options.index), 3])
        let hostile = SoakHostileInputs(limiter: limiter, backpressure: backpressure, trees: trees)
        while running {
            try? await Task.sleep(for: .milliseconds(300 + Int(random.next() % 400)))
            guard running else { break }
            let (name, outcome) = await hostile.send(number: Int(random.next() >> 2))
            var entry = SoakEntry(kind: "hostile", worker: options.index)
            entry.via = name
            entry.detail = outcome
            ledger.append(entry)
        }
    }

    // MARK: Ledger helpers

    private func note(_ kind: String, via: String, detail: String) {
        var entry = SoakEntry(kind: kind, worker: options.index)
        entry.via = via
        entry.detail = detail
        ledger.append(entry)
    }

    private func checkLate(since started: ContinuousClock.Instant, limit: Duration, via: String, detail: String? = nil)
    {
        let elapsed = ContinuousClock.now - started
        guard elapsed > limit + SoakPlan.lateMargin else { return }
        var entry = SoakEntry(kind: "late", worker: options.index)
        let elapsedMs = Double(elapsed / .microseconds(1)) / 1000
        entry.stalledMs = stallMeter.stalled(fromMs: entry.wall - elapsedMs, toMs: entry.wall)
        entry.via = via
        entry.elapsedMs = Double(elapsed / .microseconds(1)) / 1000
        entry.limitMs = Double(limit / .microseconds(1)) / 1000
        entry.detail = detail
        ledger.append(entry)
    }

    static func describe(_ error: any Error) -> String {
        if let error = error as? BackpressureError { return error.code.description }
        if let error = error as? QuotaError { return error.code.description }
        if let error = error as? RedisError { return "redis-\(error.code)" }
        return String(describing: type(of: error))
    }
}

/// Whether a call's first attempt ran (and so its admission is in the ledger).
final class AdmittedFlag: Sendable {
    private let flag = SluiceMutex(false)
    func set() { flag.withLock { $0 = true } }
    var value: Bool { flag.withLock { $0 } }
}
