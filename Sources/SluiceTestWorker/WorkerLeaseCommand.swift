import ArgumentParser
import Sluice
import SluiceRedis

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// `sluice worker lease-hold`: takes leases (waiting up to --wait-ms), reports, then holds them with
/// the heartbeat until --hold-ms passes (or the process is killed).
struct WorkerLeaseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "lease-hold", shouldDisplay: false)

    @OptionGroup var options: WorkerOptions
    @Option var scope: String
    @Option var slots: Int
    @Option(help: "How many leases to take.") var take: Int = 1
    @Option(name: .customLong("ttl-ms")) var ttl: Int = 1_000
    @Option(name: .customLong("wait-ms")) var wait: Int = 0
    @Option(name: .customLong("hold-ms")) var hold: Int = 600_000

    func run() async throws {
        let client = try options.makeClient()
        defer { client.close() }
        let pool = LeasePool(
            redis: client, partition: options.partition, scope: scope, slots: slots, ttl: .milliseconds(ttl),
            holder: "pid-\(getpid())")
        let started = ContinuousClock.now
        var leases: [Lease] = []
        var refused: String?
        do {
            for _ in 0..<take { leases.append(try await pool.acquire(waitingUntil: started + .milliseconds(wait))) }
        } catch let error as BackpressureError {
            refused = error.code.description
        }
        let elapsed = Int((ContinuousClock.now - started) / .milliseconds(1))
        try options.write(
            [
                "acquired": leases.count, "tokens": leases.map(\.token), "wait_ms": elapsed, "refused": refused,
            ])
        await withTaskGroup(of: Void.self) { group in
            for lease in leases { group.addTask { await pool.keepAlive(lease) } }
            group.addTask { try? await Task.sleep(for: .milliseconds(hold)) }
            await group.next()
            group.cancelAll()
        }
        for lease in leases { _ = try? await pool.release(lease) }
    }
}
