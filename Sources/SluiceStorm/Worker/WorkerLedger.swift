import SluiceRedis

/// What a worker collects while it runs: its call records and a gauge of the calls waiting and in flight, kept
/// per bin of ``ProviderRecorder/binSeconds`` (the most seen during each bin).
final class WorkerLedger: Sendable {
    private struct Peak {
        var waiting = 0
        var inFlight = 0
        var lastWaiting = 0
        var lastInFlight = 0
    }

    private struct State {
        var records: [CallRecord] = []
        var waiting = 0
        var inFlight = 0
        /// bin → the most waiting and in flight during it, and the levels at its last change
        var peaks: [Int: Peak] = [:]
    }

    private let state = SluiceMutex(State())
    private let startMs: Double

    init(startMs: Double) { self.startMs = startMs }

    func record(_ record: CallRecord) {
        state.withLock { $0.records.append(record) }
    }

    /// Seconds of run time now.
    func now() -> Double { (StormClock.nowMs() - startMs) / 1000 }

    func changeWaiting(by delta: Int) { change(waiting: delta, inFlight: 0) }
    func changeInFlight(by delta: Int) { change(waiting: 0, inFlight: delta) }

    private func change(waiting: Int, inFlight: Int) {
        let bin = max(0, Int(now() / ProviderRecorder.binSeconds))
        state.withLock { state in
            state.waiting += waiting
            state.inFlight += inFlight
            var peak = state.peaks[bin] ?? Peak()
            peak.waiting = max(peak.waiting, state.waiting)
            peak.inFlight = max(peak.inFlight, state.inFlight)
            peak.lastWaiting = state.waiting
            peak.lastInFlight = state.inFlight
            state.peaks[bin] = peak
        }
    }

    /// Every line to write: calls, then the queue gauge (a bin without a change carries the level left by the last change).
    func lines(durationBins: Int) -> [WorkerLine] {
        state.withLock { state in
            var lines = state.records.map(WorkerLine.call)
            var level = Peak()
            for bin in 0..<durationBins {
                if let peak = state.peaks[bin] {
                    lines.append(.queue(bin: bin, waiting: peak.waiting, inFlight: peak.inFlight))
                    level = peak
                } else {
                    lines.append(.queue(bin: bin, waiting: level.lastWaiting, inFlight: level.lastInFlight))
                }
            }
            return lines
        }
    }
}
