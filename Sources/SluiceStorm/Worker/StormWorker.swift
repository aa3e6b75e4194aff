import Foundation

/// The body of one worker process (`sluice storm-worker`): it runs the request trees of its share of the
/// scenario's tenants against the provider, through the gate of the run's mode, from the run's start to its end,
/// then writes its records.
public enum StormWorker {
    public static func run(_ assignment: WorkerAssignment) async throws {
        let ledger = WorkerLedger(startMs: assignment.startMs)
        let client = ProviderClient(
            baseURL: assignment.providerURL, family: assignment.scenario.provider.family,
            attemptTimeoutMs: assignment.attemptTimeoutMs)
        var failure: String?
        do {
            let gate = try await makeGate(assignment)
            let endMs = assignment.startMs + assignment.scenario.duration * 1000
            let runner = AgentRunner(gate: gate, client: client, ledger: ledger, endMs: endMs)
            try await StormClock.sleep(untilMs: assignment.startMs)
            await withTaskGroup(of: Void.self) { group in
                for slot in assignment.tenants {
                    group.addTask { await runTenant(slot, assignment: assignment, runner: runner) }
                }
                try? await StormClock.sleep(untilMs: endMs)
                group.cancelAll()
            }
            await gate.shutdown()
        } catch {
            failure = "\(error)"
        }
        await client.shutdown()
        try write(ledger, assignment: assignment, failure: failure)
        if let failure { throw StormError("worker \(assignment.workerIndex): \(failure)") }
    }

    static func makeGate(_ assignment: WorkerAssignment) async throws -> any CallGate {
        switch assignment.mode {
        case .singleBucket: return try SingleBucketGate(assignment: assignment)
        case .sluice: return try await SluiceGate(assignment: assignment)
        default: return DirectGate()
        }
    }

    /// Starts the tenant's trees as its arrivals say, until the run ends.
    static func runTenant(_ slot: TenantSlot, assignment: WorkerAssignment, runner: AgentRunner) async {
        let arrivals = slot.group.arrivals
        let duration = assignment.scenario.duration
        let from = arrivals.from ?? 0
        let until = min(arrivals.until ?? duration, duration)
        let tenantSeed = SeededRandom.hash(slot.name)
        let startMs = assignment.startMs
        let deadline = (slot.group.tree.deadline ?? duration + 60) * 1000

        func tree(_ index: Int, startedAt time: Double) -> AgentTree {
            let begun = startMs + time * 1000
            return AgentTree(
                id: "\(slot.name).\(index)", tenant: slot.name, group: slot.group, startMs: begun,
                deadlineMs: begun + deadline, depth: 0)
        }

        if let rate = arrivals.rate {
            // Open loop: Poisson arrivals, the same in every mode; surges by thinning (candidates at the highest
            // rate, each kept with the probability of the rate in force at its time).
            var random = SeededRandom([tenantSeed, 1])
            let peak = rate * max(1, (arrivals.surges ?? []).map(\.factor).max() ?? 1)
            await withTaskGroup(of: Void.self) { group in
                var time = from
                var index = 0
                while true {
                    time += random.exponential(rate: peak)
                    guard time < until else { break }
                    guard random.unit() * peak < rate * arrivals.surgeFactor(at: time) else { continue }
                    do { try await StormClock.sleep(untilMs: startMs + time * 1000) } catch { break }
                    index += 1
                    let context = tree(index, startedAt: time)
                    let seed = SeededRandom.derive([tenantSeed, UInt64(index)])
                    group.addTask { await runner.runTree(context, seed: seed) }
                }
            }
        } else if let concurrent = arrivals.concurrent {
            // Closed loop: `concurrent` trees at a time (times the surge), each slot starting a new one when its
            // tree ends, or, when the limiter shed the tree's first call, once the wait the refusal named is over
            // (a job runner that honours retry-after instead of turning a refusal into a loop), looking again
            // after at most one reset period of the provider (its limits may have changed meanwhile).
            let maximumSurge = (arrivals.surges ?? []).map(\.factor).max() ?? 1
            let slots = Int((Double(concurrent) * max(1, maximumSurge)).rounded(.up))
            await withTaskGroup(of: Void.self) { group in
                for lane in 0..<slots {
                    group.addTask {
                        var index = lane
                        do { try await StormClock.sleep(untilMs: startMs + from * 1000) } catch { return }
                        while !Task.isCancelled {
                            let time = (StormClock.nowMs() - startMs) / 1000
                            guard time < until else { return }
                            guard Double(lane) < Double(concurrent) * arrivals.surgeFactor(at: time) else {
                                do { try await Task.sleep(for: .milliseconds(50)) } catch { return }
                                continue
                            }
                            let seed = SeededRandom.derive([tenantSeed, UInt64(index)])
                            let backOffMs = await runner.runTree(tree(index, startedAt: time), seed: seed)
                            index += slots
                            if let backOffMs, backOffMs > 0 {
                                let backOff = min(backOffMs, assignment.scenario.provider.window * 1000)
                                let untilMs = min(StormClock.nowMs() + backOff, startMs + until * 1000)
                                do { try await StormClock.sleep(untilMs: untilMs) } catch { return }
                            }
                        }
                    }
                }
            }
        }
    }

    static func write(_ ledger: WorkerLedger, assignment: WorkerAssignment, failure: String?) throws {
        let bins = Int((assignment.scenario.duration / ProviderRecorder.binSeconds).rounded(.up))
        let encoder = JSONEncoder()
        var text = ""
        for line in ledger.lines(durationBins: bins) + [.done(error: failure)] {
            text += String(decoding: try encoder.encode(line), as: UTF8.self) + "\n"
        }
        try text.write(toFile: assignment.recordsPath, atomically: true, encoding: .utf8)
    }
}
