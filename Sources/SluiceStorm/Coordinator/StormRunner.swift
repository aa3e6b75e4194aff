import Foundation

/// Runs a storm: every scenario in every mode (and a baseline run where a scenario asks for one), each with
/// fresh worker processes against one mock provider and one Redis, and gathers the results.
public struct StormRunner: Sendable {
    public let options: StormOptions
    /// Receives progress lines; `transient` lines may be overwritten by the next one (a terminal's `\r`).
    public let progress: @Sendable (_ line: String, _ transient: Bool) -> Void

    public init(options: StormOptions, progress: @escaping @Sendable (String, Bool) -> Void = { _, _ in }) {
        self.options = options
        self.progress = progress
    }

    public func run() async throws -> StormReport {
        guard options.workers >= 1, options.workers <= 64 else { throw StormError("--workers must be 1...64") }
        guard options.timeScale > 0, options.timeScale.isFinite else {
            throw StormError("--time-scale must be positive")
        }
        let scratch = FileManager.default.temporaryDirectory
            .appendingPathComponent("sluice-storm-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        ChildProcesses.shared.add(directory: scratch)
        var redis: RedisProcess?
        var provider: MockProvider?
        defer {
            redis?.stop()
            if ProcessInfo.processInfo.environment["SLUICE_STORM_KEEP"] == nil {
                try? FileManager.default.removeItem(atPath: scratch)
            }
            ChildProcesses.shared.remove(directory: scratch)
        }
        let redisURL: String
        if let url = options.redisURL {
            redisURL = url
        } else {
            redis = try await RedisProcess.start()
            redisURL = redis!.url
            progress("started a throwaway redis-server at \(redisURL)", false)
        }
        provider = try await MockProvider.start()
        progress("mock provider at \(provider!.baseURL)", false)

        var runs: [RunResult] = []
        var number = 0
        do {
            for original in options.scenarios {
                let scaled = original.timeScaled(by: options.timeScale)
                let scenario = options.duration.map { scaled.rescaled(to: $0) } ?? scaled
                for mode in options.modes {
                    var variants: [(Scenario, Bool)] = []
                    if let baseline = scenario.baseline { variants.append((baseline, true)) }
                    variants.append((scenario, false))
                    for (variant, isBaseline) in variants {
                        number += 1
                        let run = try await runOnce(
                            variant, mode: mode, isBaseline: isBaseline, number: number, provider: provider!,
                            redisURL: redisURL, scratch: scratch)
                        runs.append(run)
                    }
                }
            }
        } catch {
            await provider?.stop()
            throw error
        }
        await provider?.stop()
        return StormReport(runs: runs)
    }

    private func runOnce(
        _ scenario: Scenario, mode: StormMode, isBaseline: Bool, number: Int, provider: MockProvider,
        redisURL: String, scratch: String
    ) async throws -> RunResult {
        let label = "\(scenario.name)\(isBaseline ? " (baseline)" : "") / \(mode.name)"
        let runID = "\(scenario.name)-\(mode.name)-\(number)-\(UInt16.random(in: 0...UInt16.max))"
        let directory = scratch + "/" + runID
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let startMs = StormClock.nowMs() + options.startLeadMs
        let endMs = startMs + scenario.duration * 1000
        provider.begin(settings: scenario.provider, startMs: startMs)
        let meter = await RedisMeter.start(url: redisURL)

        var workers: [WorkerProcess] = []
        for index in 0..<options.workers {
            let assignment = WorkerAssignment(
                scenario: scenario, mode: mode, workerIndex: index, workerCount: options.workers,
                providerURL: provider.baseURL, redisURL: redisURL, runID: runID, startMs: startMs,
                recordsPath: directory + "/worker-\(index).jsonl", attemptTimeoutMs: options.attemptTimeoutMs,
                metricsPort: options.workerMetricsPortBase.map { $0 + index })
            workers.append(try WorkerProcess.spawn(assignment, executable: options.workerExecutable, in: directory))
        }
        // The run's Redis figures cover the span its provider figures do, from its start to its end. What workers send
        // after the end (callers cancelled in line leaving it, cancelled calls giving their reservations back) is the
        // run being cut off, not what a provider call costs.
        let atEnd = Task { () -> RedisCommandStats? in
            try? await StormClock.sleep(untilMs: endMs)
            return await meter?.read()
        }
        let ceilingSampler = CeilingSampler(redisURL: redisURL, scenario: scenario, runID: runID, startMs: startMs)
        let sampler: Task<(samples: [Double?], statusCalls: Int), Never>? =
            mode == .sluice ? Task { await ceilingSampler.run() } : nil
        // Wait for the workers, showing progress; kill them if they overstay by far.
        let giveUpMs = endMs + 20_000
        while workers.contains(where: \.isRunning) {
            if StormClock.nowMs() > giveUpMs {
                for worker in workers where worker.isRunning { worker.forceStop() }
                break
            }
            let snapshot = provider.progress()
            let elapsed = min(max(0, snapshot.elapsed), scenario.duration)
            progress(
                String(
                    format: "%@  %4.1f/%.0f s  requests %d  429s %d  errors %d  tokens %d", label, elapsed,
                    scenario.duration, snapshot.requests, snapshot.limited, snapshot.errors, snapshot.tokens),
                true)
            try await Task.sleep(for: .milliseconds(250))
        }
        let bins = provider.finish(duration: scenario.duration).bins
        sampler?.cancel()
        let sampled = await sampler?.value
        var ceiling = sampled?.samples ?? []
        let redisCost = await meter?.finish(
            measured: await atEnd.value, providerCalls: bins.reduce(0) { $0 + $1.requests },
            samplerCalls: sampled?.statusCalls ?? 0,
            probe: { await ceilingSampler.probe(times: 16) })
        if mode == .singleBucket {
            ceiling = Array(repeating: scenario.provider.tokensPerSecond, count: bins.count)
        }
        var calls: [CallRecord] = []
        var waiting = Array(repeating: 0, count: Int((scenario.duration / ProviderRecorder.binSeconds).rounded(.up)))
        var failures: [String] = []
        for worker in workers {
            let output = worker.collect()
            calls += output.calls
            for (bin, count) in output.waiting where bin < waiting.count { waiting[bin] += count }
            if let failure = output.failure { failures.append(failure) }
        }
        let result = RunResult(
            scenario: scenario, mode: mode, isBaseline: isBaseline, provider: bins, calls: calls, waiting: waiting,
            workerFailures: failures, ceiling: ceiling, redisCost: redisCost)
        let metrics = RunMetrics(result, baseline: nil)
        progress(
            String(
                format:
                    "%@: %d calls, %d ok, 429s %d, goodput %.0f tok/s, utilisation %.0f%%, redis %@ calls / %@ us per call%@",
                label, calls.count, metrics.callsOK, metrics.provider429s, metrics.goodputTokensPerSecond,
                metrics.utilization * 100, Self.figure(redisCost?.callsPerProviderCall),
                Self.figure(redisCost?.microsecondsPerProviderCall),
                failures.isEmpty ? "" : "  FAILURES: " + failures.joined(separator: "; ")),
            false)
        return result
    }

    private static func figure(_ value: Double?) -> String {
        value.map { String(format: "%.1f", $0) } ?? "-"
    }
}
