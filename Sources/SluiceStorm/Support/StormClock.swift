#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Wall-clock time in milliseconds since the Unix epoch. The coordinator and its workers run on one machine and
/// share this clock, so their records line up on one timeline.
public enum StormClock {
    public static func nowMs() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Double(now.tv_sec) * 1000 + Double(now.tv_nsec) / 1_000_000
    }

    /// Sleeps until the wall-clock instant `epochMs` (returns at once if it has passed).
    public static func sleep(untilMs epochMs: Double) async throws {
        let remaining = epochMs - nowMs()
        if remaining > 0 { try await Task.sleep(for: .microseconds(Int64(remaining * 1000))) }
    }
}
