import Synchronization
import Testing

@testable import SluiceRedis

/// The pool's waits with real tasks, a mock clock and connections that open when the test says so.
@Suite("Connection pool waits: deadlines, cancellation, discards, failed opens")
struct ConnectionPoolTests {
    final class MockConnection: Sendable {
        let number: Int
        private let closedFlag = Atomic(false)
        init(number: Int) { self.number = number }
        var closed: Bool { closedFlag.load(ordering: .relaxed) }
        func close() { closedFlag.store(true, ordering: .relaxed) }
    }

    /// Opens connections only when the test completes the pending opens.
    final class Opener: Sendable {
        private let pending = SluiceMutex<[CheckedContinuation<MockConnection, any Error>]>([])
        private let count = Atomic(0)

        var waiting: Int { pending.withLock { $0.count } }
        var opened: Int { count.load(ordering: .relaxed) }

        func open() async throws -> MockConnection {
            try await withCheckedThrowingContinuation { continuation in pending.withLock { $0.append(continuation) } }
        }

        func succeed() {
            let number = count.add(1, ordering: .relaxed).newValue
            pending.withLock { $0.removeFirst() }.resume(returning: MockConnection(number: number))
        }

        func fail(_ error: any Error) {
            pending.withLock { $0.removeFirst() }.resume(throwing: error)
        }
    }

    struct Refused: Error {}

    typealias Pool = ConnectionPool<MockConnection, MockClock>

    private static func makePool(maximum: Int, clock: MockClock, opener: Opener) -> Pool {
        Pool(maximumConnections: maximum, clock: clock, open: { try await opener.open() }, close: { $0.close() })
    }

    /// Leases one connection, opening it.
    private static func leaseOpened(_ pool: Pool, _ opener: Opener) async throws -> Pool.Lease {
        async let lease = pool.lease(deadline: nil)
        await eventually("an open was asked for") { opener.waiting == 1 }
        opener.succeed()
        return try await lease
    }

    @Test("A waiter whose deadline passes gets a timeout, and its slot is not leaked")
    func deadline() async throws {
        let clock = MockClock()
        let opener = Opener()
        let pool = Self.makePool(maximum: 1, clock: clock, opener: opener)
        let held = try await Self.leaseOpened(pool, opener)

        let waiter = Task { try await pool.lease(deadline: clock.now.advanced(by: .seconds(2))) }
        await eventually("the waiter's timer is armed") { clock.sleeping == 1 }
        clock.advance(by: .seconds(1))
        #expect(pool.usage.waiting == 1, "still waiting before its deadline")
        clock.advance(by: .seconds(1))
        do {
            _ = try await waiter.value
            Issue.record("the waiter got a connection although none was free")
        } catch let error as RedisError {
            #expect(error.code == .timeout)
        }
        #expect(pool.usage.waiting == 0)
        pool.release(held)
        let again = try await pool.lease(deadline: clock.now.advanced(by: .seconds(1)))
        #expect(again.connection === held.connection, "the one connection is still the pool's")
        #expect(opener.opened == 1)
    }

    @Test("A cancelled waiter throws CancellationError at once and the released connection goes to the next one")
    func cancellation() async throws {
        let clock = MockClock()
        let opener = Opener()
        let pool = Self.makePool(maximum: 1, clock: clock, opener: opener)
        let held = try await Self.leaseOpened(pool, opener)

        let first = Task { try await pool.lease(deadline: nil) }
        await eventually("the first waiter is queued") { pool.usage.waiting == 1 }
        let second = Task { try await pool.lease(deadline: clock.now.advanced(by: .seconds(60))) }
        await eventually("the second waiter is queued") { pool.usage.waiting == 2 }
        first.cancel()
        await #expect(throws: CancellationError.self) { try await first.value }
        #expect(pool.usage.waiting == 1)

        pool.release(held)
        let lease = try await second.value
        #expect(lease.connection === held.connection)
        #expect(clock.sleeping == 0, "the served waiter's timer was cancelled")
        #expect(opener.opened == 1 && opener.waiting == 0, "nothing was opened for the cancelled waiter")
    }

