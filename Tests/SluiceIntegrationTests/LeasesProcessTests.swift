import Foundation
import Sluice
import SluiceRedis
import Testing

/// Concurrency leases held by real worker processes.
@Suite("Leases: expiry, heartbeat and fencing across processes", .serialized, .onEveryServer)
struct LeasesProcessTests {
    @Test("A worker killed with SIGKILL while holding leases loses them to another worker within the lease expiry")
    func killedWorkersLeasesReturn() async throws {
        let fixture = try BackpressureFixture()
        defer { Task { await fixture.cleanUp() } }
        // The holder renews every third of the ttl: a ttl of 3 s leaves its heartbeat 2 s of slack on a loaded machine.
        let ttl = 3_000
        let common = ["--partition", fixture.partition, "--scope", "gpt-4o", "--slots", "3", "--ttl-ms", String(ttl)]
        let holder = try WorkerProcess.start(["lease-hold", "--take", "3"] + common)
        let held = try #require(await holder.result(), "the first worker never reported")
        #expect(held.int("acquired") == 3)

        // Two lease lifetimes later the heartbeat has kept all three: nobody else gets a slot.
        try await Task.sleep(for: .milliseconds(2 * ttl))
        let pool = LeasePool(
            redis: fixture.client, partition: fixture.partition, scope: "gpt-4o", slots: 3, ttl: .seconds(5))
        guard case .busy(let busy, _) = try await pool.tryAcquire() else {
            Issue.record("a slot was free while its holder was alive and renewing")
            await holder.kill9()
            return
        }
        #expect(busy == 3)

        await holder.kill9()
        let killedAt = ContinuousClock.now
        let successor = try WorkerProcess.start(
            ["lease-hold", "--take", "3", "--wait-ms", "15000", "--hold-ms", "0"] + common)
        let taken = try #require(await successor.result(), "the second worker never reported")
        let sinceKill = ContinuousClock.now - killedAt
        await successor.wait()

        #expect(taken.int("acquired") == 3, "\(taken)")
        #expect(taken.int("wait_ms") <= ttl + 1_000, "the slots came back \(taken.int("wait_ms")) ms into the wait")
        #expect(sinceKill < .milliseconds(ttl) + .seconds(8), "process start included, it took \(sinceKill)")
        let oldTokens = held["tokens"] as? [Int] ?? []
        let newTokens = taken["tokens"] as? [Int] ?? []
        #expect(
            newTokens.min() ?? 0 > oldTokens.max() ?? .max, "fencing tokens only grow: \(oldTokens) then \(newTokens)")
    }

    @Test("A body cancelled while it holds a lease gives the slot back at once, not at the lease's expiry")
    func cancelledBodyReleases() async throws {
        let fixture = try BackpressureFixture()
        defer { Task { await fixture.cleanUp() } }
        let pool = LeasePool(redis: fixture.client, partition: fixture.partition, scope: "gpt-4o", slots: 1)
        let holding = Task {
            try await pool.withLease(waitingUntil: .now + .seconds(30)) { _ in try await Task.sleep(for: .seconds(60)) }
        }
        var tries = 0
        while try await pool.held() < 1, tries < 1_000 {
            tries += 1
            try await Task.sleep(for: .milliseconds(5))
        }
        try #require(try await pool.held() == 1, "the body never held the lease")
        holding.cancel()
        await #expect(throws: CancellationError.self) { try await holding.value }
        // Its ttl is 30 s: held still, it would be lost to the fleet until then.
        #expect(try await pool.held() == 0, "the cancelled body's lease stayed held")
    }

    @Test("A late release is fenced: it cannot free the slot that now serves someone else")
    func lateReleaseIsFenced() async throws {
        let fixture = try BackpressureFixture()
        defer { Task { await fixture.cleanUp() } }
        let pool = LeasePool(
            redis: fixture.client, partition: fixture.partition, scope: "tool", slots: 1, ttl: .milliseconds(200))
        let first = try await pool.acquire(waitingUntil: .now + .seconds(1))
        try await Task.sleep(for: .milliseconds(300))  // the first holder stalls past its lease
        // The second holder's lease is long, so that only the stale release could free its slot below.
        let patient = LeasePool(
            redis: fixture.client, partition: fixture.partition, scope: "tool", slots: 1, ttl: .seconds(30))
        let second = try await patient.acquire(waitingUntil: .now + .seconds(1))
        #expect(second.token > first.token)

        #expect(try await pool.release(first) == false, "the stale holder's release frees nothing")
        #expect(try await pool.renew(first) == false, "nor can it renew a lost lease")
        guard case .busy(let held, _) = try await pool.tryAcquire() else {
            Issue.record("the late release freed the second holder's slot")
            return
        }
        #expect(held == 1)
        #expect(try await pool.release(second))
        #expect(try await pool.release(second) == false, "a duplicate release is a no-op")
        if case .acquired(let third) = try await pool.tryAcquire() {
            _ = try await pool.release(third)
        } else {
            Issue.record("the released slot did not come back")
        }
    }

    @Test("A waiter that cannot get a slot before its deadline is refused at the deadline, not later")
    func waitingStopsAtTheDeadline() async throws {
        let fixture = try BackpressureFixture()
        defer { Task { await fixture.cleanUp() } }
        let pool = LeasePool(
            redis: fixture.client, partition: fixture.partition, scope: "s", slots: 1, ttl: .seconds(10))
        let lease = try await pool.acquire(waitingUntil: .now + .seconds(1))
        let start = ContinuousClock.now
        let error = await #expect(throws: BackpressureError.self) {
            try await pool.acquire(waitingUntil: .now + .milliseconds(400))
        }
        let waited = ContinuousClock.now - start
        #expect(error?.code == .leaseUnavailable)
        #expect(waited >= .milliseconds(300) && waited < .seconds(2), "waited \(waited)")
        #expect(try await pool.held() == 1)
        _ = try await pool.release(lease)
    }
}
