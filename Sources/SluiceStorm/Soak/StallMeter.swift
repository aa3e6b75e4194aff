import Foundation
import SluiceRedis

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Measures how long the machine kept this process from running: a thread of its own (outside Swift's cooperative
/// pool, so the worker's own tasks cannot delay it) sleeps 10 ms at a time and records every oversleep beyond 5 ms.
/// On a loaded machine a whole process can stall for 100 ms or more; the soak reports such stalls beside the late
/// calls they overlap, so that a call late because its process did not run is told apart from one the library held.
final class StallMeter: Sendable {
    private struct Stall {
        var endMs: Double
        var lengthMs: Double
    }

    private let stalls = SluiceMutex<[Stall]>([])

    init() {
        let thread = Thread { [self] in
            while true {
                let before = StormClock.nowMs()
                var pause = timespec(tv_sec: 0, tv_nsec: 10_000_000)
                nanosleep(&pause, nil)
                let after = StormClock.nowMs()
                let lag = after - before - 10
                if lag > 5 {
                    stalls.withLock { stalls in
                        stalls.append(Stall(endMs: after, lengthMs: lag))
                        if stalls.count > 10_000 { stalls.removeFirst(5_000) }
                    }
                }
            }
        }
        thread.start()
    }

    /// Milliseconds the process stood still between `fromMs` and `toMs` (wall clock).
    func stalled(fromMs: Double, toMs: Double) -> Double {
        stalls.withLock { stalls in
            stalls.reduce(0) { total, stall in
                let start = stall.endMs - stall.lengthMs
                let overlap = min(toMs, stall.endMs) - max(fromMs, start)
                return total + max(0, overlap)
            }
        }
    }
}