    @Test("A task cancelled before it asks gets CancellationError and opens nothing")
    func cancelledBeforeLease() async {
        let clock = MockClock()
        let opener = Opener()
        let pool = Self.makePool(maximum: 2, clock: clock, opener: opener)
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await pool.lease(deadline: nil)
        }
        await #expect(throws: CancellationError.self) { try await task.value }
        #expect(pool.usage.slots == 0 && opener.waiting == 0)
    }

    @Test("A discarded connection is closed and its slot serves a waiter with a new connection")
    func discardWakesWaiter() async throws {
        let clock = MockClock()
        let opener = Opener()
        let pool = Self.makePool(maximum: 1, clock: clock, opener: opener)
        let held = try await Self.leaseOpened(pool, opener)
        let waiter = Task { try await pool.lease(deadline: nil) }
        await eventually("the waiter is queued") { pool.usage.waiting == 1 }

        pool.discard(held)
        #expect(held.connection.closed)
        await eventually("a new connection is opened for the waiter") { opener.waiting == 1 }
        opener.succeed()
        let lease = try await waiter.value
        #expect(lease.connection !== held.connection && !lease.connection.closed)
        #expect(pool.usage.slots == 1)
    }

    @Test("A failed open reaches the waiter it was for; the next waiter gets a connection of its own")
    func failedOpen() async throws {
        let clock = MockClock()
        let opener = Opener()
        let pool = Self.makePool(maximum: 1, clock: clock, opener: opener)
        let first = Task { try await pool.lease(deadline: nil) }
        await eventually("the first open is asked for") { opener.waiting == 1 }
        let second = Task { try await pool.lease(deadline: nil) }
        await eventually("the second waiter is queued") { pool.usage.waiting == 2 }

        opener.fail(Refused())
        await #expect(throws: Refused.self) { try await first.value }
        await eventually("another open is asked for") { opener.waiting == 1 }
        opener.succeed()
        _ = try await second.value
        #expect(pool.usage == (slots: 1, waiting: 0))
    }

    @Test("Closing fails the waiters, closes idle connections, and those leased when they come back")
    func close() async throws {
        let clock = MockClock()
        let opener = Opener()
        let pool = Self.makePool(maximum: 2, clock: clock, opener: opener)
        let held = try await Self.leaseOpened(pool, opener)
        let idle = try await Self.leaseOpened(pool, opener)
        pool.release(idle)
        let waiter = Task {
            _ = try await pool.lease(deadline: nil)  // takes the idle one
            return try await pool.lease(deadline: nil)
        }
        await eventually("the waiter is queued") { pool.usage.waiting == 1 }
        pool.close()
        await #expect(throws: RedisError.self) { try await waiter.value }
        #expect(!held.connection.closed)
        pool.release(held)
        #expect(held.connection.closed)
        await #expect(throws: RedisError.self) { try await pool.lease(deadline: nil) }
    }

    @Test("Many callers, cancellations and discards on a small pool: every caller ends, no slot leaks")
    func churn() async throws {
        let opened = Atomic(0)
        let clock = MockClock()
        let pool = ConnectionPool<MockConnection, MockClock>(
            maximumConnections: 3, clock: clock,
            open: { MockConnection(number: opened.add(1, ordering: .relaxed).newValue) }, close: { $0.close() })
        var tasks: [Task<String, Never>] = []
        for index in 0..<200 {
            let task = Task {
                do {
                    let lease = try await pool.lease(deadline: nil)
                    await Task.yield()
                    if index % 5 == 0 { pool.discard(lease) } else { pool.release(lease) }
                    return "served"
                } catch is CancellationError {
                    return "cancelled"
                } catch {
                    return "\(error)"
                }
            }
            tasks.append(task)
            if index % 7 == 3 { tasks[index / 2].cancel() }
        }
        var outcomes: [String] = []
        for task in tasks { outcomes.append(await task.value) }
        #expect(outcomes.count == 200)
        #expect(outcomes.allSatisfy { $0 == "served" || $0 == "cancelled" }, "\(Set(outcomes))")
        #expect(pool.usage.waiting == 0 && pool.usage.slots <= 3)
    }
}
