import Foundation
import SluiceRedis

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// One line of a soak worker's ledger: what it was admitted, what it was refused, what came back late, and what
/// the hostile inputs did. The ledger is a file outside Redis, appended line by line with `write(2)` as things
/// happen, so a SIGKILLed worker leaves everything it was admitted before the kill.
public struct SoakEntry: Codable, Sendable {
    /// `admit`, `refuse`, `error`, `late` or `hostile`.
    public var kind: String
    /// Wall-clock ms when the worker wrote it.
    public var wall: Double
    /// `backpressure` or `limiter`.
    public var via: String?
    /// When Redis admitted it (ms, Redis' clock: the decision's `decidedAt`); nil when degraded.
    public var admittedAt: Int64?
    /// The quota path, `KIND=NAME` root first.
    public var path: [String]?
    /// The request tree the call counted against.
    public var tree: String?
    public var cost: [String: Int]?
    /// Whether the decision was made without Redis (fail-open, degraded).
    public var degraded: Bool?
    /// Late calls: how long the call took and its limit, ms.
    public var elapsedMs: Double?
    public var limitMs: Double?
    /// Late calls: how long the machine kept the worker's process from running meanwhile, ms (``StallMeter``).
    public var stalledMs: Double?
    /// Refusals, errors and hostile inputs: what happened, in a word.
    public var detail: String?
    public var worker: Int

    public init(kind: String, worker: Int) {
        self.kind = kind
        self.wall = StormClock.nowMs()
        self.worker = worker
    }
}

/// Appends ``SoakEntry`` lines to a worker's ledger file.
public final class SoakLedger: Sendable {
    private let descriptor: Int32
    private let lock = SluiceMutex(())

    public init(path: String) throws {
        descriptor = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw StormError("cannot open the ledger \(path): errno \(errno)") }
    }

    /// Writes one line at once (one `write(2)` on a file opened for appending).
    public func append(_ entry: SoakEntry) {
        guard var data = try? JSONEncoder().encode(entry) else { return }
        data.append(0x0A)
        lock.withLock { _ in
            data.withUnsafeBytes { bytes in
                var offset = 0
                while offset < bytes.count {
                    let written = write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
                    if written <= 0 {
                        if errno == EINTR { continue }
                        return
                    }
                    offset += written
                }
            }
        }
    }

    deinit { close(descriptor) }
}
